// What the recurrent loops' GEMM (kernels/cpu/gemm.hpp) reaches per core on hot data: the
// ceiling the "floors" in bench/RESULTS.md are measured against.
//
//   g++ -O3 -march=native -std=c++17 -pthread -Ikernels tools/gemm_peak.cpp -o /tmp/gemm_peak
//   /tmp/gemm_peak 1    # one core
//   /tmp/gemm_peak 2    # every core at once, each on its own arrays (the loops' situation)
//
// Shapes are those of one thread's step: (M rows, K, N) = C[M,N] += A[M,K]·B[K,N], float,
// with B packed panel by panel as the loops read U and the kernel (packed_copy). Read from
// the plain [K,N] array instead, as this tool did until 2026-12-01, B's rows 2-4 KB apart
// shared a few L1 sets, and the tool understated the loops' GEMM: on the 2-vCPU AMD EPYC
// Zen 3 VM, one core, plain / packed: (32,192,512) 45-48 / 63-69 GFLOP/s, (64,256,1024)
// 38 / 63-67 (same run, alternating).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cpu/gemm.hpp"

namespace {

// The first three: the backward step GEMMs of one thread at (B,T,F,H) = (64,100,64,128),
// dz·Uᵀ with K = G = 4H (LSTM), 3H (GRU), H (SimpleRNN); then forward steps and edge cases.
constexpr std::array<std::array<long, 3>, 8> kShapes{{
    {32, 512, 128}, {32, 384, 128}, {32, 128, 128}, {32, 128, 512}, {32, 192, 512},
    {64, 256, 1024}, {16, 128, 128}, {8, 2048, 32}}};

// Best of 7 timings of enough calls for ~0.2 GFLOP each, in GFLOP/s.
double gflops(long M, long K, long N) {
  std::vector<float> A(M * K, 0.5f), B(K * N, 0.25f), C(M * N, 0.0f);
  // The tile the loops run for one thread's M rows of K (step_tile), B packed for it, as the
  // loops read U.
  const seqfuse::GemmTile tile = seqfuse::step_tile<float>(M, 0.0, K);
  const seqfuse::Scratch<float> Bp = seqfuse::packed_copy(K, N, B.data(), N, tile);
  const seqfuse::Product<float> p[1] = {{K, A.data(), K, Bp.data(), N, true}};
  const long calls = std::max(1L, 200000000L / (2 * M * K * N));
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < calls; ++i)
      seqfuse::gemm<float, 1>(M, N, p, C.data(), N, C.data(), N, tile);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count() / calls);
  }
  return 2.0 * M * K * N / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  std::vector<std::array<double, kShapes.size()>> results(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&results, t] {
      for (size_t s = 0; s < kShapes.size(); ++s)
        results[t][s] = gflops(kShapes[s][0], kShapes[s][1], kShapes[s][2]);
    });
  for (auto& worker : pool) worker.join();
  std::printf("(M, K, N)          GFLOP/s per thread, %d thread(s) at once\n", threads);
  for (size_t s = 0; s < kShapes.size(); ++s) {
    std::printf("(%ld, %ld, %ld)%*s", kShapes[s][0], kShapes[s][1], kShapes[s][2], 4, "");
    for (int t = 0; t < threads; ++t) std::printf(" %6.1f", results[t][s]);
    std::printf("\n");
  }
}
