"""NumPy reference backend: the executable specification every other backend is tested against.

Arrays follow the kernel table's conventions: ids are int64, float arrays are float32 or
float64 and C-contiguous; results have the input's float dtype.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ids
from ._projection import bias_gradient as _bias_gradient
from ._projection import gru_candidate_gradient as _gru_candidate_gradient
from ._projection import projected_backward as _projected_backward, projected_forward as _projected_forward

NAME = "reference"
DEVICE = "cpu"


def available() -> bool:
    return True


def why_unavailable() -> str:
    return ""


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D] = table[ids]."""
    check_ids(ids, table.shape[0])
    return table[ids]


def embedding_backward(ids, grad, num_embeddings):
    """ids: [*S], grad: [*S,D] (any strides, read-only views included) -> dense d table [V,D]."""
    check_ids(ids, num_embeddings)
    flat_ids = ids.reshape(-1)
    dense = np.zeros((num_embeddings, grad.shape[-1]), dtype=grad.dtype)
    np.add.at(dense, flat_ids, grad.reshape(flat_ids.size, grad.shape[-1]))
    return dense


def embedding_coalesce(ids, values, num_rows):
    """ids: [N] in [0, num_rows), values: [N,D] any strides
    -> (rows [U] sorted distinct ids, summed [U,D]: the sum of values over each id's positions)."""
    check_ids(ids, num_rows)
    rows, inverse = np.unique(ids, return_inverse=True)
    summed = np.zeros((rows.size, values.shape[1]), dtype=values.dtype)
    np.add.at(summed, inverse.reshape(-1), values)
    return rows, summed


# Recurrent ops (docs/kernels.md). The loops are time-major: xw [T,B,G*H] (the input
# projection, see _projection.py), mask [T,B] bool or None, dropout_mask [B,H] or None.
# Plain loops over t: this is the spec, not the fast path.

def _sigmoid(x):
    # The tanh form cannot overflow (1/(1+exp(-x)) does for float32 x < -88) and is the
    # same identity the fast backends use.
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _dropped(h, dropout_mask):
    return h if dropout_mask is None else h * dropout_mask


def _keep(mask, t):
    """[B,1] bool: which rows run step t (all of them without a mask)."""
    return None if mask is None else mask[t][:, None]


def _lstm_forward(xw, U, h0, c0, mask, dropout_mask, *, save=True):
    """xw: [T,B,4H] (gates i,f,c,o), U: [H,4H], h0/c0: [B,H]
    -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H] activated i,f,g,o). Without `save` (inference:
    nothing kept for backward) cs is only its last step [1,B,H], the final state c_T, and gates
    is None."""
    T, B, _ = xw.shape
    H = U.shape[0]
    hs = np.empty((T, B, H), dtype=xw.dtype)
    cs = np.empty((T, B, H), dtype=xw.dtype) if save else None
    gates = np.empty((T, B, 4 * H), dtype=xw.dtype) if save else None
    h, c = h0, c0
    for t in range(T):
        z = xw[t] + _dropped(h, dropout_mask) @ U
        i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H])
        g, o = np.tanh(z[:, 2 * H:3 * H]), _sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        keep = _keep(mask, t)
        if keep is not None:
            c_new, h_new = np.where(keep, c_new, c), np.where(keep, h_new, h)
        if save:
            gates[t] = np.concatenate([i, f, g, o], axis=1)
            cs[t] = c_new
        hs[t] = h_new
        h, c = h_new, c_new
    return (hs, cs, gates) if save else (hs, c[None], None)


def _lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask):
    """dhs: [T,B,H] total grad of each h_t, dc_T: [B,H]
    -> (dz [T,B,4H] grad of the pre-activations = d xw, dbias [4H], dh0 [B,H], dc0 [B,H])."""
    T, B, H = hs.shape
    dz = np.empty((T, B, 4 * H), dtype=hs.dtype)
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    dc_next = dc_T.copy()
    for t in reversed(range(T)):
        c_prev = cs[t - 1] if t > 0 else c0
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        dh = dhs[t] + dh_next
        tanh_c = np.tanh(cs[t])
        dc = dc_next + dh * o * (1 - tanh_c ** 2)
        dz_t = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                               dc * i * (1 - g ** 2), dh * tanh_c * o * (1 - o)], axis=1)
        dh_prev = _dropped(dz_t @ U.T, dropout_mask)
        dc_prev = dc * f
        keep = _keep(mask, t)
        if keep is not None:
            # A masked step copied h and c forward, so their gradients pass straight back.
            dz_t = np.where(keep, dz_t, 0)
            dh_prev, dc_prev = np.where(keep, dh_prev, dh), np.where(keep, dc_prev, dc_next)
        dz[t] = dz_t
        dh_next, dc_next = dh_prev, dc_prev
    return dz, _bias_gradient(dz), dh_next, dc_next


def _gru_forward(xw, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *, save=True):
    """xw: [T,B,3H] (gates z,r,h), U: [H,3H], recurrent_bias: [3H] or None, h0: [B,H]
    -> (hs [T,B,H], gates [T,B,3H] activated z,r,n, uh [T,B,H] = u_h, or [0] if not reset_after);
    gates and uh are None when not `save` (inference: nothing for backward is kept)."""
    T, B, _ = xw.shape
    H = U.shape[0]
    hs = np.empty((T, B, H), dtype=xw.dtype)
    gates = np.empty((T, B, 3 * H), dtype=xw.dtype) if save else None
    uh = np.empty((T, B, H) if reset_after else (0,), dtype=xw.dtype) if save else None
    h = h0
    for t in range(T):
        hd = _dropped(h, dropout_mask)
        if reset_after:
            u = hd @ U
            if recurrent_bias is not None:
                u = u + recurrent_bias
            z = _sigmoid(xw[t, :, :H] + u[:, :H])
            r = _sigmoid(xw[t, :, H:2 * H] + u[:, H:2 * H])
            n = np.tanh(xw[t, :, 2 * H:] + r * u[:, 2 * H:])
            if save:
                uh[t] = u[:, 2 * H:]
        else:
            u = hd @ U[:, :2 * H]
            z = _sigmoid(xw[t, :, :H] + u[:, :H])
            r = _sigmoid(xw[t, :, H:2 * H] + u[:, H:])
            n = np.tanh(xw[t, :, 2 * H:] + (r * hd) @ U[:, 2 * H:])
        # Keras blends with the undropped h_{t-1}; dropout only touches the matmul inputs.
        h_new = z * h + (1 - z) * n
        keep = _keep(mask, t)
        if keep is not None:
            h_new = np.where(keep, h_new, h)
        if save:
            gates[t] = np.concatenate([z, r, n], axis=1)
        hs[t] = h_new
        h = h_new
    return hs, gates, uh


def _gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True):
    """dhs: [T,B,H] -> (dxw [T,B,3H], du [T,B,3H] grad of the recurrent pre-activations,
    dbias, dh0 [B,H]).

    reset_after=True: du = d(hd·U + rb), dbias [2,3H] = (Σ dxw, Σ du). reset_after=False:
    du[..., :2H] = d(hd·U_zr), du[..., 2H:] = d((r*hd)·U_h), dbias [3H] = Σ dxw.
    recurrent_bias does not enter the gradients.
    """
    T, B, H = hs.shape
    dxw = np.empty((T, B, 3 * H), dtype=hs.dtype)
    du = np.empty((T, B, 3 * H), dtype=hs.dtype)
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        hd = _dropped(h_prev, dropout_mask)
        z, r, n = (gates[t][:, k * H:(k + 1) * H] for k in range(3))
        dh = dhs[t] + dh_next
        dn = dh * (1 - z) * (1 - n ** 2)
        dzg = dh * (h_prev - n) * z * (1 - z)
        if reset_after:
            dr = dn * uh[t] * r * (1 - r)
            du_t = np.concatenate([dzg, dr, dn * r], axis=1)
            dhd = du_t @ U.T
        else:
            drh = dn @ U[:, 2 * H:].T
            dr = drh * hd * r * (1 - r)
            du_t = np.concatenate([dzg, dr, dn], axis=1)
            dhd = du_t[:, :2 * H] @ U[:, :2 * H].T + drh * r
        dxw_t = np.concatenate([dzg, dr, dn], axis=1)
        dh_prev = dh * z + _dropped(dhd, dropout_mask)
        keep = _keep(mask, t)
        if keep is not None:
            dxw_t, du_t = np.where(keep, dxw_t, 0), np.where(keep, du_t, 0)
            dh_prev = np.where(keep, dh_prev, dh)
        dxw[t], du[t] = dxw_t, du_t
        dh_next = dh_prev
    return dxw, du, _bias_gradient(dxw, du if reset_after else None), dh_next


def _simple_rnn_forward(xw, U, h0, mask, dropout_mask, *, save=True):
    """xw: [T,B,H], U: [H,H], h0: [B,H] -> hs [T,B,H], h_t = tanh(xw[t] + hd_{t-1}·U).
    hs, the output, is all it keeps, so `save` changes nothing here."""
    hs = np.empty(xw.shape, dtype=xw.dtype)
    h = h0
    for t in range(xw.shape[0]):
        h_new = np.tanh(xw[t] + _dropped(h, dropout_mask) @ U)
        keep = _keep(mask, t)
        if keep is not None:
            h_new = np.where(keep, h_new, h)
        hs[t] = h_new
        h = h_new
    return hs


def _simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask):
    """dhs: [T,B,H] -> (dz [T,B,H] grad of the pre-activation = d xw, dbias [H], dh0 [B,H])."""
    dz = np.empty(hs.shape, dtype=hs.dtype)
    dh_next = np.zeros(h0.shape, dtype=hs.dtype)
    for t in reversed(range(hs.shape[0])):
        dh = dhs[t] + dh_next
        dz_t = dh * (1 - hs[t] ** 2)
        dh_prev = _dropped(dz_t @ U.T, dropout_mask)
        keep = _keep(mask, t)
        if keep is not None:
            dz_t, dh_prev = np.where(keep, dz_t, 0), np.where(keep, dh_prev, dh)
        dz[t] = dz_t
        dh_next = dh_prev
    return dz, _bias_gradient(dz), dh_next


lstm_forward, lstm_backward = _projected_forward(_lstm_forward), _projected_backward(_lstm_backward)
gru_forward, _gru_projected_backward = _projected_forward(_gru_forward), _projected_backward(_gru_backward)
simple_rnn_forward = _projected_forward(_simple_rnn_forward)
simple_rnn_backward = _projected_backward(_simple_rnn_backward)


def gru_backward(*args, **kwargs):
    """The table's gru_backward (docs/kernels.md): _gru_backward with the input projection's
    gradient, du as the candidate's columns."""
    return _gru_candidate_gradient(_gru_projected_backward(*args, **kwargs))


# Conv1D and max pooling (docs/kernels.md): channels-last, on an x that functional has
# already padded. Each of the K taps is one batched GEMM over all B·L_out output rows.

def conv1d_output_length(length, size, strides, dilation_rate, op="conv1d"):
    """Output length of a valid window op: (L - d·(K-1) - 1) // s + 1; ValueError if < 1.

    Every backend calls this before touching memory, so a too-short input is a clear error.
    """
    if strides < 1 or dilation_rate < 1 or size < 1:
        raise ValueError(f"{op}: size, strides and dilation_rate must be >= 1, "
                         f"got {size}, {strides}, {dilation_rate}")
    span = dilation_rate * (size - 1) + 1
    if length < span:
        raise ValueError(f"{op}: input length {length} (after padding) is shorter than the "
                         f"window span {span} = dilation_rate*(size-1)+1; the output would be empty")
    return (length - span) // strides + 1


def _tap(k, length_out, strides, dilation_rate):
    """The rows of x that tap k reads for output rows 0..L_out-1: k·d + t·s."""
    start = k * dilation_rate
    return slice(start, start + (length_out - 1) * strides + 1, strides)


def conv1d_forward(x, kernel, bias, strides, dilation_rate):
    """x: [B,L,C], kernel: [K,C,O], bias: [O] or None -> out [B,L_out,O].

    out[b,t] = bias + Σ_k x[b, t·s + k·d] · kernel[k]  (cross-correlation, as Keras and PyTorch).
    """
    B, L, _ = x.shape
    K, _, O = kernel.shape
    length_out = conv1d_output_length(L, K, strides, dilation_rate)
    out = np.zeros((B, length_out, O), dtype=x.dtype)
    if bias is not None:
        out += bias
    for k in range(K):
        out += x[:, _tap(k, length_out, strides, dilation_rate)] @ kernel[k]
    return out


def conv1d_backward(grad, x, kernel, strides, dilation_rate):
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O]); the transpose of each
    tap's GEMM, and dbias = grad summed over B and L_out (in float64, rounded once)."""
    B, length_out, O = grad.shape
    K, C, _ = kernel.shape
    dx = np.zeros(x.shape, dtype=x.dtype)
    dkernel = np.empty(kernel.shape, dtype=x.dtype)
    rows_grad = grad.reshape(B * length_out, O)
    for k in range(K):
        rows = _tap(k, length_out, strides, dilation_rate)
        dkernel[k] = x[:, rows].reshape(B * length_out, C).T @ rows_grad
        dx[:, rows] += grad @ kernel[k].T
    return dx, dkernel, rows_grad.sum(axis=0, dtype=np.float64).astype(grad.dtype)


def max_pool1d_forward(x, pool_size, strides):
    """x: [B,L,C] -> (out [B,L_out,C], argmax [B,L_out,C] int64), L_out = (L - P)//s + 1.

    argmax holds the position along L of each window's maximum; ties go to the first.
    """
    length_out = conv1d_output_length(x.shape[1], pool_size, strides, 1, op="max_pool1d")
    windows = np.lib.stride_tricks.sliding_window_view(x, pool_size, axis=1)[:, ::strides]
    starts = (np.arange(length_out) * strides)[None, :, None]
    argmax = windows.argmax(axis=-1).astype(np.int64) + starts
    return np.take_along_axis(x, argmax, axis=1), argmax


def max_pool1d_backward(grad, argmax, length):
    """grad: [B,L_out,C], argmax: [B,L_out,C] -> dx [B,L,C]; overlapping windows accumulate."""
    B, _, C = grad.shape
    dx = np.zeros((B, length, C), dtype=grad.dtype)
    np.add.at(dx, (np.arange(B)[:, None, None], argmax, np.arange(C)[None, None, :]), grad)
    return dx
