// Ground truth for MatMul: each weight row dequantized with DequantizeRow, dot products of the
// unquantized activations accumulated in double. For the bf16 dot product (UsesBf16Dot in
// kernels/matmul.h) also the same with activations rounded to bf16, and a plain-C++ model of
// vdpbf16ps that the kernel must match bit for bit. Slow; for tests and tools. Pure functions.
#pragma once

#include <cstdint>

#include "formats/tensor_view.h"

namespace tinyserve::kernels {

// out[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) for w [rows, cols] of any float or block type.
// x: [num_rows, cols]; out: [num_rows, rows]; bias: [rows] or nullptr.
void MatMulReference(const TensorView& w, const float* x, int64_t num_rows, const float* bias,
                     float* out);

// An activation as the bf16 dot product reads it (vcvtne2ps2bf16): an f32 denormal reads as
// zero, others round to the nearest bf16, ties to even (NaN stays NaN).
uint16_t RoundActivationToBf16(float x);

// MatMulReference for bf16 weights with each x rounded by RoundActivationToBf16 first: the exact
// products the bf16 dot product sums (its f32 sums are the only difference).
void MatMulReferenceBf16Acts(const TensorView& w, const float* x, int64_t num_rows,
                             const float* bias, float* out);

// The bf16 dot product as the instruction defines it (Intel SDM, VDPBF16PS; AMD Zen 4 measured
// the same), for bf16 w: per output acc = +0, then for each pair p = 0, 1, ... of columns
//   acc = fl(acc + w[2p + 1] * x[2p + 1]);  acc = fl(acc + w[2p] * x[2p])
// with x rounded by RoundActivationToBf16, bf16 denormals (weights too) read as zero, exact
// products, f32 sums rounded to nearest even and denormal sums flushed to zero; a zero pads an
// odd cols; finally out = acc + bias[n] in f32. The kernel must match it bit for bit.
void MatMulBf16DotModel(const TensorView& w, const float* x, int64_t num_rows, const float* bias,
                        float* out);

}  // namespace tinyserve::kernels
