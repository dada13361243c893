// Ground truth for MatMul: each weight row dequantized with DequantizeRow, dot products of the
// unquantized activations accumulated in double. Slow; for tests and tools. Pure function.
#pragma once

#include <cstdint>

#include "formats/tensor_view.h"

namespace tinyserve::kernels {

// out[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) for w [rows, cols] of any float or block type.
// x: [num_rows, cols]; out: [num_rows, rows]; bias: [rows] or nullptr.
void MatMulReference(const TensorView& w, const float* x, int64_t num_rows, const float* bias,
                     float* out);

}  // namespace tinyserve::kernels
