"""Embedding: every CPU backend against the reference, dense and row-sparse gradients."""
import numpy as np
import pytest

import engine as en
import engine.functional as F
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
    assert isinstance(table.grad, en.sparse.RowSparse)
    np.testing.assert_array_equal(table.grad.indices, [7, 99_999])
    np.testing.assert_array_equal(table.grad.values, [[2] * 4, [1] * 4])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("bad", [10, -1, 2**40])
def test_out_of_range_ids_raise_index_error_naming_the_id(backend, bad):
    table = en.Tensor(np.zeros((10, 2)), requires_grad=True)
    ids = np.array([[0, 1], [bad, 2]])
    with en.use_backend(backend), pytest.raises(IndexError, match=str(bad)):
        F.embedding(ids, table)
    with pytest.raises(IndexError, match=str(bad)):
        en.backends.get(backend).embedding_backward(ids, np.zeros((2, 2, 2)), 10)


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
@pytest.mark.parametrize("sparse", [False, True])
def test_backward_reads_strided_and_broadcast_grads(backend, dtype, sparse):
    rng = np.random.default_rng(5)
    ids = _ids(rng, (30,), 12)
    module = en.backends.get(backend)
    reference = en.backends.get("reference")
    for layout, grad in _strided_grads(rng, ids.size, 7, dtype).items():
        expected = reference.embedding_backward(ids, np.ascontiguousarray(grad), 12, sparse=sparse)
        actual = module.embedding_backward(ids, grad, 12, sparse=sparse)
        for a, e in zip(actual if sparse else [actual], expected if sparse else [expected]):
            assert a.dtype == e.dtype, layout
            np.testing.assert_allclose(a, e, rtol=RTOL[dtype], err_msg=f"{backend}, {layout}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("sparse", [False, True])
def test_sum_backward_through_embedding(backend, sparse):
    # .sum() right after the lookup hands the backend a read-only broadcast view.
    table = en.Tensor(np.zeros((6, 3), np.float32), requires_grad=True)
    with en.use_backend(backend):
        F.embedding(np.array([[1, 1, 5], [1, 0, 5]]), table, sparse=sparse).sum().backward()
    grad = table.grad.to_dense() if sparse else table.grad
    np.testing.assert_array_equal(grad[:, 0], [1, 3, 0, 0, 0, 2])
    if sparse:
        assert table.grad.values.flags.writeable
    else:
        assert grad.flags.writeable
