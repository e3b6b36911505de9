"""LSTM: the shared recurrent-op suite (rnn_suite.py) plus LSTM-specific checks."""
from __future__ import annotations

import numpy as np
import pytest
from rnn_suite import *  # noqa: F401,F403  the shared tests, parametrized by VARIANTS

VARIANTS = ["lstm"]
TORCH_VARIANTS = ["lstm"]


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
