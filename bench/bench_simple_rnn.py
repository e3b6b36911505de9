"""simple_rnn speed beside PyTorch CPU (see bench/suite.py):
python -m pytest bench/bench_simple_rnn.py --benchmark-only [-m "not slow"]"""
from suite import make_tests

test_simple_rnn_train, test_simple_rnn_infer = make_tests("simple_rnn")
