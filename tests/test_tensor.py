"""Autograd core: every Tensor op against float64 finite differences and torch autograd."""
import numpy as np
import pytest

import engine as en
from engine.testing import gradcheck

rng = np.random.default_rng(0)


def T(*shape, positive=False, requires_grad=True):
    data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return en.Tensor(data, requires_grad=requires_grad)


UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "abs": lambda a: a.abs(),
    "sqrt": lambda a: a.sqrt(),
    "pow_const": lambda a: a ** 3,
    "sum_all": lambda a: a.sum(),
    "sum_axis": lambda a: a.sum(axis=1),
    "sum_keep": lambda a: a.sum(axis=(0, 2), keepdims=True),
    "mean": lambda a: a.mean(axis=-1),
    "max_axis": lambda a: a.max(axis=1),
    "max_all_keep": lambda a: a.max(keepdims=True),
    "reshape": lambda a: a.reshape(4, -1),
    "transpose": lambda a: a.transpose(2, 0, 1),
    "T": lambda a: a.T,
    "getitem": lambda a: a[1:, ::2, [0, 0, 3]],
    "softmax": lambda a: a.softmax(axis=-1),
    "log_softmax": lambda a: a.log_softmax(axis=1),
    "logsumexp": lambda a: a.logsumexp(axis=-1),
    "clip": lambda a: a.clip(-0.5, 0.5),
    "scalar_ops": lambda a: 2.0 - a * 3 / 4 + 1,
    "rdiv": lambda a: 1.0 / a,
}

BINARY = {
    "add_broadcast": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck(name):
    positive = name in ("log", "sqrt", "rdiv")
    assert gradcheck(UNARY[name], [T(3, 4, 5, positive=positive)])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast_gradcheck(name):
    a = T(3, 4, 5, positive=True)
    b = T(4, 1, positive=True)
    assert gradcheck(BINARY[name], [a, b])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)),
                                    ((2, 3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (2, 4, 2))])
def test_matmul_gradcheck(shapes):
    a, b = T(*shapes[0]), T(*shapes[1])
    assert gradcheck(lambda a, b: a @ b, [a, b])


def test_concatenate_stack_where_gradcheck():
    a, b = T(2, 3), T(2, 3)
    assert gradcheck(lambda a, b: en.concatenate([a, b, a], axis=1), [a, b])
    assert gradcheck(lambda a, b: en.stack([a, b], axis=1), [a, b])
    cond = rng.random((2, 3)) > 0.5
    assert gradcheck(lambda a, b: en.where(cond, a, b * 2), [a, b])


def test_max_ties_split_gradient():
    x = en.Tensor(np.array([[1.0, 3.0, 3.0]]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5]])


def test_gradients_accumulate_across_uses_and_backward_calls():
    x = en.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    (x * 3).sum().backward()  # a second graph adds to .grad
    np.testing.assert_allclose(x.grad, 2 * x.data + 4)


@pytest.mark.parametrize("loss", [lambda x: x.sum(), lambda x: x.sum(axis=0).sum(),
                                  lambda x: x.reshape(6).sum(), lambda x: x.T.sum(keepdims=True)])
def test_leaf_grads_are_writable_arrays_of_their_own(loss):
    # Sum's backward returns a read-only broadcast view; a leaf's .grad must still be an array
    # the caller may update in place (gradient clipping, optimizers) without touching others.
    x, y = T(2, 3), T(2, 3)
    loss(x).backward()
    (y * 1).sum().backward()
    for t in (x, y):
        assert t.grad.flags.writeable and t.grad.strides == (24, 8)
        t.grad *= 2
        np.testing.assert_array_equal(t.grad, np.full((2, 3), 2.0))


def test_backward_copies_a_read_only_seed_gradient():
    x = T(3)
    seed = np.broadcast_to(np.float64(4), (3,))
    x.backward(seed)
    assert x.grad.flags.writeable
    x.grad += 1
    np.testing.assert_array_equal(seed, [4, 4, 4])
    np.testing.assert_array_equal(x.grad, [5, 5, 5])


def test_shared_subexpression_diamond():
    def fn(x):
        h = x.tanh()  # one node consumed by three others
        return (h * 2 + h.exp() * h).sum()
    assert gradcheck(fn, [T(3)])


@pytest.mark.parametrize("zero_output_grads", [True, False])
def test_an_unused_output_gets_zeros_or_none(zero_output_grads):
    # A Function's backward gets zeros for an output no gradient reached, or None where it
    # says zero_output_grads = False (engine/function.py; the recurrent node does).
    from engine.function import Function
    seen = []

    class Split(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g_double, g_triple):
            seen.append((g_double, g_triple))
            zero = 0 if g_triple is None else g_triple
            return 2 * g_double + 3 * zero
    Split.zero_output_grads = zero_output_grads
    x = en.Tensor(np.arange(3.0), requires_grad=True)
    Split.apply(x)[0].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    (g_double, g_triple), = seen
    np.testing.assert_array_equal(g_double, np.ones(3))
    if zero_output_grads:
        np.testing.assert_array_equal(g_triple, np.zeros(3))
    else:
        assert g_triple is None


def test_float32_stays_float32():
    x = en.Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    y = (x * 2.5 + 1).sigmoid() @ x
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_no_grad_detach_and_requires_grad():
    x = T(2, 2)
    with en.no_grad():
        y = x * 2
    assert not y.requires_grad and y._node is None
    assert not x.detach().requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        (T(2, requires_grad=False) * 2).sum().backward()
    with pytest.raises(TypeError, match="float dtype"):
        en.Tensor(np.arange(3), requires_grad=True)


def test_graph_freed_after_backward():
    x = T(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_comparisons_have_no_grad():
    x = T(4)
    assert (x > 0).dtype == bool and not (x > 0).requires_grad
    np.testing.assert_array_equal((x == x).numpy(), True)


def test_softmax_stable_for_large_inputs():
    x = en.Tensor(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(x.softmax().numpy(), [[0.5, 0.5, 0.0]])
    assert np.isfinite(x.log_softmax().numpy()[0, :2]).all()


def test_bad_inputs():
    with pytest.raises(TypeError, match="numeric"):
        en.Tensor(np.array(["a"]))
    with pytest.raises(RuntimeError, match="scalar"):
        T(2, 2).backward()
    with pytest.raises(ValueError, match="grad shape"):
        T(2, 2).exp().backward(np.ones(3))


def test_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    a_np, b_np = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    a, b = en.Tensor(a_np, requires_grad=True), en.Tensor(b_np, requires_grad=True)
    ta = torch.tensor(a_np, requires_grad=True)
    tb = torch.tensor(b_np, requires_grad=True)
    ours = ((a @ b).tanh().log_softmax(axis=1) * (a @ b).sigmoid()).max(axis=0).sum()
    theirs = (torch.log_softmax(torch.tanh(ta @ tb), 1) * torch.sigmoid(ta @ tb)).amax(0).sum()
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_torch(name):
    torch = pytest.importorskip("torch")
    torch_fn = {
        "neg": lambda a: -a, "exp": torch.exp, "log": torch.log, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "relu": torch.relu, "abs": torch.abs, "sqrt": torch.sqrt,
        "pow_const": lambda a: a ** 3, "sum_all": torch.sum, "sum_axis": lambda a: a.sum(1),
        "sum_keep": lambda a: a.sum((0, 2), keepdim=True), "mean": lambda a: a.mean(-1),
        "max_axis": lambda a: a.amax(1), "max_all_keep": lambda a: a.amax((0, 1, 2), keepdim=True),
        "reshape": lambda a: a.reshape(4, -1), "transpose": lambda a: a.permute(2, 0, 1),
        "T": lambda a: a.permute(2, 1, 0), "getitem": lambda a: a[1:, ::2][:, :, [0, 0, 3]],
        "softmax": lambda a: torch.softmax(a, -1), "log_softmax": lambda a: torch.log_softmax(a, 1),
        "logsumexp": lambda a: torch.logsumexp(a, -1), "clip": lambda a: a.clamp(-0.5, 0.5),
        "scalar_ops": lambda a: 2.0 - a * 3 / 4 + 1, "rdiv": lambda a: 1.0 / a,
    }[name]
    data = np.abs(rng.standard_normal((3, 4, 5))) + 0.5 if name in ("log", "sqrt", "rdiv") \
        else rng.standard_normal((3, 4, 5))
    x = en.Tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    out, tout = UNARY[name](x), torch_fn(tx)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_leaves_never_share_a_gradient_array():
    a, b = T(3), T(3)
    (a + b).sum().backward()  # Add hands the same array to both inputs
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad *= 2
    np.testing.assert_array_equal(b.grad, np.ones(3))
    c, d = T(2, 3), T(6)
    (c + d.reshape(2, 3)).sum().backward()  # d's gradient is a reshaped view of c's
    assert not np.shares_memory(c.grad, d.grad)


def test_seed_gradient_is_not_kept_by_a_leaf():
    a, b = T(3), T(3)
    seed = np.ones(3)
    (a + b).backward(seed)
    assert not np.shares_memory(a.grad, seed) and not np.shares_memory(b.grad, seed)


@pytest.mark.parametrize("name", sorted(BINARY) + ["matmul", "concatenate", "stack", "where"])
def test_binary_and_joining_ops_match_torch(name):
    torch = pytest.importorskip("torch")
    a_np = np.abs(rng.standard_normal((3, 4))) + 0.5
    b_np = np.abs(rng.standard_normal((3, 4) if name in ("concatenate", "stack", "where") else (4, 4)
                                      if name == "matmul" else (1, 4))) + 0.5
    cond = rng.random((3, 4)) > 0.5
    ours_fn = {**BINARY, "matmul": lambda a, b: a @ b,
               "concatenate": lambda a, b: en.concatenate([a, b], axis=1),
               "stack": lambda a, b: en.stack([a, b], axis=0),
               "where": lambda a, b: en.where(cond, a, b)}[name]
    torch_fn = {"add_broadcast": lambda a, b: a + b, "sub": lambda a, b: a - b,
                "mul": lambda a, b: a * b, "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
                "matmul": lambda a, b: a @ b, "concatenate": lambda a, b: torch.cat([a, b], 1),
                "stack": lambda a, b: torch.stack([a, b], 0),
                "where": lambda a, b: torch.where(torch.tensor(cond), a, b)}[name]
    a, b = en.Tensor(a_np, requires_grad=True), en.Tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    out, tout = ours_fn(a, b), torch_fn(ta, tb)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_post_accumulate_grad_hook_fires_once_with_the_complete_gradient():
    # torch's contract, which the data-parallel reducer relies on: one call per leaf per
    # backward, after every use of the leaf has been summed into .grad.
    w, a, b = T(3), T(3), T(3)
    seen = []
    for name, t in (("w", w), ("a", a), ("b", b)):
        t.register_post_accumulate_grad_hook(lambda t, name=name: seen.append((name, t.grad.copy())))
    ((w * a).tanh() * w + b * 3.0).sum().backward()
    assert sorted(name for name, _ in seen) == ["a", "b", "w"]
    for name, grad in seen:
        np.testing.assert_array_equal(grad, {"w": w, "a": a, "b": b}[name].grad)
    # torch fires with the same gradients (the sum over both uses of w).
    torch = pytest.importorskip("torch")
    tw, ta, tb = (torch.tensor(t.data, requires_grad=True) for t in (w, a, b))
    fired = {}

    def record(name):
        def hook(t):
            fired[name] = t.grad.numpy().copy()
        return hook

    for name, t in (("w", tw), ("a", ta), ("b", tb)):
        t.register_post_accumulate_grad_hook(record(name))
    ((tw * ta).tanh() * tw + tb * 3.0).sum().backward()
    for name, grad in seen:
        np.testing.assert_allclose(grad, fired[name], rtol=1e-12)


def test_post_accumulate_grad_hook_remove_and_non_leaf():
    w = T(2)
    calls = []
    handle = w.register_post_accumulate_grad_hook(calls.append)
    (w * 2.0).sum().backward()
    handle.remove()
    (w * 2.0).sum().backward()
    assert calls == [w]
    w.register_post_accumulate_grad_hook(calls.append)
    w.sum().backward()  # a leaf whose gradient reaches it straight from the root
    assert calls == [w, w]
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2.0).register_post_accumulate_grad_hook(calls.append)
