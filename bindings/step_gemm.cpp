// The step GEMM's instantiations that step_gemm.hpp declares for the cell bindings.
#include "step_gemm.hpp"

template decltype(seqfuse::gemm<float, 1>) seqfuse::gemm<float, 1>;
template decltype(seqfuse::gemm<float, 2>) seqfuse::gemm<float, 2>;
template decltype(seqfuse::gemm<double, 1>) seqfuse::gemm<double, 1>;
template decltype(seqfuse::gemm<double, 2>) seqfuse::gemm<double, 2>;
