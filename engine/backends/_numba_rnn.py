"""Numba kernels for the fused recurrent ops: lstm, gru, simple_rnn (docs/kernels.md).

Each op's whole time loop, forward or backward, is one compiled call. Per step: one
recurrent GEMM, `np.dot` into a preallocated buffer (SciPy's BLAS), and one fused pass over
the gates that also applies the mask and the recurrent-dropout mask (GRU with
reset_after=False needs two of each: its candidate multiplies (r*hd) by U_h).

float32 uses a clamped rational tanh (Eigen's 13/6-degree form, |error| < 4e-7) and
σ(x) = ½·tanh(x/2) + ½ in plain arithmetic, which LLVM vectorizes; pip's llvmlite has no SVML,
so np.tanh would be a scalar libm call. float64 keeps the exact np.tanh.
`error_model="numpy"` drops Numba's division-by-zero check, whose branch blocks vectorization.
The kernels are serial and run SciPy's BLAS on one thread (thread-local, around each call):
on the shared 2-core machine a per-step GEMM split over BLAS threads was up to 13x slower.
Measurements and the reasons behind each choice: docs/numba.md.

Absent options reach the kernels as neutral arrays (mask all True, dropout mask all ones,
recurrent bias zeros), so each kernel compiles once per dtype and has no branches on them.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._blas import single_threaded
from ._projection import bias_gradient

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

# Eigen's generic_fast_tanh_float: tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ 7.905, where the
# float32 tanh is already ±1.
_CLAMP = np.float32(7.90531110763549805)
_P = tuple(np.float32(a) for a in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_Q = tuple(np.float32(b) for b in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
_HALF32 = np.float32(0.5)


def _tanh(x):
    """tanh for the kernels: rational approximation on float32, libm on float64."""


def _sigmoid(x):
    """σ(x) = ½·tanh(x/2) + ½, through _tanh (the form that cannot overflow)."""


@njit(inline="always", error_model="numpy")
def _tanh_f32(x):
    # min/max (not comparisons) keep NaN flowing through, as np.tanh does.
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P[0] + _P[1]
    p = p * x2 + _P[2]
    p = p * x2 + _P[3]
    p = p * x2 + _P[4]
    p = p * x2 + _P[5]
    p = p * x2 + _P[6]
    q = x2 * _Q[0] + _Q[1]
    q = q * x2 + _Q[2]
    q = q * x2 + _Q[3]
    return x * p / q


@overload(_tanh, jit_options={"error_model": "numpy"})
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: np.tanh(x)


@overload(_sigmoid, jit_options={"error_model": "numpy"})
def _sigmoid_overload(x):
    if x == types.float32:
        return lambda x: _HALF32 * _tanh_f32(_HALF32 * x) + _HALF32
    return lambda x: 0.5 * np.tanh(0.5 * x) + 0.5


# Kernels write their outputs in place and allocate nothing. T steps, B rows, H units.
# The forward kernels index what they save for backward (cs, gates, uh) at step t modulo its
# length: [T,...] keeps every step, a ring of 1 or 2 steps is inference scratch (save=False).
# Inner loops index 1-D views with j in range(H) only: an index such as x[H + j] hides its
# sign from LLVM behind Numba's negative-index wraparound, and the loop then turns into
# gathers and scatters (measured 6-8x slower). Both sides of each `a if keep else b` are
# loaded unconditionally for the same reason: a conditional load stops vectorization.

@njit(inline="always")
def _gate(row, k, H):
    """row[k*H:(k+1)*H]: gate k of a [G*H] row."""
    return row[k * H:(k + 1) * H]


@njit(**_JIT)
def _lstm_forward(xw, U, h0, c0, mask, dm, hs, cs, gates, zbuf, hd):
    """xw [T,B,4H], U [H,4H], h0/c0 [B,H], mask [T,B], dm [B,H] -> hs [T,B,H], cs [T or 2,B,H],
    gates [T or 1,B,4H]. Scratch: zbuf [B,4H] = hd·U, hd [B,H] = h_{t-1}*dm."""
    T, B, H = hs.shape
    nc, ng = cs.shape[0], gates.shape[0]
    hd[:, :] = h0 * dm
    for t in range(T):
        np.dot(hd, U, zbuf)
        h_prev = hs[t - 1] if t > 0 else h0
        c_prev = cs[(t - 1) % nc] if t > 0 else c0
        c_t, g_t = cs[t % nc], gates[t % ng]
        for b in range(B):
            keep = mask[t, b]
            x, z, g = xw[t, b], zbuf[b], g_t[b]
            xi, xf, xg, xo = _gate(x, 0, H), _gate(x, 1, H), _gate(x, 2, H), _gate(x, 3, H)
            zi, zf, zg, zo = _gate(z, 0, H), _gate(z, 1, H), _gate(z, 2, H), _gate(z, 3, H)
            gi, gf, gg, go = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H), _gate(g, 3, H)
            hp, cp, h_out, c_out, d, hd_b = h_prev[b], c_prev[b], hs[t, b], c_t[b], dm[b], hd[b]
            for j in range(H):
                i = _sigmoid(xi[j] + zi[j])
                f = _sigmoid(xf[j] + zf[j])
                gc = _tanh(xg[j] + zg[j])
                o = _sigmoid(xo[j] + zo[j])
                gi[j], gf[j], gg[j], go[j] = i, f, gc, o
                c_old, h_old = cp[j], hp[j]
                c = f * c_old + i * gc
                h = o * _tanh(c)
                c = c if keep else c_old
                h = h if keep else h_old
                c_out[j], h_out[j] = c, h
                hd_b[j] = h * d[j]


@njit(**_JIT)
def _lstm_backward(dhs, dc_T, UT, c0, hs, cs, gates, mask, dm, dz, dh0, dc0, dh_rec, carry):
    """dhs [T,B,H], dc_T [B,H], UT [4H,H] = Uᵀ -> dz [T,B,4H], dh0, dc0 [B,H].
    Scratch: dh_rec [B,H] = dz_{t+1}·Uᵀ; carry [B,H] = the part of dh_t that skips the GEMM
    (all of it at a masked step). dc0 holds the running dc_t until the loop ends."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    dh_rec[:, :] = 0
    carry[:, :] = 0
    dc0[:, :] = dc_T
    for t in range(T - 1, -1, -1):
        c_prev = cs[t - 1] if t > 0 else c0
        for b in range(B):
            keep = mask[t, b]
            g, dzt = gates[t, b], dz[t, b]
            gi, gf, gg, go = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H), _gate(g, 3, H)
            di, df, dg, do = _gate(dzt, 0, H), _gate(dzt, 1, H), _gate(dzt, 2, H), _gate(dzt, 3, H)
            dhs_b, c_b, cp = dhs[t, b], cs[t, b], c_prev[b]
            rec, car, dc_b, d = dh_rec[b], carry[b], dc0[b], dm[b]
            for j in range(H):
                i, f, gc, o = gi[j], gf[j], gg[j], go[j]
                dh = dhs_b[j] + car[j] + rec[j] * d[j]
                tc = _tanh(c_b[j])
                dc_old = dc_b[j]
                dc = dc_old + dh * o * (one - tc * tc)
                di[j] = dc * gc * i * (one - i) if keep else zero
                df[j] = dc * cp[j] * f * (one - f) if keep else zero
                dg[j] = dc * i * (one - gc * gc) if keep else zero
                do[j] = dh * tc * o * (one - o) if keep else zero
                dc_b[j] = dc * f if keep else dc_old
                car[j] = zero if keep else dh
        np.dot(dz[t], UT, dh_rec)
    dh0[:, :] = carry + dh_rec * dm


@njit(**_JIT)
def _gru_forward(xw, U, rb, h0, mask, dm, hs, gates, uh, ubuf, hd):
    """reset_after=True. xw [T,B,3H], U [H,3H], rb [3H], h0 [B,H], mask [T,B], dm [B,H]
    -> hs [T,B,H], gates [T or 1,B,3H] (z,r,n), uh [T or 1,B,H] = (hd·U + rb)_h.
    Scratch: ubuf [B,3H] = hd·U, hd [B,H]."""
    T, B, H = hs.shape
    ng, nu = gates.shape[0], uh.shape[0]
    one = xw.dtype.type(1)
    rz, rr, rn = _gate(rb, 0, H), _gate(rb, 1, H), _gate(rb, 2, H)
    hd[:, :] = h0 * dm
    for t in range(T):
        np.dot(hd, U, ubuf)
        h_prev = hs[t - 1] if t > 0 else h0
        g_t, uh_t = gates[t % ng], uh[t % nu]
        for b in range(B):
            keep = mask[t, b]
            x, u, g = xw[t, b], ubuf[b], g_t[b]
            xz, xr, xn = _gate(x, 0, H), _gate(x, 1, H), _gate(x, 2, H)
            uz, ur, un_ = _gate(u, 0, H), _gate(u, 1, H), _gate(u, 2, H)
            gz, gr, gn = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H)
            hp, h_out, uh_out, d, hd_b = h_prev[b], hs[t, b], uh_t[b], dm[b], hd[b]
            for j in range(H):
                z = _sigmoid(xz[j] + uz[j] + rz[j])
                r = _sigmoid(xr[j] + ur[j] + rr[j])
                un = un_[j] + rn[j]
                n = _tanh(xn[j] + r * un)
                gz[j], gr[j], gn[j], uh_out[j] = z, r, n, un
                # Keras blends with the undropped h_{t-1}.
                h_old = hp[j]
                h = z * h_old + (one - z) * n
                h = h if keep else h_old
                h_out[j] = h
                hd_b[j] = h * d[j]


@njit(**_JIT)
def _gru_backward(dhs, UT, h0, hs, gates, uh, mask, dm, dxw, du, dh0, dh_rec, carry):
    """reset_after=True. dhs [T,B,H], UT [3H,H] -> dxw, du [T,B,3H], dh0 [B,H].
    Scratch: dh_rec [B,H] = du_{t+1}·Uᵀ; carry [B,H] = dh·z (dh at a masked step)."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    dh_rec[:, :] = 0
    carry[:, :] = 0
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        for b in range(B):
            keep = mask[t, b]
            g, dx, dut = gates[t, b], dxw[t, b], du[t, b]
            gz, gr, gn = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H)
            dxz, dxr, dxn = _gate(dx, 0, H), _gate(dx, 1, H), _gate(dx, 2, H)
            duz, dur, dun = _gate(dut, 0, H), _gate(dut, 1, H), _gate(dut, 2, H)
            uh_b, dhs_b, hp = uh[t, b], dhs[t, b], h_prev[b]
            rec, car, d = dh_rec[b], carry[b], dm[b]
            for j in range(H):
                z, r, n = gz[j], gr[j], gn[j]
                dh = dhs_b[j] + car[j] + rec[j] * d[j]
                dn = dh * (one - z) * (one - n * n) if keep else zero
                dzg = dh * (hp[j] - n) * z * (one - z) if keep else zero
                dr = dn * uh_b[j] * r * (one - r)
                dxz[j], dxr[j], dxn[j] = dzg, dr, dn
                duz[j], dur[j], dun[j] = dzg, dr, dn * r
                car[j] = dh * z if keep else dh
        np.dot(du[t], UT, dh_rec)
    dh0[:, :] = carry + dh_rec * dm


@njit(**_JIT)
def _gru_forward_reset_before(xw, Uzr, Uh, h0, mask, dm, hs, gates, ubuf, rh, nbuf, hd):
    """reset_after=False. xw [T,B,3H], Uzr [H,2H], Uh [H,H], h0 [B,H]
    -> hs [T,B,H], gates [T or 1,B,3H].
    Scratch: ubuf [B,2H] = hd·Uzr, rh [B,H] = r*hd, nbuf [B,H] = rh·Uh, hd [B,H]."""
    T, B, H = hs.shape
    ng = gates.shape[0]
    one = xw.dtype.type(1)
    hd[:, :] = h0 * dm
    for t in range(T):
        np.dot(hd, Uzr, ubuf)
        g_t = gates[t % ng]
        for b in range(B):
            x, u, g, hd_b, rh_b = xw[t, b], ubuf[b], g_t[b], hd[b], rh[b]
            xz, xr, uz, ur = _gate(x, 0, H), _gate(x, 1, H), _gate(u, 0, H), _gate(u, 1, H)
            gz, gr = _gate(g, 0, H), _gate(g, 1, H)
            for j in range(H):
                z = _sigmoid(xz[j] + uz[j])
                r = _sigmoid(xr[j] + ur[j])
                gz[j], gr[j] = z, r
                rh_b[j] = r * hd_b[j]
        np.dot(rh, Uh, nbuf)
        h_prev = hs[t - 1] if t > 0 else h0
        for b in range(B):
            keep = mask[t, b]
            xn, gz, gn = _gate(xw[t, b], 2, H), _gate(g_t[b], 0, H), _gate(g_t[b], 2, H)
            nb, hp, h_out, d, hd_b = nbuf[b], h_prev[b], hs[t, b], dm[b], hd[b]
            for j in range(H):
                n = _tanh(xn[j] + nb[j])
                gn[j] = n
                z, h_old = gz[j], hp[j]
                h = z * h_old + (one - z) * n
                h = h if keep else h_old
                h_out[j] = h
                hd_b[j] = h * d[j]


@njit(**_JIT)
def _gru_backward_reset_before(dhs, UzrT, UhT, h0, hs, gates, mask, dm, dxw, du, dh0,
                               dh_rec, carry, dn_buf, drh, dzr):
    """reset_after=False. dhs [T,B,H], UzrT [2H,H], UhT [H,H] -> dxw, du [T,B,3H], dh0 [B,H].
    Scratch [B,H]: dh_rec = dzr_{t+1}·Uzrᵀ, carry = dh·z + (drh*r)*dm (dh at a masked step),
    dn_buf = dn, drh = dn·Uhᵀ; dzr [B,2H] = (dz, dr)."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    dh_rec[:, :] = 0
    carry[:, :] = 0
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        for b in range(B):
            keep = mask[t, b]
            g, dx, dut, dzr_b = gates[t, b], dxw[t, b], du[t, b], dzr[b]
            gz, gn = _gate(g, 0, H), _gate(g, 2, H)
            dxz, dxn = _gate(dx, 0, H), _gate(dx, 2, H)
            duz, dun = _gate(dut, 0, H), _gate(dut, 2, H)
            dzz, dn_b, dhs_b, hp = _gate(dzr_b, 0, H), dn_buf[b], dhs[t, b], h_prev[b]
            rec, car, d = dh_rec[b], carry[b], dm[b]
            for j in range(H):
                z, n = gz[j], gn[j]
                dh = dhs_b[j] + car[j] + rec[j] * d[j]
                dn = dh * (one - z) * (one - n * n) if keep else zero
                dzg = dh * (hp[j] - n) * z * (one - z) if keep else zero
                dxz[j], dxn[j], duz[j], dun[j], dzz[j], dn_b[j] = dzg, dn, dzg, dn, dzg, dn
                # dh·z now; the r-path term is added once drh is known.
                car[j] = dh * z if keep else dh
        np.dot(dn_buf, UhT, drh)
        for b in range(B):
            gr, dxr = _gate(gates[t, b], 1, H), _gate(dxw[t, b], 1, H)
            dur, dzr_r = _gate(du[t, b], 1, H), _gate(dzr[b], 1, H)
            hp, drh_b, car, d = h_prev[b], drh[b], carry[b], dm[b]
            for j in range(H):
                r = gr[j]
                dr = drh_b[j] * hp[j] * d[j] * r * (one - r)
                dxr[j], dur[j], dzr_r[j] = dr, dr, dr
                car[j] += drh_b[j] * r * d[j]
        np.dot(dzr, UzrT, dh_rec)
    dh0[:, :] = carry + dh_rec * dm


@njit(**_JIT)
def _simple_rnn_forward(xw, U, h0, mask, dm, hs, zbuf, hd):
    """xw [T,B,H], U [H,H], h0 [B,H] -> hs [T,B,H]. Scratch: zbuf [B,H] = hd·U, hd [B,H]."""
    T, B, H = hs.shape
    hd[:, :] = h0 * dm
    for t in range(T):
        np.dot(hd, U, zbuf)
        h_prev = hs[t - 1] if t > 0 else h0
        for b in range(B):
            keep = mask[t, b]
            x, z, hp, h_out, d, hd_b = xw[t, b], zbuf[b], h_prev[b], hs[t, b], dm[b], hd[b]
            for j in range(H):
                h_old = hp[j]
                h = _tanh(x[j] + z[j])
                h = h if keep else h_old
                h_out[j] = h
                hd_b[j] = h * d[j]


@njit(**_JIT)
def _simple_rnn_backward(dhs, UT, hs, mask, dm, dz, dh0, dh_rec, carry):
    """dhs [T,B,H], UT [H,H] -> dz [T,B,H], dh0 [B,H].
    Scratch: dh_rec [B,H] = dz_{t+1}·Uᵀ; carry [B,H] = dh at a masked step, else 0."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    dh_rec[:, :] = 0
    carry[:, :] = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            keep = mask[t, b]
            dhs_b, h_b, dz_out = dhs[t, b], hs[t, b], dz[t, b]
            rec, car, d = dh_rec[b], carry[b], dm[b]
            for j in range(H):
                dh = dhs_b[j] + car[j] + rec[j] * d[j]
                dz_out[j] = dh * (one - h_b[j] * h_b[j]) if keep else zero
                car[j] = zero if keep else dh
        np.dot(dz[t], UT, dh_rec)
    dh0[:, :] = carry + dh_rec * dm


# The kernel table entries (signatures of docs/kernels.md): check, allocate, call one kernel.

def _run(kernel, *args):
    """kernel(*args) with BLAS on one thread for this thread (per-step GEMMs are too small to split)."""
    with single_threaded():
        kernel(*args)


def _floats(op, dtype, **arrays):
    """C-contiguous views of `arrays`, each required to have `dtype` (the op's float dtype)."""
    out = []
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype != dtype:
            raise TypeError(f"{op}: {name} must have dtype {dtype} (like xw), got {a.dtype}")
        out.append(np.ascontiguousarray(a))
    return out


def _shapes(op, **named):
    """named: {name: (array, expected shape)}; ValueError naming the first mismatch."""
    for name, (a, shape) in named.items():
        if a.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {a.shape}")


def _options(op, T, B, H, dtype, mask, dropout_mask):
    """(mask [T,B] bool, dropout mask [B,H]) with the neutral arrays standing in for None."""
    if mask is None:
        mask = np.ones((T, B), dtype=np.bool_)
    else:
        mask = np.ascontiguousarray(mask, dtype=np.bool_)
        _shapes(op, mask=(mask, (T, B)))
    if dropout_mask is None:
        dropout_mask = np.ones((B, H), dtype=dtype)
    else:
        (dropout_mask,) = _floats(op, dtype, dropout_mask=dropout_mask)
        _shapes(op, dropout_mask=(dropout_mask, (B, H)))
    return mask, dropout_mask


def _dims(op, xw, U, gates):
    """(T, B, H, dtype) from xw [T,B,G*H] and U [H,G*H], checking both."""
    xw, U = np.asarray(xw), np.asarray(U)
    if xw.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: arrays must be float32 or float64, got {xw.dtype}")
    if U.ndim != 2 or U.shape[1] != gates * U.shape[0]:
        raise ValueError(f"{op}: U must have shape (H, {gates}*H), got {U.shape}")
    H = U.shape[0]
    if xw.ndim != 3 or xw.shape[2] != gates * H:
        raise ValueError(f"{op}: xw must have shape (T, B, {gates * H}), got {xw.shape}")
    return xw.shape[0], xw.shape[1], H, xw.dtype


def _empty(dtype, *shapes):
    return [np.empty(shape, dtype) for shape in shapes]


def _t(a):
    """aᵀ, C-contiguous (what the backward GEMMs multiply by)."""
    return np.ascontiguousarray(a.T)


def lstm_forward(xw, U, h0, c0, mask, dropout_mask, *, save=True):
    """xw: [T,B,4H] (gates i,f,c,o), U: [H,4H], h0/c0: [B,H], mask: [T,B] bool or None,
    dropout_mask: [B,H] or None -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H] activated i,f,g,o);
    without `save`, cs is only its last step [1,B,H] (c_T) and gates is None."""
    T, B, H, dt = _dims("lstm", xw, U, 4)
    xw, U, h0, c0 = _floats("lstm", dt, xw=xw, U=U, h0=h0, c0=c0)
    _shapes("lstm", h0=(h0, (B, H)), c0=(c0, (B, H)))
    mask, dm = _options("lstm", T, B, H, dt, mask, dropout_mask)
    # Without save: cs is a ring of c_{t-1}, c_t (two buffers: a step reads one, writes the
    # other, so the loop has no aliasing to stop vectorization) and gates one step of scratch.
    hs, cs, gates = _empty(dt, (T, B, H), (T if save else 2, B, H), (T if save else 1, B, 4 * H))
    _run(_lstm_forward, xw, U, h0, c0, mask, dm, hs, cs, gates, *_empty(dt, (B, 4 * H), (B, H)))
    if save:
        return hs, cs, gates
    last = (T - 1) % 2
    return hs, cs[last:last + 1], None


def lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask):
    """dhs: [T,B,H] total grad of each h_t, dc_T: [B,H], the rest as forward gave them
    -> (dz [T,B,4H] = d xw, dbias [4H], dh0 [B,H], dc0 [B,H])."""
    T, B, H, dt = _dims("lstm", gates, U, 4)
    dhs, dc_T, U, h0, c0, hs, cs, gates = _floats(
        "lstm", dt, dhs=dhs, dc_T=dc_T, U=U, h0=h0, c0=c0, hs=hs, cs=cs, gates=gates)
    _shapes("lstm", dhs=(dhs, (T, B, H)), hs=(hs, (T, B, H)), cs=(cs, (T, B, H)),
            dc_T=(dc_T, (B, H)), h0=(h0, (B, H)), c0=(c0, (B, H)))
    mask, dm = _options("lstm", T, B, H, dt, mask, dropout_mask)
    dz, dh0, dc0 = _empty(dt, (T, B, 4 * H), (B, H), (B, H))
    _run(_lstm_backward, dhs, dc_T, _t(U), c0, hs, cs, gates, mask, dm, dz, dh0, dc0,
         *_empty(dt, (B, H), (B, H)))
    return dz, bias_gradient(dz), dh0, dc0


def gru_forward(xw, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *, save=True):
    """xw: [T,B,3H] (gates z,r,h), U: [H,3H], recurrent_bias: [3H] or None (reset_after only),
    h0: [B,H] -> (hs [T,B,H], gates [T,B,3H] activated z,r,n, uh [T,B,H] = u_h, or [0]);
    gates and uh are None when not `save`."""
    T, B, H, dt = _dims("gru", xw, U, 3)
    xw, U, h0 = _floats("gru", dt, xw=xw, U=U, h0=h0)
    _shapes("gru", h0=(h0, (B, H)))
    mask, dm = _options("gru", T, B, H, dt, mask, dropout_mask)
    # Without save, gates (and uh) are one step of scratch, overwritten every step.
    steps = T if save else 1
    hs, gates = _empty(dt, (T, B, H), (steps, B, 3 * H))
    if not reset_after:
        if recurrent_bias is not None:
            raise ValueError("gru: recurrent_bias must be None when reset_after=False")
        Uzr, Uh = np.ascontiguousarray(U[:, :2 * H]), np.ascontiguousarray(U[:, 2 * H:])
        _run(_gru_forward_reset_before, xw, Uzr, Uh, h0, mask, dm, hs, gates,
             *_empty(dt, (B, 2 * H), (B, H), (B, H), (B, H)))
        return (hs, gates, np.empty((0,), dt)) if save else (hs, None, None)
    if recurrent_bias is None:
        rb = np.zeros(3 * H, dt)
    else:
        (rb,) = _floats("gru", dt, recurrent_bias=recurrent_bias)
        _shapes("gru", recurrent_bias=(rb, (3 * H,)))
    uh = np.empty((steps, B, H), dt)
    _run(_gru_forward, xw, U, rb, h0, mask, dm, hs, gates, uh, *_empty(dt, (B, 3 * H), (B, H)))
    return (hs, gates, uh) if save else (hs, None, None)


def gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True):
    """dhs: [T,B,H], the rest as forward gave them
    -> (dxw [T,B,3H], du [T,B,3H], dbias [2,3H] or [3H], dh0 [B,H]).

    du is the gradient of the recurrent pre-activations: d(hd·U + rb) with reset_after;
    without, du[..., :2H] = d(hd·U_zr) and du[..., 2H:] = d((r*hd)·U_h). dbias: bias_gradient.
    recurrent_bias does not enter the gradients (it is in the signature for symmetry).
    """
    T, B, H, dt = _dims("gru", gates, U, 3)
    dhs, U, h0, hs, gates = _floats("gru", dt, dhs=dhs, U=U, h0=h0, hs=hs, gates=gates)
    _shapes("gru", dhs=(dhs, (T, B, H)), hs=(hs, (T, B, H)), h0=(h0, (B, H)))
    mask, dm = _options("gru", T, B, H, dt, mask, dropout_mask)
    dxw, du, dh0, dh_rec, carry = _empty(dt, (T, B, 3 * H), (T, B, 3 * H), (B, H), (B, H), (B, H))
    if reset_after:
        (uh,) = _floats("gru", dt, uh=uh)
        _shapes("gru", uh=(uh, (T, B, H)))
        _run(_gru_backward, dhs, _t(U), h0, hs, gates, uh, mask, dm, dxw, du, dh0, dh_rec, carry)
    else:
        _run(_gru_backward_reset_before, dhs, _t(U[:, :2 * H]), _t(U[:, 2 * H:]), h0, hs, gates,
             mask, dm, dxw, du, dh0, dh_rec, carry, *_empty(dt, (B, H), (B, H), (B, 2 * H)))
    return dxw, du, bias_gradient(dxw, du if reset_after else None), dh0


def simple_rnn_forward(xw, U, h0, mask, dropout_mask):
    """xw: [T,B,H], U: [H,H], h0: [B,H] -> hs [T,B,H], h_t = tanh(xw[t] + hd_{t-1}·U)."""
    T, B, H, dt = _dims("simple_rnn", xw, U, 1)
    xw, U, h0 = _floats("simple_rnn", dt, xw=xw, U=U, h0=h0)
    _shapes("simple_rnn", h0=(h0, (B, H)))
    mask, dm = _options("simple_rnn", T, B, H, dt, mask, dropout_mask)
    hs = np.empty((T, B, H), dt)
    _run(_simple_rnn_forward, xw, U, h0, mask, dm, hs, *_empty(dt, (B, H), (B, H)))
    return hs


def simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask):
    """dhs: [T,B,H], hs: [T,B,H] from forward -> (dz [T,B,H] = d xw, dbias [H], dh0 [B,H])."""
    T, B, H, dt = _dims("simple_rnn", hs, U, 1)
    dhs, U, h0, hs = _floats("simple_rnn", dt, dhs=dhs, U=U, h0=h0, hs=hs)
    _shapes("simple_rnn", dhs=(dhs, (T, B, H)), h0=(h0, (B, H)))
    mask, dm = _options("simple_rnn", T, B, H, dt, mask, dropout_mask)
    dz, dh0 = _empty(dt, (T, B, H), (B, H))
    _run(_simple_rnn_backward, dhs, _t(U), hs, mask, dm, dz, dh0, *_empty(dt, (B, H), (B, H)))
    return dz, bias_gradient(dz), dh0
