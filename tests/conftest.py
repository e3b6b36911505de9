"""Shared test configuration."""


def pytest_generate_tests(metafunc):
    # rnn_suite.py's shared tests take the op variants from the module that imports them.
    module = metafunc.module
    if "variant" in metafunc.fixturenames and hasattr(module, "VARIANTS"):
        metafunc.parametrize("variant", module.VARIANTS)
    if "torch_variant" in metafunc.fixturenames and hasattr(module, "TORCH_VARIANTS"):
        metafunc.parametrize("torch_variant", module.TORCH_VARIANTS)
