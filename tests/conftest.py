"""Shared test configuration."""
import pytest

from oracles import keras_or_skip


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on its torch backend, the oracle for layer semantics (skips when absent)."""
    return keras_or_skip()


def pytest_generate_tests(metafunc):
    # rnn_suite.py's shared tests take the op variants from the module that imports them.
    module = metafunc.module
    if "variant" in metafunc.fixturenames and hasattr(module, "VARIANTS"):
        metafunc.parametrize("variant", module.VARIANTS)
    if "torch_variant" in metafunc.fixturenames and hasattr(module, "TORCH_VARIANTS"):
        metafunc.parametrize("torch_variant", module.TORCH_VARIANTS)
