// The recurrent cells' step GEMM (cpu/gemm.hpp's gemm<T, NP>, which runs the register tile in
// force) is compiled once, in step_gemm.cpp, not again in each cell's binding: its tiles, five
// per type and product count, were two thirds of lstm.cpp's, gru.cpp's and simple_rnn.cpp's
// object code and compile time.
#pragma once
#include "cpu/gemm.hpp"

extern template decltype(seqfuse::gemm<float, 1>) seqfuse::gemm<float, 1>;
extern template decltype(seqfuse::gemm<float, 2>) seqfuse::gemm<float, 2>;
extern template decltype(seqfuse::gemm<double, 1>) seqfuse::gemm<double, 1>;
extern template decltype(seqfuse::gemm<double, 2>) seqfuse::gemm<double, 2>;
