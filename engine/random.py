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


def get_state() -> dict:
    """The state of every generator set_random_seed seeds (the engine's, NumPy's global one and
    Python's `random`) as a JSON-able dict, for set_state (BackupAndRestore saves it).

    Example:
        >>> state = en.random.get_state(); a = en.random.generator().random()
        >>> en.random.set_state(state); en.random.generator().random() == a
        True
    """
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {**numpy_state["state"], "key": numpy_state["state"]["key"].tolist()}
    version, internal, gauss = _pyrandom.getstate()
    return {"engine": _generator.bit_generator.state, "numpy": numpy_state,
            "python": [version, list(internal), gauss]}


def set_state(state: dict) -> None:
    """Put back what get_state returned (also after a round trip through JSON)."""
    try:
        _generator.bit_generator.state = state["engine"]
        numpy_state = state["numpy"]
        np.random.set_state({**numpy_state, "state": {**numpy_state["state"],
                                                      "key": np.asarray(numpy_state["state"]["key"], np.uint32)}})
        version, internal, gauss = state["python"]
        _pyrandom.setstate((version, tuple(internal), gauss))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"random.set_state: not a state from engine.random.get_state ({exc!r})") from None
