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
};

}  // namespace seqfuse
