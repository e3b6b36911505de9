"""LSTM: reference vs finite differences, every backend vs the reference,
edge shapes, hypothesis, bad input, and the torch / Keras 3 oracles (skipped when absent)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnn_cases as rc

VARIANTS = ["lstm"]
BACKENDS = rc.other_backends()
# (B, T, F, H): B=1, T=1, H=1, and all of them at once.
EDGE_SHAPES = [(1, 1, 1, 1), (1, 4, 2, 3), (3, 1, 2, 2), (2, 3, 2, 1)]


@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_matches_finite_differences(variant, option):
    rc.check_reference_gradients(rc.make_case(variant, option))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_reference(backend, variant, option, dtype):
    rc.check_backend(rc.make_case(variant, option), backend, dtype)


@pytest.mark.parametrize("option", ["plain", "masked_row", "everything"])
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: "B%d-T%d-F%d-H%d" % s)
@pytest.mark.parametrize("variant", VARIANTS)
def test_edge_shapes(variant, shape, option):
    case = rc.make_case(variant, option, *shape)
    rc.check_reference_gradients(case)
    for backend in BACKENDS:
        if rc.implements(backend, case.op):
            rc.check_backend(case, backend, np.float64)
            rc.check_backend(case, backend, np.float32)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(VARIANTS), option=st.sampled_from(rc.OPTIONS),
       B=st.integers(1, 3), T=st.integers(1, 5), F_=st.integers(1, 3), H=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1))
def test_hypothesis_shapes_and_options(variant, option, B, T, F_, H, seed):
    case = rc.make_case(variant, option, B, T, F_, H, seed=seed)
    rc.check_reference_gradients(case)
    for backend in BACKENDS:
        if rc.implements(backend, case.op):
            rc.check_backend(case, backend, np.float64)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mask_semantics_without_oracles(variant):
    rc.check_mask_semantics(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_graph_node_and_no_grad(variant):
    rc.check_one_node(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_input_names_the_argument(variant):
    rc.check_bad_input(variant)


@pytest.mark.parametrize("option", rc.TORCH_OPTIONS)
@pytest.mark.parametrize("variant", ["lstm"])
def test_matches_torch(variant, option):
    rc.check_against_torch(variant, option)


@pytest.mark.parametrize("option", rc.KERAS_OPTIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_keras(variant, option):
    rc.check_against_keras(variant, option)


def test_convert_lstm_sums_biases_and_names_missing_keys():
    from engine.convert import lstm_from_torch
    rng = np.random.default_rng(0)
    state = {"lstm.weight_ih_l0": rng.random((8, 3)), "lstm.weight_hh_l0": rng.random((8, 2)),
             "lstm.bias_ih_l0": rng.random(8), "lstm.bias_hh_l0": rng.random(8)}
    kernel, recurrent_kernel, bias = lstm_from_torch(state)
    np.testing.assert_array_equal(kernel, state["lstm.weight_ih_l0"].T)
    np.testing.assert_array_equal(recurrent_kernel, state["lstm.weight_hh_l0"].T)
    np.testing.assert_array_equal(bias, state["lstm.bias_ih_l0"] + state["lstm.bias_hh_l0"])
    with pytest.raises(KeyError, match="weight_ih_l1"):
        lstm_from_torch(state, layer=1)
    with pytest.raises(ValueError, match=r"lstm expects weight_ih \(4\*H, F\)"):
        lstm_from_torch({"weight_ih_l0": np.zeros((6, 3)), "weight_hh_l0": np.zeros((6, 2))})
