// SIMD vector types for the CPU kernels (GCC/Clang vector extension), so the register tiles of
// cpu/gemm.hpp and cpu/conv1d_direct.hpp are explicit vectors rather than arrays left to the
// auto-vectorizer; the streaming stores that write large outputs past the cache; and the
// prefetches that ask for rows ahead of their use.
#pragma once
#include <cstdint>
#include <cstring>

#include <unistd.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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

// The float vector of the build's full width and its lanes: the recurrent cells' row passes
// (cpu/lstm.hpp, gru.hpp, simple_rnn.hpp) run on it, then a scalar tail.
using FloatVector = Vector<float, kVectorBytes>::type;
inline constexpr int64_t kFloatLanes = kVectorBytes / sizeof(float);

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
// p[0 .. lanes) += v (a row pass's column sums, ColumnSums in cpu/projection.hpp).
template <typename T, typename V>
inline void add_vector(T* p, V v) {
  store_vector(p, load_vector<V>(p) + v);
}

// Cache sizes per core from glibc's sysconf; elsewhere (no such names) the fallbacks below.
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
inline constexpr int kSysconfL1 = _SC_LEVEL1_DCACHE_SIZE, kSysconfL2 = _SC_LEVEL2_CACHE_SIZE;
#else
inline constexpr int kSysconfL1 = -1, kSysconfL2 = -1;
#endif

// Bytes sysconf reports under `name`, or `fallback` where it says nothing (0, or -1).
inline int64_t cache_bytes(int name, int64_t fallback) {
  const long n = name < 0 ? -1 : sysconf(name);
  return n > 0 ? static_cast<int64_t>(n) : fallback;
}

// Bytes of the L1 data cache per core (32 KiB where sysconf does not say).
inline int64_t l1_cache_bytes() {
  static const int64_t bytes = cache_bytes(kSysconfL1, int64_t{32} << 10);
  return bytes;
}

// Bytes of the L2 cache per core (512 KiB where sysconf does not say).
inline int64_t l2_cache_bytes() {
  static const int64_t bytes = cache_bytes(kSysconfL2, int64_t{512} << 10);
  return bytes;
}

// The recurrent backwards' rule for asking for the next step's rows (prefetch_row, below):
// whether a thread's rows of one step, `row_elements` per batch row for `rows` rows, fit in
// half the L2 beside `resident_elements` that stay there (the packed Uᵀ).
template <typename T>
inline bool step_rows_fit(int64_t rows, int64_t row_elements, int64_t resident_elements) {
  return (rows * row_elements + resident_elements) * static_cast<int64_t>(sizeof(T)) <=
         l2_cache_bytes() / 2;
}

// Asks for the lines of [p, p + n) to be brought into the cache ahead of their use, for a load
// or (Write) a store, Locality as __builtin_prefetch's (3: into L1, 2: into L2): the embedding
// gather asks for a row a few ids ahead into L1, a recurrent backward for the next step's rows
// into L2 while this one computes.
template <bool Write = false, int Locality = 3, typename T>
inline void prefetch_row(const T* p, int64_t n) {
#if defined(__GNUC__)
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64)
    __builtin_prefetch(bytes + b, Write, Locality);
#endif
}

#if defined(__SSE2__)
// One streaming store of kVectorBytes at out (aligned to it) from in (any alignment).
inline void stream_vector(float* out, const float* in) {
#if defined(__AVX512F__)
  _mm512_stream_ps(out, _mm512_loadu_ps(in));
#elif defined(__AVX__)
  _mm256_stream_ps(out, _mm256_loadu_ps(in));
#else
  _mm_stream_ps(out, _mm_loadu_ps(in));
#endif
}
inline void stream_vector(double* out, const double* in) {
#if defined(__AVX512F__)
  _mm512_stream_pd(out, _mm512_loadu_pd(in));
#elif defined(__AVX__)
  _mm256_stream_pd(out, _mm256_loadu_pd(in));
#else
  _mm_stream_pd(out, _mm_loadu_pd(in));
#endif
}
#endif

// dst[0, d) = src[0, d) through non-temporal stores: plain stores up to dst's first boundary
// of the build's vector width (kVectorBytes) and after its last, streaming stores of that
// width between them (a plain copy without SSE2). They skip reading each destination line
// into the cache before it is overwritten, and leave the cache to what the loop reads again:
// for an output written once and read much later (a big gather's rows, cpu/embedding.hpp;
// the gate activations LSTM's forward saves for its backward, cpu/lstm.hpp). The writing
// thread calls stream_fence() before another thread reads dst. 64-byte stores with AVX-512,
// not 16-byte ones: Intel Xeon (family 6, model 167), 2026-12-02, float32 gathers, both ways
// alternating call by call in one process, medians of 25: 58.6 MiB out (V=100k, D=300)
// 3.58 -> 3.18 ms, 29.3 MiB 2.02 -> 1.67, 15.6 MiB (D=128) 0.68 -> 0.62.
template <typename T>
inline void stream_row(T* dst, const T* src, int64_t d) {
#if defined(__SSE2__)
  constexpr int64_t lanes = kVectorBytes / sizeof(T);
  int64_t j = 0;
  for (; j < d && reinterpret_cast<std::uintptr_t>(dst + j) % kVectorBytes; ++j) dst[j] = src[j];
  for (; j + lanes <= d; j += lanes) stream_vector(dst + j, src + j);
  for (; j < d; ++j) dst[j] = src[j];
#else
  std::memcpy(dst, src, sizeof(T) * d);
#endif
}

// Orders this thread's streaming stores before its later stores (the end of a parallel
// region), so other threads see them.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace seqfuse
