"""SimpleRNN: the shared recurrent-op suite (rnn_suite.py) plus SimpleRNN-specific checks."""
from __future__ import annotations

import numpy as np
from rnn_suite import *  # noqa: F401,F403  the shared tests, parametrized by VARIANTS

VARIANTS = ["simple_rnn"]
TORCH_VARIANTS = ["simple_rnn"]


def test_convert_simple_rnn_without_bias():
    from engine.convert import simple_rnn_from_torch
    w_ih, w_hh = np.arange(6.0).reshape(2, 3), np.arange(4.0).reshape(2, 2)
    kernel, recurrent_kernel, bias = simple_rnn_from_torch({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh})
    np.testing.assert_array_equal(kernel, w_ih.T)
    np.testing.assert_array_equal(recurrent_kernel, w_hh.T)
    np.testing.assert_array_equal(bias, np.zeros(2))
