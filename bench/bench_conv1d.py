"""conv1d speed beside PyTorch CPU (see bench/suite.py):
python -m pytest bench/bench_conv1d.py --benchmark-only [-m "not slow"]"""
from suite import make_tests

test_conv1d_train, test_conv1d_infer = make_tests("conv1d")
