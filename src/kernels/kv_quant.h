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

// Added to and subtracted from a float of magnitude < 2^22, it rounds that float to an integer
// (to nearest, ties to even): the sum has no fraction bits left.
inline constexpr float kRoundingMagic = 12582912.0f;  // 1.5 * 2^23

// round(v) to nearest, ties to even (as std::nearbyint in the default rounding mode), clamped
// to [-127, 127], for |v| < 2^22. Inline arithmetic, where nearbyint is a library call on the
// baseline ISA (this runs per element of every K/V row stored).
inline int8_t RoundToInt8(float v) {
  const float r = (v + kRoundingMagic) - kRoundingMagic;
  return static_cast<int8_t>(r < -127.0f ? -127.0f : (r <= 127.0f ? r : 127.0f));  // NaN: 127
}

// The binary16 scale (*bits) and its value for a row whose largest |x| is largest (every
// vector form takes it from here): 0 and bits 0 when the row is stored as zeros.
inline float KvRowScale(float largest, uint16_t* bits) {
  *bits = F32ToFp16(largest / 127.0f);
  const float scale = Fp16ToF32(*bits);
  if (scale > 0 && std::isfinite(scale)) return scale;
  *bits = 0;
  return 0.0f;
}

// Quantizes x[0, n) into q and returns the binary16 scale. Rounds to nearest (ties to even);
// a row of zeros, one whose scale underflows binary16, or one holding inf / NaN (no finite
// scale) stores zeros with scale 0.
inline uint16_t QuantizeKvRow(const float* x, int64_t n, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fabs(x[i]) > amax ? std::fabs(x[i]) : amax;
  uint16_t scale_bits;
  const float scale = KvRowScale(amax, &scale_bits);
  if (scale == 0) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0;
  }
  // (The binary16 rounding of the scale may push |x| / scale just past 127: clamped.)
  for (int64_t i = 0; i < n; ++i) q[i] = RoundToInt8(x[i] / scale);
  return scale_bits;
}

// The f32 value of one stored element (exact).
inline float DequantizeKv(int8_t q, float scale) { return static_cast<float>(q) * scale; }

// Attention over an int8 cache keeps each query head row to 16 bits, as two int8 rows, so that
// q.k is an exact integer dot (two VNNI dots: 256 * hi.k + lo.k; on AVX2 one vpmaddwd dot of
// the 16-bit Q) times the two scales. One int8
// row per query (llama.cpp's q8_0 cache) measured ~0.5 point of teacher-forced top-1 agreement
// against an f16 cache on Qwen2.5-0.5B's shapes, the larger part of the format's whole cost
// (tests/reference/test_kv_int8_numpy.py). The row is Q[i] = round(x[i] * (kQueryMax / max|x|))
// (one division per row, its f32 reciprocal then multiplied: a division per element made the
// AVX-512 form ~10% slower), |Q[i]| <= kQueryMax, with the f32 scale s = max|x| / kQueryMax, stored
// in q[0, 2n) as hi = q[i] and lo = q[n + i] with Q[i] = 256 * hi + lo, lo in [-128, 127]; *sum is
// the sum of the Q[i] (the VNNI kernel reads keys as unsigned k + 128 and subtracts 128 * sum).
// A row of zeros, or one so small (max|x| < ~1e-34) that the reciprocal overflows, stores zeros
// with scale 0; a row holding inf / NaN stores zeros and returns a non-finite scale, so its
// scores are NaN as they would be unquantized.
inline constexpr int32_t kQueryMax = 127 * 256;

// The scale and reciprocal of a query row whose largest |x| is largest (NaN for a row holding
// NaN; every vector form takes them from here): false when the row is stored as zeros, *scale
// then being the row's result (0, or not finite where no finite scale exists).
inline bool QueryRowScale(float largest, float* scale, float* inverse) {
  *scale = largest / static_cast<float>(kQueryMax);
  *inverse = static_cast<float>(kQueryMax) / largest;
  if (*scale > 0 && std::isfinite(*scale) && std::isfinite(*inverse)) return true;
  if (std::isfinite(*scale)) *scale = 0.0f;
  return false;
}

inline float QuantizeQueryRow(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fabs(x[i]) > amax ? std::fabs(x[i]) : amax;
  for (int64_t i = 0; i < n; ++i) amax = std::isnan(x[i]) ? x[i] : amax;
  float scale, inverse;
  *sum = 0;
  if (!QueryRowScale(amax, &scale, &inverse)) {
    for (int64_t i = 0; i < 2 * n; ++i) q[i] = 0;
    return scale;
  }
  constexpr float kLimit = kQueryMax;
  for (int64_t i = 0; i < n; ++i) {
    // std::fma: one rounding of the exact product, as the vector kernels' FMA (a plain
    // x * inverse + c might be contracted to an FMA in one translation unit, not another);
    // adding kRoundingMagic rounds to nearest, ties to even, as in RoundToInt8.
    const float r = std::fma(x[i], inverse, kRoundingMagic) - kRoundingMagic;
    // (x * inverse may round just past kQueryMax: clamped.)
    const auto v = static_cast<int32_t>(r < -kLimit ? -kLimit : (r <= kLimit ? r : kLimit));
    const int32_t hi = (v + 128) >> 8;  // arithmetic shift: floor, so lo = v - 256 hi >= -128
    q[i] = static_cast<int8_t>(hi);
    q[n + i] = static_cast<int8_t>(v - 256 * hi);
    *sum += v;
  }
  return scale;
}

// Query element i of a row QuantizeQueryRow wrote, in f32 (Q[i] * s, rounded once).
inline float DequantizeQuery(const int8_t* q, int64_t n, int64_t i, float scale) {
  return static_cast<float>(256 * int32_t{q[i]} + q[n + i]) * scale;
}

}  // namespace tinyserve::kernels
