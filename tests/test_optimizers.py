"""Optimizers: Keras 3's trajectories step for step, row-sparse updates, and a trained MLP."""
import os

import numpy as np
import pytest

import engine as en
from engine import losses, optimizers
from engine.sparse import RowSparse

# Hyperparameters are dyadic so Keras's float32 copies of them are exact.
CONFIGS = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("AdamW", {"weight_decay": 0.0078125}),
    ("Adam", {"clipnorm": 0.125}), ("SGD", {"clipvalue": 0.0625}), ("RMSprop", {"global_clipnorm": 0.25}),
]


def _grads(steps, shape):
    rng = np.random.default_rng(4)
    return [rng.standard_normal(shape) for _ in range(steps)]


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_matches_keras(name, kwargs):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    start = np.random.default_rng(5).standard_normal((3, 4))
    grads = _grads(5, start.shape)
    # 1/16: Keras keeps the learning rate in a float32 variable; this one is exact there.
    ours_p = en.Tensor(start.copy())
    ours = getattr(optimizers, name)(learning_rate=0.0625, **kwargs)
    var = keras.Variable(start.copy(), dtype="float64")
    theirs = getattr(keras.optimizers, name)(learning_rate=0.0625, **kwargs)
    for g in grads:
        ours.apply_gradients([(g, ours_p)])
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    # Keras's norm clipping rounds at ~1e-9 even on float64 inputs (measured: 7e-10 on
    # _clip_by_norm alone); everything else agrees to float64 rounding.
    clipped = {"clipnorm", "global_clipnorm"} & set(kwargs)
    np.testing.assert_allclose(ours_p.data, keras.ops.convert_to_numpy(var),
                               rtol=1e-7 if clipped else 1e-10, atol=1e-7 if clipped else 1e-12)


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_row_sparse_update_touches_only_its_rows(name, kwargs):
    start = np.random.default_rng(6).standard_normal((5, 3))
    sparse_p = en.Tensor(start.copy())
    sparse_opt = getattr(optimizers, name)(learning_rate=0.0625, **kwargs)
    rows = np.array([4, 1, 4])
    for g in _grads(3, (3, 3)):
        sparse_opt.apply_gradients([(RowSparse(rows, g, (5, 3)), sparse_p)])
    untouched = [0, 2, 3]
    np.testing.assert_array_equal(sparse_p.data[untouched], start[untouched])
    # the touched rows follow the dense rule applied to just those rows
    reference = en.Tensor(start[[1, 4]].copy())
    ref_opt = getattr(optimizers, name)(learning_rate=0.0625, **kwargs)
    for g in _grads(3, (3, 3)):
        ref_opt.apply_gradients([(RowSparse(rows, g, (5, 3)).to_dense()[[1, 4]], reference)])
    np.testing.assert_allclose(sparse_p.data[[1, 4]], reference.data, rtol=1e-12)


@pytest.mark.parametrize("backend", [n for n in en.backends.available() if en.backends.get(n).DEVICE == "cpu"])
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_sparse_embedding_gradients_update_as_dense_ones(backend, name, kwargs):
    # The same ids every step, so the dense rule never sees a row the sparse one skips; ids
    # repeat and include both ends of the table, so the uncoalesced gradient needs summing.
    ids = np.array([[0, 5, 9, 5], [9, 9, 2, 0]])
    touched, untouched = np.unique(ids), [1, 3, 4, 6, 7, 8]
    start = np.random.default_rng(8).standard_normal((10, 3))
    weights = _grads(3, ids.shape + (3,))
    results = {}
    for sparse in (False, True):
        table = en.Tensor(start.copy(), requires_grad=True)
        opt = getattr(optimizers, name)(learning_rate=0.0625, **kwargs)
        with en.use_backend(backend):
            for w in weights:
                table.grad = None
                (en.functional.embedding(ids, table, sparse=sparse) * en.Tensor(w)).sum().backward()
                assert isinstance(table.grad, RowSparse) == sparse
                opt.step([table])
        results[sparse] = table.data
    np.testing.assert_allclose(results[True][touched], results[False][touched], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(results[True][untouched], start[untouched])


def test_bad_arguments():
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        optimizers.SGD(learning_rate=0)
    with pytest.raises(ValueError, match="does not match parameter shape"):
        optimizers.SGD().apply_gradients([(np.zeros(3), en.Tensor(np.zeros(4)))])
    with pytest.raises(ValueError, match="expected an Optimizer"):
        optimizers.get("adagradx")


def test_mlp_learns_two_class_problem_with_adam():
    rng = np.random.default_rng(7)
    n = 400
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = ((x[:, 0] ** 2 + x[:, 1] ** 2) < 1.2).astype(np.float32)[:, None]  # a disc: not linear
    w1 = en.Tensor(rng.standard_normal((2, 32)).astype(np.float32) * 0.5, requires_grad=True)
    b1 = en.Tensor(np.zeros(32, np.float32), requires_grad=True)
    w2 = en.Tensor(rng.standard_normal((32, 1)).astype(np.float32) * 0.5, requires_grad=True)
    b2 = en.Tensor(np.zeros(1, np.float32), requires_grad=True)
    params = [w1, b1, w2, b2]
    opt = optimizers.Adam(learning_rate=0.03)
    for _ in range(300):
        for p in params:
            p.grad = None
        logits = (x @ w1 + b1).relu() @ w2 + b2
        losses.binary_crossentropy(y, logits, from_logits=True).backward()
        opt.step(params)
    with en.no_grad():
        accuracy = (((x @ w1 + b1).relu() @ w2 + b2).numpy() > 0) == (y > 0.5)
    assert accuracy.mean() > 0.95


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_variables_follow_kerass_order_and_restore_exactly(name, kwargs):
    """optimizer.variables has Keras's entries in Keras's order (compared by their values after
    the same steps), and save/load_own_variables into a fresh optimizer continues exactly."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    shapes = [(3, 4), (4,)]
    starts = [np.random.default_rng(i).standard_normal(s) for i, s in enumerate(shapes)]
    grads = [_grads(5, s) for s in shapes]
    ours = getattr(optimizers, name)(learning_rate=0.0625, **kwargs)
    params = [en.Tensor(s.copy()) for s in starts]
    for step in range(3):
        ours.apply_gradients([(g[step], p) for g, p in zip(grads, params)])
    store = {}
    ours.save_own_variables(store)
    keras = pytest.importorskip("keras")
    theirs = getattr(keras.optimizers, name)(learning_rate=0.0625, **kwargs)
    kvars = [keras.Variable(s.copy(), dtype="float64") for s in starts]
    for step in range(3):
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g[step]), v) for g, v in zip(grads, kvars)])
    expected = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    assert [np.shape(v) for v in store.values()] == [np.shape(v) for v in expected]
    for mine, keras_value in zip(store.values(), expected):
        np.testing.assert_allclose(mine, keras_value, rtol=1e-6, atol=1e-9)
    fresh = getattr(optimizers, name)(learning_rate=0.5, **kwargs)
    copies = [en.Tensor(p.data.copy()) for p in params]
    fresh.build(copies)
    fresh.load_own_variables(store)
    assert fresh.learning_rate == 0.0625 and fresh.iterations == 3
    for step in range(3, 5):
        ours.apply_gradients([(g[step], p) for g, p in zip(grads, params)])
        fresh.apply_gradients([(g[step], p) for g, p in zip(grads, copies)])
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a.data, b.data)


def test_learning_rate_is_settable_and_state_errors_are_clear():
    opt = optimizers.Adam(learning_rate=0.01)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and opt.variables[1] == 0.5
    for bad in (0, -1.0, float("nan"), "fast", True):
        with pytest.raises(ValueError, match="learning_rate must be positive"):
            opt.learning_rate = bad
    scheduled = optimizers.SGD(learning_rate=lambda step: 0.1 / (step + 1))
    assert scheduled.learning_rate == 0.1 and len(scheduled.variables) == 1   # no learning_rate entry
    with pytest.raises(TypeError, match="learning-rate schedule"):
        scheduled.learning_rate = 0.1
    p = en.Tensor(np.zeros((2, 2)))
    opt.build([p])
    with pytest.raises(ValueError, match=r"expected variables '0'..'3' \(1 built parameters\)"):
        opt.load_own_variables({"0": np.array(1)})
    with pytest.raises(ValueError, match=r"variable 2 must have shape \(2, 2\), got \(3,\)"):
        opt.load_own_variables({"0": np.array(1), "1": np.array(0.1), "2": np.zeros(3), "3": np.zeros((2, 2))})
    assert opt.iterations == 0 and opt.learning_rate == 0.5      # a bad store changes nothing
