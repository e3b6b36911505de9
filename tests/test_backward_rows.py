"""Both places LSTM's and GRU's C++ backwards write a step's gradient rows (GradientRows,
kernels/cpu/projection.hpp; the "backward_rows" choice, SEQFUSE_BACKWARD_ROWS): in place, or
in a workspace the step's GEMMs read and that is then streamed out. "auto" streams only where
a thread's rows of a step outgrow half the L2, beyond these sizes, so each way is forced, with
every option of the shared suite (masks, dropout, go_backwards, initial states; GRU with
reset_after and without), B = 83 split over two threads' row ranges, and one step of a few rows.
(SimpleRNN writes its rows in place either way.)"""
from __future__ import annotations

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends, tuning

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


def _ways():
    try:
        from engine import _C
    except ImportError:
        return []
    return _C.choice_options()["backward_rows"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("rows", _ways())
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before"])
def test_every_backward_rows_way_matches_reference(variant, rows, option, dtype):
    with tuning.forced("backward_rows", rows):
        rc.check_backend(rc.make_case(variant, option, B=83, T=12, F_=21, H=37), "cpp", dtype)
        rc.check_backend(rc.make_case(variant, option, B=3, T=1, F_=2, H=5), "cpp", dtype)
