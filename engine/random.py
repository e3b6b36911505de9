"""One seed for everything random in the engine (initializers, dropout, shuffling)."""
from __future__ import annotations

import random as _pyrandom

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed the engine's generator, NumPy's global one and Python's `random`.

    Example:
        >>> import engine as en
        >>> en.set_random_seed(0)
    """
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)
    _pyrandom.seed(int(seed))


def generator() -> np.random.Generator:
    """The engine's random generator (reseeded by set_random_seed)."""
    return _generator
