"""gru speed beside PyTorch CPU (see bench/suite.py):
python -m pytest bench/bench_gru.py --benchmark-only [-m "not slow"]"""
from suite import make_tests

test_gru_train, test_gru_infer = make_tests("gru")
