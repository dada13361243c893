// Internal AVX-512 helpers (exp, 16-bit float loads, tail masks) shared by the *_avx512.cc
// files, and Vec, the AVX-512 side of the vector interface of the SIMD kernel templates (see
// simd_avx2.h). Include only from files compiled with the AVX-512 flags; everything here lives in
// namespace avx512 so no AVX-512 code can be linked into another ISA's path.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace tinyserve::kernels::cpu::avx512 {

inline constexpr int64_t kWidth = 16;

// Lanes [0, n) set, for n in [0, 16].
inline __mmask16 TailMask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// Lanes [0, left) of p (left may exceed 16 or be <= 0); other lanes are 0. A whole vector uses a
// plain load: masked loads and stores cost far more on some cores (Zen 4), and a load that reads
// back a masked store waits for it.
inline __m512 LoadPart(const float* p, int64_t left) {
  if (left >= kWidth) return _mm512_loadu_ps(p);
  return _mm512_maskz_loadu_ps(TailMask(left <= 0 ? 0 : left), p);
}
// Stores lanes [0, left) of v to p.
inline void StorePart(float* p, __m512 v, int64_t left) {
  if (left >= kWidth) {
    _mm512_storeu_ps(p, v);
  } else if (left > 0) {
    _mm512_mask_storeu_ps(p, TailMask(left), v);
  }
}

// Horizontal sum / max of the 16 lanes (fixed order: halves, then quarters, then pairs).
inline float ReduceAdd(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float ReduceMax(__m512 v) {
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) with ~2 ulp error (Cephes polynomial on x - n ln2, then scalef by 2^n). Inputs are
// clamped to [-104, 89], so very negative inputs give 0 and large ones +inf.
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// 2^x lane by lane for x <= 0 (0 below -150, NaN for NaN), for weights that are rounded to
// 1/32767 of the largest next (attention_avx512.cc's int8 path): 2^n by scalef times 2^f,
// f = x - n in [-0.5, 0.5], from the degree-5 polynomial through f's Chebyshev nodes (relative
// error under 3e-7). Ten instructions with the caller's scaling to base 2, Exp's sixteen.
inline __m512 Exp2NonPositive(__m512 x) {
  // x second: vmaxps returns its second operand when either is NaN, and a NaN score (a NaN
  // query) must stay NaN so that its output is NaN, not a plausible row without those keys.
  x = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.33908634e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.67603192e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.55035711e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40221075e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93147188e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.00000008f));
  return _mm512_scalef_ps(p, n);
}

// Loads lanes [0, n) (n <= 16) of f16 / bf16 values as f32; other lanes are 0.
inline __m512 LoadF16(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
inline __m512 LoadBf16(const uint16_t* p, __mmask16 m) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// Lanes [0, left) of f16 / bf16 values as f32 (left may exceed 16 or be <= 0); other lanes 0. A
// whole vector uses a plain load (see LoadPart).
inline __m512 LoadF16Part(const uint16_t* p, int64_t left) {
  if (left >= kWidth) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  return LoadF16(p, TailMask(left <= 0 ? 0 : left));
}
inline __m512 LoadBf16Part(const uint16_t* p, int64_t left) {
  if (left >= kWidth) {
    const __m512i wide =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  return LoadBf16(p, TailMask(left <= 0 ? 0 : left));
}

// Adds the lanes of each of 16 vectors: result lane t = sum of v[t]'s 16 lanes. A transpose-add
// tree (45 instructions instead of 16 separate reductions); every v[t] goes through the same
// tree whatever t is, so a score never depends on its slot.
inline __m512 ReduceAdd16(const __m512 v[16]) {
  __m512 l1[8];
  for (int i = 0; i < 8; ++i) {
    l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                          _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m512 l2[4];
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(l1[2 * i]);
    const __m512d b = _mm512_castps_pd(l1[2 * i + 1]);
    l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                          _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  __m512 l3[2];
  for (int i = 0; i < 2; ++i) {
    l3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Lanes [0, left) of int8 values as f32 (exact); other lanes 0.
inline __m512 LoadI8Part(const int8_t* p, int64_t left) {
  const __m128i bytes = left >= kWidth ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                       : _mm_maskz_loadu_epi8(TailMask(left <= 0 ? 0 : left), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
}

// 16 x 16 transpose of 32-bit lanes: out[d] lane L = in[L] lane d. Pairs, then quads within
// 128-bit lanes, then the lanes.
inline void Transpose16(const __m512* r, __m512* out) {
  __m512 t2[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t2[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t2[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_shuffle_ps(t2[4 * i], t2[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t2[4 * i], t2[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t2[4 * i + 1], t2[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t2[4 * i + 1], t2[4 * i + 3], 0xEE);
  }
  // u[4i + m] lane L: element 4L + m of rows 4i .. 4i + 3.
  for (int m = 0; m < 4; ++m) {
    const __m512 a = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
    const __m512 b = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
    const __m512 e = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
    const __m512 f = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
    out[m] = _mm512_shuffle_f32x4(a, e, 0x88);
    out[4 + m] = _mm512_shuffle_f32x4(b, f, 0x88);
    out[8 + m] = _mm512_shuffle_f32x4(a, e, 0xDD);
    out[12 + m] = _mm512_shuffle_f32x4(b, f, 0xDD);
  }
}

// 16 f32 lanes; the same interface as avx2::Vec.
struct Vec {
  using V = __m512;
  static constexpr int64_t kWidth = avx512::kWidth;
  static V Zero() { return _mm512_setzero_ps(); }
  static V Set1(float x) { return _mm512_set1_ps(x); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static V LoadPart(const float* p, int64_t left) { return avx512::LoadPart(p, left); }
  static V LoadPartOr(const float* p, int64_t left, V fill) {
    if (left >= kWidth) return _mm512_loadu_ps(p);
    return _mm512_mask_loadu_ps(fill, TailMask(left <= 0 ? 0 : left), p);
  }
  static void StorePart(float* p, V v, int64_t left) { avx512::StorePart(p, v, left); }
  static V ZeroPast(V v, int64_t left) {
    return left >= kWidth ? v : _mm512_maskz_mov_ps(TailMask(left <= 0 ? 0 : left), v);
  }
  static V LoadF16Part(const uint16_t* p, int64_t left) { return avx512::LoadF16Part(p, left); }
  static V LoadBf16Part(const uint16_t* p, int64_t left) { return avx512::LoadBf16Part(p, left); }
  static V LoadI8Part(const int8_t* p, int64_t left) { return avx512::LoadI8Part(p, left); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm512_div_ps(a, b); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static V Fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }
  static float ReduceAdd(V v) { return avx512::ReduceAdd(v); }
  static float ReduceMax(V v) { return avx512::ReduceMax(v); }
  static V Exp(V x) { return avx512::Exp(x); }
  static float First(V v) { return _mm512_cvtss_f32(v); }
  static V ReduceAddEach(const V* v) { return ReduceAdd16(v); }
  // cols[d] lane t = rows[t] lane d (16 x 16).
  static void Transpose(const V* rows, V* cols) { Transpose16(rows, cols); }
  // Up to 8 query chunks (head_dim <= 128) stay in registers beside the 16 partial sums.
  static constexpr int kMaxQChunks = 8;
};

}  // namespace tinyserve::kernels::cpu::avx512
