"""lstm speed beside PyTorch CPU (see bench/suite.py):
python -m pytest bench/bench_lstm.py --benchmark-only [-m "not slow"]"""
from suite import make_tests

test_lstm_train, test_lstm_infer = make_tests("lstm")
