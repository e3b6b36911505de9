// SIMD vector types for the CPU kernels (GCC/Clang vector extension), so the register tiles of
// cpu/gemm.hpp and cpu/conv1d_direct.hpp are explicit vectors rather than arrays left to the
// auto-vectorizer.
#pragma once

namespace seqfuse {

// Bytes of the widest vector registers this build targets (a zmm, ymm or xmm register).
inline constexpr int kVectorBytes =
#if defined(__AVX512F__)
    64;
#elif defined(__AVX__)
    32;
#else
    16;
#endif

// A SIMD vector of Bytes/sizeof(T) elements: arithmetic on it is one instruction per register
// of the build's width (a vector wider than the registers is split into several).
template <typename T, int Bytes>
struct Vector {
  typedef T type __attribute__((vector_size(Bytes)));
  // The same vector at T's alignment, for loads and stores at any element address.
  typedef T unaligned __attribute__((vector_size(Bytes), aligned(sizeof(T)), may_alias));
};

// One unaligned vector load or store (vmovups). A register tile must be filled and drained
// through these, not by memcpy into its array elements: from `memcpy(&acc[r][v], src, 32)`
// GCC 12 built the tile in memory with 16-byte moves and read it back with 32-byte loads, a
// failed store-to-load forward per register at every tile start (perf annotate put ~20% of
// the LSTM forward GEMM's samples there on the Zen 3 VM; LSTM (64,100,64,128) forward 17.2 ->
// 14.4 ms with this change alone, medians over 8 processes alternating with the old build).
template <typename V, typename T>
inline V load_vector(const T* p) {
  return *reinterpret_cast<const typename Vector<T, sizeof(V)>::unaligned*>(p);
}
template <typename T, typename V>
inline void store_vector(T* p, V v) {
  *reinterpret_cast<typename Vector<T, sizeof(V)>::unaligned*>(p) = v;
}

}  // namespace seqfuse
