"""pytest-benchmark suite for engine.text: how long TextVectorization.adapt
(and the call that vectorizes) takes on the bundled movie-review sentences and
on 100,000 documents. Numbers and the machine they came from are in
docs/text_and_data.md.

Run:  PYTHONPATH=. python -m pytest bench/bench_text.py -p no:cacheprovider \
          --benchmark-columns=min,median,max,rounds

The 100k corpus is synthetic but realistic: each document joins three
sentences drawn (seed 0) from the 10,605 movie-review sentences, so 100k
documents hold 5.66 M words and the vocabulary is the real one (18,600 words).
"""
import numpy as np
import pytest

from engine.datasets import movie_reviews
from engine.text import TextVectorization, pad_sequences

CONFIGS = {
    "int": dict(),
    "multi_hot_20k": dict(max_tokens=20000, output_mode="multi_hot"),
    "tf_idf_20k": dict(max_tokens=20000, output_mode="tf_idf"),
    "bigrams_20k": dict(max_tokens=20000, ngrams=2, output_mode="multi_hot"),
    "character": dict(split="character"),
}


@pytest.fixture(scope="module")
def sentences():
    return list(movie_reviews.load_ratings()[2])


@pytest.fixture(scope="module")
def docs_100k(sentences):
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(sentences), size=(100_000, 3))
    return [" ".join(sentences[j] for j in row) for row in picks]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_adapt_movie_reviews(benchmark, sentences, config):
    tv = TextVectorization(**CONFIGS[config])
    benchmark.group = "adapt: 10,605 movie-review sentences"
    benchmark.pedantic(tv.adapt, args=(sentences,), rounds=5, iterations=1, warmup_rounds=1)
    assert tv.vocabulary_size() > 50


@pytest.mark.parametrize("config", list(CONFIGS))
def test_adapt_100k_documents(benchmark, docs_100k, config):
    tv = TextVectorization(**CONFIGS[config])
    benchmark.group = "adapt: 100,000 documents (5.66 M words)"
    benchmark.pedantic(tv.adapt, args=(docs_100k,), rounds=3, iterations=1)
    assert tv.vocabulary_size() > 50


@pytest.mark.parametrize("config", ["int", "multi_hot_20k"])
def test_call_10k_documents(benchmark, docs_100k, config):
    tv = TextVectorization(**CONFIGS[config])
    tv.adapt(docs_100k)
    benchmark.group = "call: vectorize 10,000 of the documents"
    out = benchmark.pedantic(tv, args=(docs_100k[:10_000],), rounds=3, iterations=1)
    assert out.shape[0] == 10_000


def test_pad_sequences_100k(benchmark, docs_100k):
    tv = TextVectorization(output_mode="int", ragged=True)
    tv.adapt(docs_100k)
    seqs = tv(docs_100k)
    benchmark.group = "pad_sequences: 100,000 sequences to 200"
    out = benchmark.pedantic(pad_sequences, args=(seqs,), kwargs=dict(maxlen=200), rounds=3, iterations=1)
    assert out.shape == (100_000, 200)
