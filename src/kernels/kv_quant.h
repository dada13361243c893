// The int8 KV cache's number format, shared by the kernels and their reference so that both
// write the same bytes: one row of head_dim values (one token, one KV head) is stored as int8
// q[i] with one binary16 scale s, value = q[i] * s, s = max|x| / 127 rounded to binary16. The
// product of a 7-bit integer and an 11-bit scale is exact in f32, so every reader (SIMD in
// registers, scalar, double) sees the same dequantized value. Pure functions, any thread.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/convert.h"

namespace tinyserve::kernels {

// round(v) to nearest, ties to even (as std::nearbyint in the default rounding mode), clamped
// to [-127, 127], for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits. Inline arithmetic,
// where nearbyint is a library call on the baseline ISA (this runs per element of every K/V
// row stored and every query of an int8 cache).
inline int8_t RoundToInt8(float v) {
  constexpr float kMagic = 12582912.0f;
  const float r = (v + kMagic) - kMagic;
  return static_cast<int8_t>(r < -127.0f ? -127.0f : (r <= 127.0f ? r : 127.0f));  // NaN: 127
}

// Quantizes x[0, n) into q and returns the binary16 scale. Rounds to nearest (ties to even);
// a row of zeros, one whose scale underflows binary16, or one holding inf / NaN (no finite
// scale) stores zeros with scale 0.
inline uint16_t QuantizeKvRow(const float* x, int64_t n, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fabs(x[i]) > amax ? std::fabs(x[i]) : amax;
  const uint16_t scale_bits = F32ToFp16(amax / 127.0f);
  const float scale = Fp16ToF32(scale_bits);
  if (!(scale > 0) || !std::isfinite(scale)) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0;
  }
  // (The binary16 rounding of the scale may push |x| / scale just past 127: clamped.)
  for (int64_t i = 0; i < n; ++i) q[i] = RoundToInt8(x[i] / scale);
  return scale_bits;
}

// The f32 value of one stored element (exact).
inline float DequantizeKv(int8_t q, float scale) { return static_cast<float>(q) * scale; }

// Attention over an int8 cache rounds each query head row to int8 as well (llama.cpp does the
// same for its q8_0 cache): q.k is then an exact integer dot (VNNI) times the two scales. The
// query's scale is f32, s = max|x| / 127; returns it, with q[i] = round(x[i] / s) and *sum the
// sum of the q[i] (the VNNI kernel reads keys as unsigned k + 128 and subtracts 128 * sum). A
// row of zeros stores zeros with scale 0; a row holding inf / NaN stores zeros and returns a
// non-finite scale, so its scores are NaN as they would be unquantized.
inline float QuantizeQueryRow(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fabs(x[i]) > amax ? std::fabs(x[i]) : amax;
  for (int64_t i = 0; i < n; ++i) amax = std::isnan(x[i]) ? x[i] : amax;
  const float scale = amax / 127.0f;
  *sum = 0;
  if (!(scale > 0) || !std::isfinite(scale)) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return scale;
  }
  for (int64_t i = 0; i < n; ++i) {
    q[i] = RoundToInt8(x[i] / scale);
    *sum += q[i];
  }
  return scale;
}

}  // namespace tinyserve::kernels
