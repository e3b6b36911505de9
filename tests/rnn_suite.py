"""The tests every recurrent op runs: reference vs finite differences, every backend vs the
reference, edge shapes, hypothesis, mask semantics, inference (no_grad) vs training forward,
bad input, and the torch / Keras 3 oracles (skipped when absent).

A test module does `from rnn_suite import *` and sets VARIANTS (the op variants it covers) and
TORCH_VARIANTS (those torch implements); conftest.py parametrizes `variant` and
`torch_variant` from them.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnn_cases as rc

__all__ = ["test_reference_matches_finite_differences", "test_backend_matches_reference",
           "test_edge_shapes", "test_hypothesis_shapes_and_options", "test_mask_semantics_without_oracles",
           "test_one_graph_node_and_no_grad", "test_inference_matches_training_forward",
           "test_bad_input_names_the_argument", "test_cpp_kernels_check_their_arguments",
           "test_float32_bias_gradient_is_summed_exactly", "test_every_gemm_tile_matches_reference",
           "test_every_weight_gradient_path_matches_reference",
           "test_cpp_backward_reads_the_state_gradient_in_any_layout",
           "test_gradient_of_the_outputs_alone_matches_reference",
           "test_gradient_of_a_final_state_alone_matches_reference",
           "test_matches_torch",
           "test_matches_keras"]

BACKENDS = rc.other_backends()
# (B, T, F, H): B=1, T=1, H=1, and all of them at once.
EDGE_SHAPES = [(1, 1, 1, 1), (1, 4, 2, 3), (3, 1, 2, 2), (2, 3, 2, 1)]


@pytest.mark.parametrize("option", rc.OPTIONS)
def test_reference_matches_finite_differences(variant, option):
    rc.check_reference_gradients(rc.make_case(variant, option))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_reference(backend, variant, option, dtype):
    rc.check_backend(rc.make_case(variant, option), backend, dtype)


# Every register tile the C++ loops can run (engine/tuning.py picks one per CPU, and
# SEQFUSE_GEMM_TILE forces one), so a CPU that picks another tile is still tested. Gate widths
# (H = 37) need every column pass: full tiles, one- and half-vector panels, single columns.
# A thread's rows run as full tiles and shorter ones for the rest (kernels/cpu/gemm.hpp,
# gemm_panel: a remainder of up to MR - 3 rows runs with the last full tile as two tiles of
# about half); the batch sizes give the short tiles every height. On two threads B = 83 is
# split (41 + 42 rows, enough work), the others stay on one thread. With 8-row tiles the
# short tiles then have 1 (B = 1), 2 (2), 3 (3), 4 and 5 (83), 6 and 7 (13) and 6 (14) rows;
# with 6-row tiles 1, 2, 3, 4 (7: 4 + 3; 14: 6 + 4 + 4) and 5 (83); with 4-row tiles 1-3.
# "auto" also runs a batch whose rows outgrow a 48 KiB L1 data cache on two threads, where an
# AVX-512 float build switches to the 6x4 tile (kernels/cpu/gemm.hpp, step_tile).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", ["plain", "everything"])
@pytest.mark.parametrize("B", [83, 14, 13, 7, 3, 2, 1])
@pytest.mark.parametrize("tile", rc.choice_values("gemm_tile"))
def test_every_gemm_tile_matches_reference(variant, tile, B, option, dtype):
    from engine import tuning
    with tuning.forced("gemm_tile", tile):
        rc.check_backend(rc.make_case(variant, option, B=B, T=12, F_=21, H=37), "cpp", dtype)
        if tile == "auto" and B == 83:
            rc.check_backend(rc.make_case(variant, option, B=300, T=4, F_=140, H=96), "cpp", dtype)


# Both ways the C++ backend's weight gradients run (engine/_blas.py matmul_tn_sequences: our
# tile on the sequences in place, or OpenBLAS on gathered rows; SEQFUSE_WEIGHT_GRADIENTS), with
# every source layout: go_backwards (x reversed), dropout (the states scaled), masks, T = 1.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("path", rc.choice_values("weight_gradients"))
def test_every_weight_gradient_path_matches_reference(variant, path, option, dtype):
    from engine import tuning
    with tuning.forced("weight_gradients", path):
        rc.check_backend(rc.make_case(variant, option, B=7, T=9, F_=5, H=19), "cpp", dtype)
        rc.check_backend(rc.make_case(variant, option, B=4, T=1, F_=3, H=6), "cpp", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_the_outputs_alone_matches_reference(backend, variant, option, dtype):
    rc.check_output_gradient_alone(rc.make_case(variant, option), backend, dtype)


@pytest.mark.parametrize("option", ["plain", "last_output", "mask_holes", "go_backwards", "initial_state"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_a_final_state_alone_matches_reference(backend, variant, option):
    rc.check_state_gradient_alone(rc.make_case(variant, option), backend, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_backward_reads_the_state_gradient_in_any_layout(variant, dtype):
    rc.check_state_gradient_layouts(variant, dtype)


@pytest.mark.parametrize("option", ["plain", "masked_row", "everything"])
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: "B%d-T%d-F%d-H%d" % s)
def test_edge_shapes(variant, shape, option):
    case = rc.make_case(variant, option, *shape)
    rc.check_reference_gradients(case)
    for backend in BACKENDS:
        if rc.implements(backend, case.op):
            rc.check_backend(case, backend, np.float64)
            rc.check_backend(case, backend, np.float32)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(rc.OPTIONS),
       B=st.integers(1, 3), T=st.integers(1, 5), F_=st.integers(1, 3), H=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1))
def test_hypothesis_shapes_and_options(variant, option, B, T, F_, H, seed):
    case = rc.make_case(variant, option, B, T, F_, H, seed=seed)
    rc.check_reference_gradients(case)
    for backend in BACKENDS:
        if rc.implements(backend, case.op):
            rc.check_backend(case, backend, np.float64)


def test_mask_semantics_without_oracles(variant):
    rc.check_mask_semantics(variant)


def test_one_graph_node_and_no_grad(variant):
    rc.check_one_node(variant)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.INFERENCE_OPTIONS)
@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
def test_inference_matches_training_forward(backend, variant, option, dtype):
    rc.check_inference(variant, option, backend, dtype)


@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
def test_float32_bias_gradient_is_summed_exactly(backend, variant):
    # 6,400 rows per column: summed in float32 row after row the bias gradient lost ~2e-6 of
    # its largest entry (NumPy's axis-0 sum is not pairwise); every backend sums in float64.
    rc.skip_unless_implemented(backend, rc.VARIANTS[variant][0])
    dbias, exact = rc.bias_sum_case(backend, variant)
    assert dbias.dtype == np.float32
    assert np.abs(dbias - exact).max() <= 2e-7 * np.abs(exact).max()


def test_bad_input_names_the_argument(variant):
    rc.check_bad_input(variant)


def test_cpp_kernels_check_their_arguments(variant):
    rc.check_cpp_boundary(variant)


@pytest.mark.parametrize("option", rc.TORCH_OPTIONS)
def test_matches_torch(torch_variant, option):
    rc.check_against_torch(torch_variant, option)


@pytest.mark.parametrize("option", rc.KERAS_OPTIONS)
def test_matches_keras(variant, option):
    rc.check_against_keras(variant, option)
