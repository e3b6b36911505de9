"""Numba kernels for the fused recurrent ops: lstm, gru, simple_rnn (docs/kernels.md).

Each op's whole time loop, forward or backward, is one compiled call, and the batch rows are
split into one contiguous range per thread (`prange` over parts): the rows of an RNN never
meet, so each thread runs the whole time loop on its rows with no barrier per step (as the
C++ loops do). Per step and part: the input projection x_t·kernel, read in place from x
[B,T,F] (no [T,B,G] array, no transpose), and the recurrent product hd·U, both with
_numba_gemm's register-tiled GEMM on weights packed once per call; then one fused pass
over the gates that adds the bias and applies the mask and the recurrent-dropout mask
(GRU with reset_after=False needs a second GEMM and pass: its candidate multiplies (r*hd)
by U_h). The backward computes dx_t = dxw_t·kernelᵀ in the same loop, straight into x's
layout, and sums the bias gradient per part in float64 while the rows are in cache.

float32 uses a clamped rational tanh (Eigen's 13/6-degree form, |error| < 4e-7) and
σ(x) = ½·tanh(x/2) + ½ in plain arithmetic, which LLVM vectorizes; pip's llvmlite has no SVML,
so np.tanh would be a scalar libm call. float64 keeps the exact np.tanh.
`error_model="numpy"` drops Numba's division-by-zero check, whose branch blocks vectorization.
Measurements and the reasons behind each choice: docs/numba.md.

Absent options reach the kernels as neutral arrays (mask all True, dropout mask all ones,
biases zeros, no dx: a [B,T,0] array and an empty packed kernel), so each kernel compiles
once per dtype and has no branches on them.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from . import _numba_gemm as gemm

_JIT = {"cache": gemm.CACHE, "nogil": True, "error_model": "numpy"}

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


# Kernels write their outputs in place. T steps, B rows, H units, F features; each part
# allocates its own scratch once (rows n = its share of B) and nothing inside the loop.
# The forward kernels index what they save for backward (cs, gates, uh) at step t modulo its
# length: [T,...] keeps every step, a ring of 1 or 2 steps is inference scratch (save=False).
# Inner loops index 1-D views with j in range(H) only: an index such as x[H + j] hides its
# sign from LLVM behind Numba's negative-index wraparound, and the loop then turns into
# gathers and scatters (measured 6-8x slower). Both sides of each `a if keep else b` are
# loaded unconditionally for the same reason: a conditional load stops vectorization.
# Step t of the loop reads timestep tt of x (T-1-t going backwards) and writes it in dx.

@njit(inline="always")
def _gate(row, k, H):
    """row[k*H:(k+1)*H]: gate k of a [G*H] row."""
    return row[k * H:(k + 1) * H]


@njit(inline="always")
def _rows(B, p, parts):
    """[r0, r1): the batch rows of part p."""
    return B * p // parts, B * (p + 1) // parts


@njit(inline="always")
def _dropped(h, dm, r0, hd):
    """hd[r] = h[r0 + r] * dm[r0 + r] for the part's rows (the state the next GEMM reads)."""
    for r in range(hd.shape[0]):
        h_b, d, out = h[r0 + r], dm[r0 + r], hd[r]
        for j in range(out.shape[0]):
            out[j] = h_b[j] * d[j]


@njit(inline="always")
def _project(x, r0, tt, kernel, out, tile):
    """out [n,G] = x[r0:r0+n, tt] · kernel (packed), x read in place."""
    B, T, F = x.shape
    gemm.gemm(x.reshape(-1), (r0 * T + tt) * F, T * F, 1, kernel, out, False, tile)


@njit(inline="always")
def _product(a, t, r0, weights, out, tile):
    """out [n,N] = a[t, r0:r0+n] · weights (packed), for a [T,B,G]."""
    T, B, G = a.shape
    gemm.gemm(a.reshape(-1), (t * B + r0) * G, G, 1, weights, out, False, tile)


@njit(inline="always")
def _add(total, values):
    """total (float64) += values, lane by lane."""
    for j in range(values.shape[0]):
        total[j] += values[j]


@njit(parallel=True, **_JIT)
def _lstm_forward(x, kernel, bias, U, h0, c0, mask, dm, backwards, parts, hs, cs, gates):
    """x [B,T,F], kernel [F,4H] and U [H,4H] packed, bias [4H], h0/c0 [B,H], mask [T,B],
    dm [B,H] -> hs [T,B,H], cs [T or 2,B,H], gates [T or 1,B,4H]. Scratch per part:
    z [n,4H] = x_t·kernel + hd·U, hd [n,H] = h_{t-1}*dm."""
    B, T, F = x.shape
    H = hs.shape[2]
    nc, ng = cs.shape[0], gates.shape[0]
    bi, bf, bg, bo = _gate(bias, 0, H), _gate(bias, 1, H), _gate(bias, 2, H), _gate(bias, 3, H)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        z, hd = np.empty((r1 - r0, 4 * H), x.dtype), np.empty((r1 - r0, H), x.dtype)
        tile = np.empty(gemm.MR * U.shape[2], x.dtype)
        _dropped(h0, dm, r0, hd)
        for t in range(T):
            _project(x, r0, T - 1 - t if backwards else t, kernel, z, tile)
            gemm.gemm(hd.reshape(-1), 0, H, 1, U, z, True, tile)
            h_prev = hs[t - 1] if t > 0 else h0
            c_prev = cs[(t - 1) % nc] if t > 0 else c0
            c_t, g_t = cs[t % nc], gates[t % ng]
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                zb, g = z[r], g_t[b]
                zi, zf, zg, zo = _gate(zb, 0, H), _gate(zb, 1, H), _gate(zb, 2, H), _gate(zb, 3, H)
                gi, gf, gg, go = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H), _gate(g, 3, H)
                hp, cp, h_out, c_out, d, hd_b = h_prev[b], c_prev[b], hs[t, b], c_t[b], dm[b], hd[r]
                for j in range(H):
                    i = _sigmoid(zi[j] + bi[j])
                    f = _sigmoid(zf[j] + bf[j])
                    gc = _tanh(zg[j] + bg[j])
                    o = _sigmoid(zo[j] + bo[j])
                    gi[j], gf[j], gg[j], go[j] = i, f, gc, o
                    c_old, h_old = cp[j], hp[j]
                    c = f * c_old + i * gc
                    h = o * _tanh(c)
                    c = c if keep else c_old
                    h = h if keep else h_old
                    c_out[j], h_out[j] = c, h
                    hd_b[j] = h * d[j]


@njit(parallel=True, **_JIT)
def _lstm_backward(dhs, dc_T, UT, kernel_t, c0, hs, cs, gates, mask, dm, backwards, parts,
                   dz, dx, dh0, dc0, dbias):
    """dhs [T,B,H], dc_T [B,H], UT = Uᵀ [4H,H] and kernel_t = kernelᵀ [4H,F] packed
    -> dz [T,B,4H], dx [B,T,F], dh0, dc0 [B,H], dbias [parts,4H] (float64 sums per part).
    Scratch per part: dh_rec [n,H] = dz_{t+1}·Uᵀ; carry [n,H] = the part of dh_t that skips
    the GEMM (all of it at a masked step). dc0 holds the running dc_t until the loop ends."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        dh_rec, carry = np.zeros((r1 - r0, H), dhs.dtype), np.zeros((r1 - r0, H), dhs.dtype)
        tile = np.empty(gemm.MR * UT.shape[2], dhs.dtype)
        total = dbias[p]
        total[:] = 0
        ti, tf, tg, to = _gate(total, 0, H), _gate(total, 1, H), _gate(total, 2, H), _gate(total, 3, H)
        dc0[r0:r1] = dc_T[r0:r1]
        for t in range(T - 1, -1, -1):
            c_prev = cs[t - 1] if t > 0 else c0
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                g, dzt = gates[t, b], dz[t, b]
                gi, gf, gg, go = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H), _gate(g, 3, H)
                di, df, dg, do = _gate(dzt, 0, H), _gate(dzt, 1, H), _gate(dzt, 2, H), _gate(dzt, 3, H)
                dhs_b, c_b, cp = dhs[t, b], cs[t, b], c_prev[b]
                rec, car, dc_b, d = dh_rec[r], carry[r], dc0[b], dm[b]
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
                _add(ti, di)
                _add(tf, df)
                _add(tg, dg)
                _add(to, do)
            _product(dz, t, r0, UT, dh_rec, tile)
            _product(dz, t, r0, kernel_t, dx[r0:r1, T - 1 - t if backwards else t], tile)
        for r in range(r1 - r0):
            dh0[r0 + r] = carry[r] + dh_rec[r] * dm[r0 + r]


@njit(parallel=True, **_JIT)
def _gru_forward(x, kernel, bias, U, rb, h0, mask, dm, backwards, parts, hs, gates, uh):
    """reset_after=True. x [B,T,F], kernel [F,3H] and U [H,3H] packed, bias, rb [3H],
    h0 [B,H], mask [T,B], dm [B,H] -> hs [T,B,H], gates [T or 1,B,3H] (z,r,n),
    uh [T or 1,B,H] = (hd·U + rb)_h. Scratch per part: xbuf [n,3H] = x_t·kernel,
    ubuf [n,3H] = hd·U, hd [n,H]."""
    B, T, F = x.shape
    H = hs.shape[2]
    ng, nu = gates.shape[0], uh.shape[0]
    one = x.dtype.type(1)
    bz, br, bn = _gate(bias, 0, H), _gate(bias, 1, H), _gate(bias, 2, H)
    rz, rr, rn = _gate(rb, 0, H), _gate(rb, 1, H), _gate(rb, 2, H)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        xbuf, ubuf = np.empty((r1 - r0, 3 * H), x.dtype), np.empty((r1 - r0, 3 * H), x.dtype)
        hd = np.empty((r1 - r0, H), x.dtype)
        tile = np.empty(gemm.MR * U.shape[2], x.dtype)
        _dropped(h0, dm, r0, hd)
        for t in range(T):
            _project(x, r0, T - 1 - t if backwards else t, kernel, xbuf, tile)
            gemm.gemm(hd.reshape(-1), 0, H, 1, U, ubuf, False, tile)
            h_prev = hs[t - 1] if t > 0 else h0
            g_t, uh_t = gates[t % ng], uh[t % nu]
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                xb, u, g = xbuf[r], ubuf[r], g_t[b]
                xz, xr, xn = _gate(xb, 0, H), _gate(xb, 1, H), _gate(xb, 2, H)
                uz, ur, un_ = _gate(u, 0, H), _gate(u, 1, H), _gate(u, 2, H)
                gz, gr, gn = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H)
                hp, h_out, uh_out, d, hd_b = h_prev[b], hs[t, b], uh_t[b], dm[b], hd[r]
                for j in range(H):
                    z = _sigmoid(xz[j] + bz[j] + uz[j] + rz[j])
                    rg = _sigmoid(xr[j] + br[j] + ur[j] + rr[j])
                    un = un_[j] + rn[j]
                    n = _tanh(xn[j] + bn[j] + rg * un)
                    gz[j], gr[j], gn[j], uh_out[j] = z, rg, n, un
                    # Keras blends with the undropped h_{t-1}.
                    h_old = hp[j]
                    h = z * h_old + (one - z) * n
                    h = h if keep else h_old
                    h_out[j] = h
                    hd_b[j] = h * d[j]


@njit(parallel=True, **_JIT)
def _gru_backward(dhs, UT, kernel_t, h0, hs, gates, uh, mask, dm, backwards, parts,
                  dxw, du, dx, dh0, dbias):
    """reset_after=True. dhs [T,B,H], UT = Uᵀ [3H,H], kernel_t = kernelᵀ [3H,F] packed
    -> dxw, du [T,B,3H], dx [B,T,F], dh0 [B,H], dbias [parts,2,3H] (Σ dxw, Σ du per part).
    Scratch per part: dh_rec [n,H] = du_{t+1}·Uᵀ; carry [n,H] = dh·z (dh at a masked step)."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        dh_rec, carry = np.zeros((r1 - r0, H), dhs.dtype), np.zeros((r1 - r0, H), dhs.dtype)
        tile = np.empty(gemm.MR * UT.shape[2], dhs.dtype)
        sums_x, sums_u = dbias[p, 0], dbias[p, 1]
        sums_x[:] = 0
        sums_u[:] = 0
        for t in range(T - 1, -1, -1):
            h_prev = hs[t - 1] if t > 0 else h0
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                g, dxt, dut = gates[t, b], dxw[t, b], du[t, b]
                gz, gr, gn = _gate(g, 0, H), _gate(g, 1, H), _gate(g, 2, H)
                dxz, dxr, dxn = _gate(dxt, 0, H), _gate(dxt, 1, H), _gate(dxt, 2, H)
                duz, dur, dun = _gate(dut, 0, H), _gate(dut, 1, H), _gate(dut, 2, H)
                uh_b, dhs_b, hp = uh[t, b], dhs[t, b], h_prev[b]
                rec, car, d = dh_rec[r], carry[r], dm[b]
                for j in range(H):
                    z, rg, n = gz[j], gr[j], gn[j]
                    dh = dhs_b[j] + car[j] + rec[j] * d[j]
                    dn = dh * (one - z) * (one - n * n) if keep else zero
                    dzg = dh * (hp[j] - n) * z * (one - z) if keep else zero
                    dr = dn * uh_b[j] * rg * (one - rg)
                    dxz[j], dxr[j], dxn[j] = dzg, dr, dn
                    duz[j], dur[j], dun[j] = dzg, dr, dn * rg
                    car[j] = dh * z if keep else dh
                _add(sums_x, dxt)
                _add(sums_u, dut)
            _product(du, t, r0, UT, dh_rec, tile)
            _product(dxw, t, r0, kernel_t, dx[r0:r1, T - 1 - t if backwards else t], tile)
        for r in range(r1 - r0):
            dh0[r0 + r] = carry[r] + dh_rec[r] * dm[r0 + r]


@njit(parallel=True, **_JIT)
def _gru_forward_reset_before(x, kernel, bias, Uzr, Uh, h0, mask, dm, backwards, parts, hs, gates):
    """reset_after=False. x [B,T,F], kernel [F,3H], Uzr [H,2H], Uh [H,H] packed, bias [3H],
    h0 [B,H] -> hs [T,B,H], gates [T or 1,B,3H]. Scratch per part: xbuf [n,3H] = x_t·kernel,
    ubuf [n,2H] = hd·Uzr, rh [n,H] = r*hd, nbuf [n,H] = rh·Uh, hd [n,H]."""
    B, T, F = x.shape
    H = hs.shape[2]
    ng = gates.shape[0]
    one = x.dtype.type(1)
    bz, br, bn = _gate(bias, 0, H), _gate(bias, 1, H), _gate(bias, 2, H)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        n_rows = r1 - r0
        xbuf, ubuf = np.empty((n_rows, 3 * H), x.dtype), np.empty((n_rows, 2 * H), x.dtype)
        rh, nbuf, hd = (np.empty((n_rows, H), x.dtype), np.empty((n_rows, H), x.dtype),
                        np.empty((n_rows, H), x.dtype))
        tile = np.empty(gemm.MR * Uh.shape[2], x.dtype)
        _dropped(h0, dm, r0, hd)
        for t in range(T):
            _project(x, r0, T - 1 - t if backwards else t, kernel, xbuf, tile)
            gemm.gemm(hd.reshape(-1), 0, H, 1, Uzr, ubuf, False, tile)
            g_t = gates[t % ng]
            for r in range(n_rows):
                xb, u, g, hd_b, rh_b = xbuf[r], ubuf[r], g_t[r0 + r], hd[r], rh[r]
                xz, xr, uz, ur = _gate(xb, 0, H), _gate(xb, 1, H), _gate(u, 0, H), _gate(u, 1, H)
                gz, gr = _gate(g, 0, H), _gate(g, 1, H)
                for j in range(H):
                    z = _sigmoid(xz[j] + bz[j] + uz[j])
                    rg = _sigmoid(xr[j] + br[j] + ur[j])
                    gz[j], gr[j] = z, rg
                    rh_b[j] = rg * hd_b[j]
            gemm.gemm(rh.reshape(-1), 0, H, 1, Uh, nbuf, False, tile)
            h_prev = hs[t - 1] if t > 0 else h0
            for r in range(n_rows):
                b = r0 + r
                keep = mask[t, b]
                xn, gz, gn = _gate(xbuf[r], 2, H), _gate(g_t[b], 0, H), _gate(g_t[b], 2, H)
                nb, hp, h_out, d, hd_b = nbuf[r], h_prev[b], hs[t, b], dm[b], hd[r]
                for j in range(H):
                    n = _tanh(xn[j] + bn[j] + nb[j])
                    gn[j] = n
                    z, h_old = gz[j], hp[j]
                    h = z * h_old + (one - z) * n
                    h = h if keep else h_old
                    h_out[j] = h
                    hd_b[j] = h * d[j]


@njit(parallel=True, **_JIT)
def _gru_backward_reset_before(dhs, UzrT, UhT, kernel_t, h0, hs, gates, mask, dm, backwards,
                               parts, dxw, du, dx, dh0, dbias):
    """reset_after=False. dhs [T,B,H], UzrT [2H,H], UhT [H,H], kernel_t [3H,F] packed
    -> dxw, du [T,B,3H], dx [B,T,F], dh0 [B,H], dbias [parts,3H] (Σ dxw per part).
    Scratch per part [n,H]: dh_rec = dzr_{t+1}·Uzrᵀ, carry = dh·z + (drh*r)*dm (dh at a
    masked step), dn_buf = dn, drh = dn·Uhᵀ; dzr [n,2H] = (dz, dr)."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        n_rows = r1 - r0
        dh_rec, carry = np.zeros((n_rows, H), dhs.dtype), np.zeros((n_rows, H), dhs.dtype)
        dn_buf, drh = np.empty((n_rows, H), dhs.dtype), np.empty((n_rows, H), dhs.dtype)
        dzr = np.empty((n_rows, 2 * H), dhs.dtype)
        tile = np.empty(gemm.MR * UhT.shape[2], dhs.dtype)
        total = dbias[p]
        total[:] = 0
        for t in range(T - 1, -1, -1):
            h_prev = hs[t - 1] if t > 0 else h0
            for r in range(n_rows):
                b = r0 + r
                keep = mask[t, b]
                g, dxt, dut, dzr_b = gates[t, b], dxw[t, b], du[t, b], dzr[r]
                gz, gn = _gate(g, 0, H), _gate(g, 2, H)
                dxz, dxn = _gate(dxt, 0, H), _gate(dxt, 2, H)
                duz, dun = _gate(dut, 0, H), _gate(dut, 2, H)
                dzz, dn_b, dhs_b, hp = _gate(dzr_b, 0, H), dn_buf[r], dhs[t, b], h_prev[b]
                rec, car, d = dh_rec[r], carry[r], dm[b]
                for j in range(H):
                    z, n = gz[j], gn[j]
                    dh = dhs_b[j] + car[j] + rec[j] * d[j]
                    dn = dh * (one - z) * (one - n * n) if keep else zero
                    dzg = dh * (hp[j] - n) * z * (one - z) if keep else zero
                    dxz[j], dxn[j], duz[j], dun[j], dzz[j], dn_b[j] = dzg, dn, dzg, dn, dzg, dn
                    # dh·z now; the r-path term is added once drh is known.
                    car[j] = dh * z if keep else dh
            gemm.gemm(dn_buf.reshape(-1), 0, H, 1, UhT, drh, False, tile)
            for r in range(n_rows):
                b = r0 + r
                gr, dxt = _gate(gates[t, b], 1, H), dxw[t, b]
                dxr, dur, dzr_r = _gate(dxt, 1, H), _gate(du[t, b], 1, H), _gate(dzr[r], 1, H)
                hp, drh_b, car, d = h_prev[b], drh[r], carry[r], dm[b]
                for j in range(H):
                    rg = gr[j]
                    dr = drh_b[j] * hp[j] * d[j] * rg * (one - rg)
                    dxr[j], dur[j], dzr_r[j] = dr, dr, dr
                    car[j] += drh_b[j] * rg * d[j]
                _add(total, dxt)
            gemm.gemm(dzr.reshape(-1), 0, 2 * H, 1, UzrT, dh_rec, False, tile)
            _product(dxw, t, r0, kernel_t, dx[r0:r1, T - 1 - t if backwards else t], tile)
        for r in range(n_rows):
            dh0[r0 + r] = carry[r] + dh_rec[r] * dm[r0 + r]


@njit(parallel=True, **_JIT)
def _simple_rnn_forward(x, kernel, bias, U, h0, mask, dm, backwards, parts, hs):
    """x [B,T,F], kernel [F,H] and U [H,H] packed, bias [H], h0 [B,H] -> hs [T,B,H].
    Scratch per part: z [n,H] = x_t·kernel + hd·U, hd [n,H]."""
    B, T, F = x.shape
    H = hs.shape[2]
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        z, hd = np.empty((r1 - r0, H), x.dtype), np.empty((r1 - r0, H), x.dtype)
        tile = np.empty(gemm.MR * U.shape[2], x.dtype)
        _dropped(h0, dm, r0, hd)
        for t in range(T):
            _project(x, r0, T - 1 - t if backwards else t, kernel, z, tile)
            gemm.gemm(hd.reshape(-1), 0, H, 1, U, z, True, tile)
            h_prev = hs[t - 1] if t > 0 else h0
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                zb, hp, h_out, d, hd_b = z[r], h_prev[b], hs[t, b], dm[b], hd[r]
                for j in range(H):
                    h_old = hp[j]
                    h = _tanh(zb[j] + bias[j])
                    h = h if keep else h_old
                    h_out[j] = h
                    hd_b[j] = h * d[j]


@njit(parallel=True, **_JIT)
def _simple_rnn_backward(dhs, UT, kernel_t, hs, mask, dm, backwards, parts, dz, dx, dh0, dbias):
    """dhs [T,B,H], UT = Uᵀ [H,H], kernel_t = kernelᵀ [H,F] packed -> dz [T,B,H],
    dx [B,T,F], dh0 [B,H], dbias [parts,H]. Scratch per part: dh_rec [n,H] = dz_{t+1}·Uᵀ;
    carry [n,H] = dh at a masked step, else 0."""
    T, B, H = hs.shape
    one, zero = dhs.dtype.type(1), dhs.dtype.type(0)
    for p in prange(parts):
        r0, r1 = _rows(B, p, parts)
        dh_rec, carry = np.zeros((r1 - r0, H), dhs.dtype), np.zeros((r1 - r0, H), dhs.dtype)
        tile = np.empty(gemm.MR * UT.shape[2], dhs.dtype)
        total = dbias[p]
        total[:] = 0
        for t in range(T - 1, -1, -1):
            for r in range(r1 - r0):
                b = r0 + r
                keep = mask[t, b]
                dhs_b, h_b, dz_out = dhs[t, b], hs[t, b], dz[t, b]
                rec, car, d = dh_rec[r], carry[r], dm[b]
                for j in range(H):
                    dh = dhs_b[j] + car[j] + rec[j] * d[j]
                    dz_out[j] = dh * (one - h_b[j] * h_b[j]) if keep else zero
                    car[j] = zero if keep else dh
                _add(total, dz_out)
            _product(dz, t, r0, UT, dh_rec, tile)
            _product(dz, t, r0, kernel_t, dx[r0:r1, T - 1 - t if backwards else t], tile)
        for r in range(r1 - r0):
            dh0[r0 + r] = carry[r] + dh_rec[r] * dm[r0 + r]


gemm.refresh_caches(globals())
