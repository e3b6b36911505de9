// Run-time choices among kernel variants (docs/kernels.md, "Choices per CPU"): which variant
// a kernel runs is set once per process by engine/tuning.py (from an environment variable, the
// on-disk autotune cache, or the rule for this CPU) through engine._C.set_choice, and read by
// the kernels at each call. Every variant computes the same result; the tests force each one.
#pragma once
#include <atomic>

namespace seqfuse {

// Conv1D algorithm: kAuto picks per shape (cpu/conv1d.hpp), direct and gemm force one,
// kConvRaggedGemm runs gemm only where a pass's columns leave the direct tile ragged, and
// kConvWideGemm also where C and O are both >= 128 (float64: 256). engine/tuning.py times
// the last two against kAuto.
enum Conv1dAlgorithm : int {
  kConvAuto = 0, kConvDirect = 1, kConvGemm = 2, kConvRaggedGemm = 3, kConvWideGemm = 4
};

// Recurrent weight gradients: our tile reading the sequences in place (cpu/gemm_tn.hpp) or
// NumPy's OpenBLAS on gathered rows (engine/_blas.py); kAuto: the tile with AVX2 or AVX-512,
// OpenBLAS with SSE2 alone.
enum WeightGradients : int { kWeightAuto = 0, kWeightTile = 1, kWeightBlas = 2 };

// Whether engine/_recurrent.py asks SimpleRNN's and GRU's backwards to sum the weight
// gradients inside their time loops (LoopWeights, cpu/gemm_tn.hpp; not with a recurrent
// dropout mask, nor for GRU without reset_after); kAuto: it does.
enum WeightsInLoop : int { kInLoopAuto = 0, kInLoopOn = 1, kInLoopOff = 2 };

// Where LSTM's and GRU's backward row passes write a step's gradient rows (GradientRows,
// cpu/projection.hpp): kAuto by the L2 rule there, in place or streamed forced.
enum BackwardRows : int { kRowsAuto = 0, kRowsInPlace = 1, kRowsStreamed = 2 };

// Where the embedding gather writes its output on streaming stores (cpu/embedding.hpp,
// gather_streams): kAuto above kStreamBytes (16 MiB: an output that fits in half a 32 MiB L3
// stays cached for its reader), kGatherAbove8MiB already above 8 MiB, always or never (forced).
enum GatherStores : int {
  kGatherAuto = 0, kGatherAbove8MiB = 1, kGatherStream = 2, kGatherPlain = 3
};

struct Choices {
  std::atomic<int> conv1d{kConvAuto};
  std::atomic<int> weight_gradients{kWeightAuto};
  std::atomic<int> backward_rows{kRowsAuto};
  std::atomic<int> weights_in_loop{kInLoopAuto};
  std::atomic<int> gather_stores{kGatherAuto};
  // Register tile of the recurrent loops' GEMM: 0 = auto (cpu/gemm.hpp, step_tile), else an
  // index into kGemmTiles (cpu/gemm.hpp).
  std::atomic<int> gemm_tile{0};
};

inline Choices& choices() {
  static Choices instance;
  return instance;
}

}  // namespace seqfuse
