// What the AVX-512 and AMX matmul paths share, so that they compute identically (their bit-for-bit
// agreement rests on these): quantizing a block of 32 activations (the two paths lay the results
// out differently), reading a record's scales, and unpacking 4-, 5- and 6-bit quants; and the
// store of a tile's sums, which the quantized and bf16 kernels share. Include only
// from files compiled for AVX-512 (*_avx512.cc). Pure; any thread.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/matmul_internal.h"

namespace tinyserve::kernels::cpu {

struct QuantizedBlock32 {
  float sx = 0;    // amax / 127: x ~= sx * q
  int32_t s0 = 0;  // sum of q[0..16)
  int32_t s1 = 0;  // sum of q[16..32)
};

// The block v0 | v1 rounded with the reciprocal `inverse` (each lane 127 / amax, or 0 when amax is
// 0): q[i] = round-to-nearest-even(v[i] * inverse), left in *bytes, with sx = amax / 127.
inline QuantizedBlock32 RoundBlock32(__m512 v0, __m512 v1, __m512 inverse, float sx,
                                     __m256i* bytes) {
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inverse));
  const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inverse));
  *bytes = _mm256_set_m128i(_mm512_cvtsepi32_epi8(q1), _mm512_cvtsepi32_epi8(q0));
  // The two sums from the bytes (|v * inverse| <= 127 rounds to at most 127: none saturates): each
  // byte + 128 as unsigned, eight at a time through vpsadbw, instead of two 16-lane reductions
  // (~a third of this function's instructions).
  const __m256i eights =
      _mm256_sad_epu8(_mm256_xor_si256(*bytes, _mm256_set1_epi8(-128)), _mm256_setzero_si256());
  const __m128i lo = _mm256_castsi256_si128(eights), hi = _mm256_extracti128_si256(eights, 1);
  const __m128i sums = _mm_add_epi64(_mm_unpacklo_epi64(lo, hi), _mm_unpackhi_epi64(lo, hi));
  return {sx, _mm_cvtsi128_si32(sums) - 16 * 128, _mm_extract_epi32(sums, 2) - 16 * 128};
}

// q[i] = round-to-nearest-even(x[i] * 127 / amax) for the 32 floats at x (q all 0 when amax is
// 0), left in *bytes.
inline QuantizedBlock32 QuantizeBlock32(const float* x, __m256i* bytes) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 v0 = _mm512_loadu_ps(x);
  const __m512 v1 = _mm512_loadu_ps(x + 16);
  const float amax =
      _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1)));
  const float id = amax == 0 ? 0.0f : 127.0f / amax;
  return RoundBlock32(v0, v1, _mm512_set1_ps(id), amax / 127.0f, bytes);
}

// The same, the bytes written to q (32 bytes, 16-byte aligned).
inline QuantizedBlock32 QuantizeBlock32(const float* x, int8_t* q) {
  __m256i bytes;
  const QuantizedBlock32 r = QuantizeBlock32(x, &bytes);
  _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm256_castsi256_si128(bytes));
  _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm256_extracti128_si256(bytes, 1));
  return r;
}

// Writes the sums of NG row groups starting at group g for output rows [m, m + MT) (plus bias
// when given): group j's 16 lanes to out[(m + r) * w.rows + 16 (g + j) ...], the last group's
// lanes past w.rows left out; whole groups of a streamed output (OutTile::stream) with
// non-temporal stores, which the kernel fences before it returns.
template <int NG, int MT>
inline void StoreGroups(const PackedMatrix::Impl& w, const __m512 (&acc)[NG][MT], int64_t g,
                        int64_t m, const float* bias, OutTile out) {
  for (int j = 0; j < NG; ++j) {
    const int64_t n0 = (g + j) * kGroupRows;
    const int64_t valid = w.rows - n0 < kGroupRows ? w.rows - n0 : kGroupRows;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    for (int r = 0; r < MT; ++r) {
      const __m512 v = bias ? _mm512_add_ps(acc[j][r], bv) : acc[j][r];
      if (out.stream && valid == kGroupRows) {
        _mm512_stream_ps(out.At(m + r, n0), v);
      } else {
        _mm512_mask_storeu_ps(out.At(m + r, n0), mask, v);
      }
    }
  }
}

// How a packed matrix stores its scales (matmul_internal.h).
enum class ScaleKind { kF32, kF16, kInt8 };
inline ScaleKind ScaleKindOf(const PackedMatrix::Impl& w) {
  return w.int_scales ? ScaleKind::kInt8 : w.f16_scales ? ScaleKind::kF16 : ScaleKind::kF32;
}

// The 16 scales (i = 0) or offsets (i = 1) of group g's record b (matmul_internal.h): f16, f32,
// or int8 times the super-block's f16 factors (an exact product: the value Impl::Scale gives).
template <ScaleKind kS>
inline __m512 LoadScales(const PackedMatrix::Impl& w, int64_t g, int64_t b, int i) {
  const uint8_t* p = w.Group(g) + b * w.record_bytes + w.quant_bytes;
  if constexpr (kS == ScaleKind::kInt8) {
    const __m512 k = _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p) + i)));
    const auto* f = reinterpret_cast<const __m256i*>(w.Factors(g, b)) + i;
    return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(f)), k);
  } else if constexpr (kS == ScaleKind::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p) + i));
  } else {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p) + 16 * i);
  }
}

// The same, the storage chosen at run time (the AVX-512 kernel: one branch per record).
inline __m512 LoadScales(const PackedMatrix::Impl& w, int64_t g, int64_t b, int i) {
  switch (ScaleKindOf(w)) {
    case ScaleKind::kInt8:
      return LoadScales<ScaleKind::kInt8>(w, g, b, i);
    case ScaleKind::kF16:
      return LoadScales<ScaleKind::kF16>(w, g, b, i);
    default:
      return LoadScales<ScaleKind::kF32>(w, g, b, i);
  }
}

// One 64-byte line of 4-bit quants (matmul_internal.h) as the two 8-bit lines of its chunks:
// low nibbles (chunk 2p) and high nibbles (chunk 2p + 1), mapped through the 16-entry table
// when kTable (a codebook format).
template <bool kTable>
inline void UnpackNibbles(const uint8_t* line, __m512i table, __m512i* low, __m512i* high) {
  const __m512i low4 = _mm512_set1_epi8(15);
  const __m512i v = _mm512_loadu_si512(line);
  *low = _mm512_and_si512(v, low4);
  *high = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  if constexpr (kTable) {
    *low = _mm512_shuffle_epi8(table, *low);
    *high = _mm512_shuffle_epi8(table, *high);
  }
}

// Chunk c's high bits (kHigh per weight) of a record's high line hb at bits [4, 4 + kHigh) of
// every byte (matmul_internal.h); the other bits are garbage for the caller's mask.
template <int kHigh>
inline __m512i HighBitsAt4(__m512i hb, int c) {
  const int s = kHigh * c - 4;
  return s >= 0 ? _mm512_srli_epi16(hb, s) : _mm512_slli_epi16(hb, -s);
}

// Line p of a record's 4-bit quants as the 8-bit lines of chunks 2p and 2p + 1; with kHigh > 0
// (5/6-bit quants, identity table) the bits above 4 come from the high line hb.
template <bool kTable, int kHigh>
inline void UnpackLine(const uint8_t* rec, int p, __m512i table, __m512i hb, __m512i* low,
                       __m512i* high) {
  UnpackNibbles<kTable>(rec + p * 64, table, low, high);
  if constexpr (kHigh > 0) {
    static_assert(!kTable);
    const __m512i mask = _mm512_set1_epi8(static_cast<char>(((1 << kHigh) - 1) << 4));
    // 0xf8 = a | (b & c): the nibble or the masked high bits.
    *low = _mm512_ternarylogic_epi32(*low, HighBitsAt4<kHigh>(hb, 2 * p), mask, 0xf8);
    *high = _mm512_ternarylogic_epi32(*high, HighBitsAt4<kHigh>(hb, 2 * p + 1), mask, 0xf8);
  }
}

// The format's table broadcast to every 128-bit lane, for UnpackNibbles.
inline __m512i NibbleTableVector(const PackedMatrix::Impl& w) {
  return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(w.table)));
}

}  // namespace tinyserve::kernels::cpu
