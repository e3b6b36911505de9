"""Embedding: every CPU backend against the reference, dense and row-sparse gradients."""
import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine.sparse import RowSparse
from engine.testing import assert_backends_match, gradcheck

CPU_BACKENDS = [n for n in en.backends.available() if en.backends.get(n).DEVICE == "cpu"]
# Gathers are exact; gradients sum the same rows in a different order per backend:
# a few ulp in float32, ~1e-15 in float64.
RTOL = {np.float32: 1e-6, np.float64: 1e-13}


def _ids(rng, shape, vocab):
    ids = rng.integers(0, vocab, size=shape)
    ids.flat[: min(ids.size, 4)] = 3  # repeated ids must accumulate
    return ids


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,vocab,dim", [((4, 7), 10, 5), ((1, 1), 4, 1), ((3,), 50, 8),
                                             ((2, 3, 4), 6, 3), ((64, 50), 1000, 16)])
@pytest.mark.parametrize("sparse", [False, True])
def test_backends_match_reference(dtype, shape, vocab, dim, sparse):
    rng = np.random.default_rng(hash((shape, vocab, dim)) % 2**32)
    ids = _ids(rng, shape, vocab)
    table = rng.standard_normal((vocab, dim)).astype(dtype)
    errors = assert_backends_match(lambda i, t: F.embedding(i, t, sparse=sparse), [ids, table],
                                   [False, True], rtol=RTOL[dtype])
    assert set(errors) == set(CPU_BACKENDS) - {"reference"}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 3, 105, 128])
def test_large_gathers_are_exact(backend, dtype, dim):
    """Outputs over 16 MiB take the C++ kernel's streaming stores (kernels/cpu/embedding.hpp
    kStreamBytes): odd widths start rows off the vector-width boundary (stream_row,
    cpu/simd.hpp), so the plain head and tail of each row are checked with the streamed middle;
    a table of odd width also runs the rows through every alignment."""
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((997, dim)).astype(dtype)
    n = (17 << 20) // (dim * table.itemsize) + 3  # just over the threshold
    ids = rng.integers(0, 997, n)
    with en.use_backend(backend):
        out = F.embedding(ids, table).numpy()
    np.testing.assert_array_equal(out, table[ids])


@pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="engine._C not built")
@pytest.mark.parametrize("variant", ["auto", "stream_above_8mib", "stream", "plain"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim,n", [(1, 7), (3, 1000), (105, 50), (128, 33), (105, 90_000)])
def test_gather_is_exact_under_every_gather_stores_variant(variant, dtype, dim, n):
    """The C++ gather's stores (kernels/cpu/embedding.hpp, gather_streams): forced "stream"
    streams even a few rows (odd widths put every row's head and tail off the vector
    boundary), "plain" never streams, and the rules pick by the output's size (the last case,
    36 or 72 MiB, streams under both)."""
    from engine import tuning
    rng = np.random.default_rng(dim + n)
    table = rng.standard_normal((997, dim)).astype(dtype)
    ids = rng.integers(0, 997, n)
    with tuning.forced("gather_stores", variant):
        out = en.backends.get("cpp").embedding_forward(ids, table)
    np.testing.assert_array_equal(out, table[ids])


def test_reference_gradcheck_and_repeated_ids():
    table = en.Tensor(np.random.default_rng(1).standard_normal((6, 3)), requires_grad=True)
    ids = np.array([[1, 1, 5], [1, 0, 5]])
    assert gradcheck(lambda t: F.embedding(ids, t), [table])
    table.grad = None
    F.embedding(ids, table).sum().backward()
    np.testing.assert_array_equal(table.grad[:, 0], [1, 3, 0, 0, 0, 2])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sparse_gradient_holds_only_touched_rows(backend):
    table = en.Tensor(np.ones((100_000, 4), np.float32), requires_grad=True)
    with en.use_backend(backend):
        F.embedding(np.array([[7, 99_999, 7]]), table, sparse=True).sum().backward()
        assert isinstance(table.grad, RowSparse)
        np.testing.assert_array_equal(table.grad.indices, [7, 99_999, 7])  # uncoalesced, as torch
        merged = table.grad.coalesce()
    np.testing.assert_array_equal(merged.indices, [7, 99_999])
    np.testing.assert_array_equal(merged.values, [[2] * 4, [1] * 4])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("bad", [10, -1, 2**40])
def test_out_of_range_ids_raise_index_error_naming_the_id(backend, bad):
    table = en.Tensor(np.zeros((10, 2)), requires_grad=True)
    ids = np.array([[0, 1], [bad, 2]])
    with en.use_backend(backend), pytest.raises(IndexError, match=str(bad)):
        F.embedding(ids, table)
    with pytest.raises(IndexError, match=str(bad)):
        en.backends.get(backend).embedding_backward(ids, np.zeros((2, 2, 2)), 10)
    with pytest.raises(IndexError, match=str(bad)):
        en.backends.get(backend).embedding_coalesce(ids.reshape(-1), np.zeros((4, 2)), 10)


def test_bad_arguments():
    table = np.zeros((5, 2), np.float32)
    with pytest.raises(TypeError, match="ids must be an integer array, got dtype float64"):
        F.embedding(np.array([0.0, 1.0]), table)
    with pytest.raises(ValueError, match=r"table must have 2 dimensions, got shape \(5,\)"):
        F.embedding(np.array([0]), np.zeros(5))
    with pytest.raises(TypeError, match="table must be float32 or float64, got int64"):
        F.embedding(np.array([0]), np.zeros((5, 2), np.int64))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_ids(backend):
    with en.use_backend(backend):
        out = F.embedding(np.zeros((0, 3), np.int64), np.zeros((4, 2)))
    assert out.shape == (0, 3, 2)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    ids, table = _ids(rng, (8, 9), 20), rng.standard_normal((20, 6)).astype(np.float32)
    ours = en.Tensor(table, requires_grad=True)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=False)
    w = rng.standard_normal((8, 9, 6)).astype(np.float32)
    out = F.embedding(ids, ours)
    (out * en.Tensor(w)).sum().backward()
    tout = theirs(torch.tensor(ids))
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    np.testing.assert_allclose(ours.grad, theirs.weight.grad.numpy(), rtol=1e-6, atol=1e-6)


def _strided_grads(rng, n, dim, dtype):
    """grad [n,dim] laid out every way a backend may be handed one, each a view (no copy)."""
    dense = rng.standard_normal((n, dim)).astype(dtype)
    reversed_rows = np.ascontiguousarray(dense[::-1])[::-1]  # negative row stride
    fortran = np.asfortranarray(dense)  # column stride != 1
    wide = np.zeros((n, 2 * dim), dtype)
    wide[:, ::2] = dense
    misaligned = np.ndarray((n, dim), dtype, np.zeros(n * dim * dense.itemsize + 1, np.uint8), offset=1)
    misaligned[...] = dense
    packed = np.ndarray((n, dim), dtype, np.zeros(n * (dim * dense.itemsize + 2), np.uint8),
                        strides=(dim * dense.itemsize + 2, dense.itemsize))
    packed[...] = dense
    return {
        "broadcast scalar": np.broadcast_to(dtype(1.5), (n, dim)),  # Sum's backward: strides 0
        "broadcast row": np.broadcast_to(dense[0], (n, dim)),
        "reversed rows": reversed_rows,
        "fortran": fortran,
        "every other column": wide[:, ::2],
        "misaligned": misaligned,
        "packed rows": packed,
    }


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_and_coalesce_read_strided_and_broadcast_grads(backend, dtype):
    rng = np.random.default_rng(5)
    ids = _ids(rng, (30,), 12)
    module = en.backends.get(backend)
    reference = en.backends.get("reference")
    for layout, grad in _strided_grads(rng, ids.size, 7, dtype).items():
        contiguous = np.ascontiguousarray(grad)
        pairs = [(module.embedding_backward(ids, grad, 12), reference.embedding_backward(ids, contiguous, 12))]
        pairs += zip(module.embedding_coalesce(ids, grad, 12), reference.embedding_coalesce(ids, contiguous, 12))
        for actual, expected in pairs:
            assert actual.dtype == expected.dtype, layout
            np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], err_msg=f"{backend}, {layout}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("sparse", [False, True])
def test_sum_backward_through_embedding(backend, sparse):
    # .sum() right after the lookup hands the backend a read-only broadcast view.
    table = en.Tensor(np.zeros((6, 3), np.float32), requires_grad=True)
    with en.use_backend(backend):
        F.embedding(np.array([[1, 1, 5], [1, 0, 5]]), table, sparse=sparse).sum().backward()
        grad = table.grad.to_dense() if sparse else table.grad
    np.testing.assert_array_equal(grad[:, 0], [1, 3, 0, 0, 0, 2])
    assert grad.flags.writeable


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sparse_gradient_is_an_uncoalesced_view(backend):
    # As torch: one row per id, and no [N,D] copy of Sum's broadcast gradient in backward.
    ids = np.array([[1, 1, 5], [1, 0, 5]])
    table = en.Tensor(np.zeros((6, 3), np.float32), requires_grad=True)
    with en.use_backend(backend):
        F.embedding(ids, table, sparse=True).sum().backward()
        grad = table.grad
        np.testing.assert_array_equal(grad.indices, ids.reshape(-1))
        assert grad.values.shape == (6, 3) and grad.values.strides == (0, 0)  # the view itself
        assert not grad.values.flags.writeable
        merged = grad.coalesce()
    assert merged.values.flags.writeable and merged.values.strides == (12, 4)
    np.testing.assert_array_equal(merged.values[:, 0], [1, 3, 2])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ids", [[0, 9, 0, 9, 4, 0], [9], [0], [3, 3, 3], list(range(10))[::-1], []],
                         ids=["ends repeated", "last", "first", "one id thrice", "reversed", "empty"])
def test_coalesce_matches_reference(backend, dtype, ids):
    rng = np.random.default_rng(len(ids))
    ids = np.array(ids, np.int64)
    values = rng.standard_normal((ids.size, 4)).astype(dtype)
    sparse = RowSparse(ids, values, (10, 4))
    with en.use_backend("reference"):
        expected = sparse.coalesce()
        dense = sparse.to_dense()
    with en.use_backend(backend):
        actual = sparse.coalesce()
        np.testing.assert_allclose(sparse.to_dense(), dense, rtol=RTOL[dtype])
    np.testing.assert_array_equal(actual.indices, np.unique(ids))
    np.testing.assert_array_equal(expected.indices, np.unique(ids))
    assert actual.values.dtype == dtype and actual.values.shape == (np.unique(ids).size, 4)
    np.testing.assert_allclose(actual.values, expected.values, rtol=RTOL[dtype])
    for row, value in zip(actual.indices, actual.values):  # each row is the sum over its id
        np.testing.assert_allclose(value, values[ids == row].sum(axis=0), rtol=RTOL[dtype])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sparse_gradients_accumulate(backend):
    ids_a, ids_b = np.array([[1, 4], [4, 4]]), np.array([0, 4])
    w = np.arange(12.0).reshape(2, 2, 3)
    expected = np.zeros((5, 3))
    np.add.at(expected, ids_a.reshape(-1), w.reshape(4, 3))
    np.add.at(expected, ids_b, 1.0)
    with en.use_backend(backend):
        for sparse_a, sparse_b in [(True, True), (True, False), (False, True)]:
            table = en.Tensor(np.zeros((5, 3)), requires_grad=True)  # one table, two lookups
            loss = (F.embedding(ids_a, table, sparse=sparse_a) * en.Tensor(w)).sum() + \
                F.embedding(ids_b, table, sparse=sparse_b).sum()
            loss.backward()
            grad = table.grad
            assert isinstance(grad, RowSparse) == (sparse_a and sparse_b)
            np.testing.assert_array_equal(grad.to_dense() if isinstance(grad, RowSparse) else grad,
                                          expected)
        F.embedding(ids_b, table, sparse=True).sum().backward()  # a second backward adds to .grad
        expected[ids_b] += 1
        np.testing.assert_array_equal(table.grad, expected)


def test_sparse_gradient_shares_no_memory_a_caller_or_other_leaf_may_write():
    ids = np.array([2, 0])
    table = en.Tensor(np.zeros((3, 2)), requires_grad=True)
    x = en.Tensor(np.zeros((2, 2)), requires_grad=True)
    # Add hands one array (Mul's fresh, writable product) to both sides. x reaches its leaf
    # at once, or after the embedding's backward when it passes through one more Add.
    for join in (lambda rows: x + rows, lambda rows: rows + (x + 0.0)):
        table.grad = x.grad = None
        (join(F.embedding(ids, table, sparse=True)) * en.Tensor(np.ones((2, 2)))).sum().backward()
        assert not np.shares_memory(table.grad.values, x.grad)
        x.grad *= 5
        np.testing.assert_array_equal(table.grad.to_dense(), [[1, 1], [0, 0], [1, 1]])
    table.grad = None
    seed = np.ones((2, 3, 2))
    F.embedding(np.array([0, 1, 1]), table, sparse=True).backward(seed[1])  # a view of the caller's array
    assert not np.shares_memory(table.grad.values, seed)
    table.grad = None
    two = en.Tensor(np.zeros((3, 2)), requires_grad=True)
    (F.embedding(ids, table, sparse=True) + F.embedding(ids, two, sparse=True)).sum().backward()
    for t in (table, two):  # both were handed the same broadcast view
        np.testing.assert_array_equal(t.grad.to_dense(), [[1, 1], [0, 0], [1, 1]])
