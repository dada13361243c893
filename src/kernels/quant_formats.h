// ggml's block-quantized weight formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ3_S,
// IQ4_NL, IQ4_XS, MXFP4, TQ1_0, TQ2_0, Q1_0, Q2_0; quantizers for the first ten): exact
// block layouts, and conversion of whole rows to and from f32. These are the reference
// definitions every fast kernel and repacking is checked against. Pure functions.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "util/status.h"

namespace tinyserve::kernels {

// dst[0..n) = the f32 values of the n weights starting at src, for any dtype of formats/dtype.h
// that is a float or block type. Requires n to be a multiple of BlockSize(type).
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);

// Encodes n floats as `type` into dst (RowBytes(type, n) bytes). Plain round-to-nearest per
// block (no importance weighting); deterministic. Errors: n not a multiple of the block size,
// or a type without a quantizer.
[[nodiscard]] Status QuantizeRow(DType type, const float* src, void* dst, int64_t n);

}  // namespace tinyserve::kernels
