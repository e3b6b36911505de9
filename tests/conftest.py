"""Shared test configuration."""
import os

import pytest


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on its torch backend, the oracle for layer semantics (skips when absent)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras oracle needs KERAS_BACKEND=torch, got {keras.backend.backend()}")
    return keras


def pytest_generate_tests(metafunc):
    # rnn_suite.py's shared tests take the op variants from the module that imports them.
    module = metafunc.module
    if "variant" in metafunc.fixturenames and hasattr(module, "VARIANTS"):
        metafunc.parametrize("variant", module.VARIANTS)
    if "torch_variant" in metafunc.fixturenames and hasattr(module, "TORCH_VARIANTS"):
        metafunc.parametrize("torch_variant", module.TORCH_VARIANTS)
