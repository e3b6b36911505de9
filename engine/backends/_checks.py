"""Input checks every backend runs before its kernels touch memory."""
from __future__ import annotations

import numpy as np


def check_ids(ids, num_embeddings: int) -> None:
    """IndexError naming the first id outside [0, num_embeddings)."""
    if ids.size == 0:
        return
    xp = np if isinstance(ids, np.ndarray) else __import__("cupy")
    bad = (ids < 0) | (ids >= num_embeddings)
    if bool(bad.any()):
        # np.unravel_index for both: the shape is a plain tuple (cupy's rejects a Python int).
        where = tuple(int(i) for i in np.unravel_index(int(xp.argmax(bad)), ids.shape))
        raise IndexError(f"embedding: ids must be in [0, {num_embeddings}), "
                         f"got {int(ids[where])} at position {where}")
