"""The external oracles, imported only when a test needs them (skips when absent)."""
import os

import pytest


def keras_or_skip():
    """Keras 3 on the torch backend, or a skip saying why not."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()!r}; these checks need KERAS_BACKEND=torch")
    return keras
