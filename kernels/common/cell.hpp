// Cell math shared by the C++ kernels (kernels/cpu) and the CUDA kernels (kernels/cuda):
// activations and the per-element gate forward/backward of LSTM, GRU and SimpleRNN.
// Every function works on one element (one batch row, one unit), so the CPU loops over units
// auto-vectorize it and a CUDA thread calls it as is. Gradients are written in terms of the
// activated gates the forward stored (σ' = σ(1-σ), tanh' = 1-tanh²), never recomputing them.
//
// float: tanh is a clamped rational approximation (Eigen's 13/6-degree form, max error ~3e-7,
// a few ulp) made only of multiply/add/divide, so it vectorizes where a libm call would not.
// double: exact libm, so the float64 parity against the NumPy reference stays ~1e-10.
// σ(x) = ½·tanh(x/2) + ½ for both: one transcendental, and it cannot overflow.
#pragma once

#if defined(__CUDACC__)
#define SEQFUSE_HD __host__ __device__
#else
#define SEQFUSE_HD
#endif

// For the row pointers of a loop over units: the rows one loop touches never overlap, and
// without the promise GCC gives up vectorizing after too many run-time alias checks.
// (GCC honours it on function parameters, so the CPU kernels pass rows to small functions.)
#define SEQFUSE_RESTRICT __restrict__

#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif

namespace seqfuse {

// The float tanh as a rational function, on a float or on a GCC vector of floats (the C++
// kernels' row passes: cpu/lstm.hpp), the same operations either way.
template <typename T>
SEQFUSE_HD inline T tanh_rational(T x) {
  // Beyond ±7.905 the rational form rounds to ±1 in float; clamping keeps it there.
  const float clamp = 7.90531110763549805f;
  x = x < -clamp ? -clamp : x;
  x = x > clamp ? clamp : x;
  const T x2 = x * x;
  T p = T{} + -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  T q = T{} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

SEQFUSE_HD inline float tanh_act(float x) { return tanh_rational(x); }

// A GCC vector of floats (only those can be indexed): the float form, lane by lane.
template <typename V, typename = decltype(V{}[0])>
SEQFUSE_HD inline V tanh_act(V x) {
  return tanh_rational(x);
}

SEQFUSE_HD inline double tanh_act(double x) {
#if defined(__CUDA_ARCH__) || defined(__CUDACC_RTC__)
  return ::tanh(x);
#else
  return std::tanh(x);
#endif
}

template <typename T>
SEQFUSE_HD inline T sigmoid_act(T x) {
  const T half = T{} + 0.5f;  // T(0.5), also for a vector T
  return half * tanh_act(half * x) + half;
}

// LSTM, gates i,f,c,o. z*: pre-activations; writes the activated gates, c_t and h_t.
template <typename T>
SEQFUSE_HD inline void lstm_cell_forward(T zi, T zf, T zg, T zo, T c_prev, T& i, T& f, T& g, T& o,
                                         T& c, T& h) {
  i = sigmoid_act(zi);
  f = sigmoid_act(zf);
  g = tanh_act(zg);
  o = sigmoid_act(zo);
  c = f * c_prev + i * g;
  h = o * tanh_act(c);
}

// dh, dc: total gradients reaching h_t and c_t. Writes d(pre-activations) and the part of
// the c_{t-1} gradient that flows through the forget gate.
template <typename T>
SEQFUSE_HD inline void lstm_cell_backward(T i, T f, T g, T o, T c, T c_prev, T dh, T dc, T& dzi,
                                          T& dzf, T& dzg, T& dzo, T& dc_prev) {
  const T tanh_c = tanh_act(c);
  const T one = T{} + 1.0f;  // T(1), also for a vector T
  dc += dh * o * (one - tanh_c * tanh_c);
  dzi = dc * g * i * (one - i);
  dzf = dc * c_prev * f * (one - f);
  dzg = dc * i * (one - g * g);
  dzo = dh * tanh_c * o * (one - o);
  dc_prev = dc * f;
}

// GRU update and reset gates from their full pre-activations (input + recurrent parts).
template <typename T>
SEQFUSE_HD inline void gru_gates_forward(T az, T ar, T& z, T& r) {
  z = sigmoid_act(az);
  r = sigmoid_act(ar);
}

// GRU candidate and blend: an = pre-activation of the candidate, h_prev undropped (Keras
// blends with the undropped state; dropout only touches the matmul inputs).
template <typename T>
SEQFUSE_HD inline void gru_blend_forward(T z, T an, T h_prev, T& n, T& h) {
  n = tanh_act(an);
  const T one = T{} + 1.0f;  // T(1), also for a vector T
  h = z * h_prev + (one - z) * n;
}

// GRU backward through the blend: dh total gradient of h_t. Writes d(pre-activation of z),
// d(pre-activation of n) and the direct h_{t-1} gradient dh·z (the recurrent GEMM adds the rest).
template <typename T>
SEQFUSE_HD inline void gru_blend_backward(T z, T n, T h_prev, T dh, T& dz, T& dn, T& dh_direct) {
  const T one = T{} + 1.0f;  // T(1), also for a vector T
  dn = dh * (one - z) * (one - n * n);
  dz = dh * (h_prev - n) * z * (one - z);
  dh_direct = dh * z;
}

// d(pre-activation of r) given the gradient reaching r: reset_after, dr_in = dn·u_h;
// otherwise dr_in = (dn·U_hᵀ)·hd.
template <typename T>
SEQFUSE_HD inline T gru_reset_backward(T r, T dr_in) {
  return dr_in * r * (T{} + 1.0f - r);  // T(1) - r, also for a vector T
}

// SimpleRNN: h = tanh(a); backward from the stored h.
template <typename T>
SEQFUSE_HD inline T simple_rnn_cell_backward(T h, T dh) {
  return dh * (T(1) - h * h);
}

}  // namespace seqfuse
