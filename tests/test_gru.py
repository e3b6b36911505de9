"""GRU (reset_after True and False): the shared recurrent-op suite (rnn_suite.py) plus GRU-specific checks."""
from __future__ import annotations

import numpy as np
import pytest

import engine.functional as F
import rnn_cases as rc
from rnn_suite import *  # noqa: F401,F403  the shared tests, parametrized by VARIANTS

VARIANTS = ["gru", "gru_reset_before"]
TORCH_VARIANTS = ["gru"]  # torch.nn.GRU is Keras's reset_after=True GRU only


def test_bias_shape_follows_reset_after():
    case = rc.make_case("gru", "plain", B=2, T=3, F_=3, H=2)
    x, k, u, b = case.arrays
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\) \(reset_after=False\), got \(2, 6\)"):
        F.gru(x, k, u, b, reset_after=False)
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 6\) \(reset_after=True\), got \(6,\)"):
        F.gru(x, k, u, b[0])


def test_convert_gru_reorders_torch_gates():
    from engine.convert import gru_from_torch
    H, F_ = 2, 3
    # Row g*H + j of torch's weights belongs to gate g in torch's order r, z, n.
    gate_of_row = np.repeat([0.0, 1.0, 2.0], H)
    state = {"weight_ih_l0": np.tile(gate_of_row[:, None], (1, F_)),
             "weight_hh_l0": np.tile(gate_of_row[:, None], (1, H)),
             "bias_ih_l0": gate_of_row, "bias_hh_l0": gate_of_row + 10}
    kernel, recurrent_kernel, bias = gru_from_torch(state)
    keras_order = np.repeat([1.0, 0.0, 2.0], H)  # z, r, h
    np.testing.assert_array_equal(kernel, np.tile(keras_order, (F_, 1)))
    np.testing.assert_array_equal(recurrent_kernel, np.tile(keras_order, (H, 1)))
    np.testing.assert_array_equal(bias, np.stack([keras_order, keras_order + 10]))
