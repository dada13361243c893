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

// Quantizes x[0, n) into q and returns the binary16 scale. Rounds to nearest (ties to even);
// a row of zeros, one whose scale underflows binary16, or one holding inf / NaN (no finite
// scale) stores zeros with scale 0.
inline uint16_t QuantizeKvRow(const float* x, int64_t n, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const uint16_t scale_bits = F32ToFp16(amax / 127.0f);
  const float scale = Fp16ToF32(scale_bits);
  if (!(scale > 0) || !std::isfinite(scale)) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0;
  }
  for (int64_t i = 0; i < n; ++i) {
    // The binary16 rounding of the scale may push |x| / scale just past 127.
    const float r = std::nearbyint(x[i] / scale);
    q[i] = static_cast<int8_t>(std::fmax(-127.0f, std::fmin(127.0f, r)));
  }
  return scale_bits;
}

// The f32 value of one stored element (exact).
inline float DequantizeKv(int8_t q, float scale) { return static_cast<float>(q) * scale; }

}  // namespace tinyserve::kernels
