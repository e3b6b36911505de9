"""embedding speed beside PyTorch CPU (see bench/suite.py):
python -m pytest bench/bench_embedding.py --benchmark-only [-m "not slow"]"""
from suite import make_tests

test_embedding_train, test_embedding_infer = make_tests("embedding")
