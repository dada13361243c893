// Internal AVX2 helpers (exp, 16-bit float loads, tail masks) shared by the *_avx2.cc files, and
// Vec, the AVX2 side of the vector interface the SIMD kernel templates (ops_simd.h,
// attention_simd.h) are written against (simd_avx512.h has the same one). Include only from files
// compiled with the AVX2 flags; everything here lives in namespace avx2 so no AVX2 code can be
// linked into the scalar path (a template instantiated on avx2::Vec has its own mangled name).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace tinyserve::kernels::cpu::avx2 {

inline constexpr int64_t kWidth = 8;

// Lane mask for _mm256_maskload/maskstore_ps: lanes [0, n) set, n in [0, 8].
inline __m256i TailMask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 LoadTail(const float* p, int64_t n) {
  return n >= kWidth ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, TailMask(n));
}
inline void StoreTail(float* p, __m256 v, int64_t n) {
  if (n >= kWidth) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, TailMask(n), v);
  }
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float HorizontalMax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) with ~2 ulp error (Cephes polynomial on x - n ln2, exponent built from n). Inputs
// below -87.3 give 0; inputs are capped at 88.37 (result ~2.7e38, never inf).
inline __m256 Exp(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.37626f)), lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// Loads n f16 / bf16 values as f32 (n may exceed 8 or be <= 0); lanes past n are 0.
inline __m128i Load16Bit(const uint16_t* p, int64_t n) {
  if (n >= kWidth) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  uint16_t buf[8] = {};
  if (n > 0) std::memcpy(buf, p, n * sizeof(uint16_t));
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf));
}
inline __m256 LoadF16(const uint16_t* p, int64_t n) { return _mm256_cvtph_ps(Load16Bit(p, n)); }
inline __m256 LoadBf16(const uint16_t* p, int64_t n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(Load16Bit(p, n)), 16));
}

// Adds the lanes of each of 8 vectors: result lane t = sum of v[t]'s 8 lanes, by a
// transpose-add tree that treats every v[t] the same whatever t is.
inline __m256 ReduceAdd8(const __m256 v[8]) {
  __m256 l1[4];
  for (int i = 0; i < 4; ++i) {
    l1[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                          _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m256 l2[2];
  for (int i = 0; i < 2; ++i) {
    const __m256d a = _mm256_castps_pd(l1[2 * i]);
    const __m256d b = _mm256_castps_pd(l1[2 * i + 1]);
    l2[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                          _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
  }
  return _mm256_add_ps(_mm256_permute2f128_ps(l2[0], l2[1], 0x20),
                       _mm256_permute2f128_ps(l2[0], l2[1], 0x31));
}

// 8 x 8 transpose of 32-bit lanes: out[d] lane t = in[t] lane d.
inline void Transpose8(const __m256* in, __m256* out) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(in[2 * i], in[2 * i + 1]);
  }
  // u[4h + m] lane 4p + r (p: 128-bit half): element 4p + m of row 4h + r.
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    out[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    out[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

// out[d] lane t = rows[t][d] * scales[t] for d, t < 8: eight int8 rows of 8 values transposed as
// bytes (three rounds of unpacks on 16-byte registers), then converted and scaled one dimension at
// a time. The same floats as converting each row (LoadI8) times its scale and transposing the f32
// lanes (Transpose8), in about two thirds of the instructions and none that cross 128-bit lanes:
// int8 decode attention 1-3% faster (bench_ops --threads 1 --decode, Zen 3, 1 x 8,192 0.805-0.818
// -> 0.789-0.803 ms, 64 x 576 3.91-3.95 -> 3.84-3.88 ms, alternating).
inline void TransposeI8(const int8_t* const* rows, const float* scales, __m256* out) {
  __m128i r[8], a[4], b[4], c[4];
  for (int t = 0; t < 8; ++t) r[t] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[t]));
  for (int i = 0; i < 4; ++i) a[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);  // keys 2i, 2i+1
  for (int h = 0; h < 2; ++h) {  // keys 4h .. 4h + 3: dimensions 0-3, then 4-7
    b[2 * h] = _mm_unpacklo_epi16(a[2 * h], a[2 * h + 1]);
    b[2 * h + 1] = _mm_unpackhi_epi16(a[2 * h], a[2 * h + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // c[i]: dimensions 2i and 2i + 1, keys 0-7 each
    c[2 * h] = _mm_unpacklo_epi32(b[h], b[2 + h]);
    c[2 * h + 1] = _mm_unpackhi_epi32(b[h], b[2 + h]);
  }
  const __m256 s = _mm256_loadu_ps(scales);
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c[i])), s);
    out[2 * i + 1] =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(c[i], c[i]))), s);
  }
}

// Loads n int8 values as f32 (exact; n may exceed 8 or be <= 0); lanes past n are 0. A whole
// row chunk is one 8-byte load: copied into a zeroed local first (the tail's way), every chunk
// was a store and a wider reload from the stack, which the CPU cannot forward (on Zen 3 the int8
// cache's decode attention ran ~25% slower than the f16 cache's).
inline __m256 LoadI8(const int8_t* p, int64_t n) {
  if (n >= kWidth)
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  int64_t bits = 0;
  if (n > 0) std::memcpy(&bits, p, n * sizeof(int8_t));
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
}

// 8 f32 lanes. Every operation is one IEEE operation per lane (Fmadd rounds once), so a kernel
// written against Vec computes each lane the same way at either width.
struct Vec {
  using V = __m256;
  static constexpr int64_t kWidth = avx2::kWidth;
  static V Zero() { return _mm256_setzero_ps(); }
  static V Set1(float x) { return _mm256_set1_ps(x); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  // Lanes [0, left) of p (left may exceed the width or be <= 0); other lanes are 0.
  static V LoadPart(const float* p, int64_t left) { return LoadTail(p, left); }
  // The same with the other lanes set to fill.
  static V LoadPartOr(const float* p, int64_t left, V fill) {
    return _mm256_blendv_ps(fill, LoadTail(p, left), _mm256_castsi256_ps(TailMask(left)));
  }
  static void StorePart(float* p, V v, int64_t left) { StoreTail(p, v, left); }
  // v with lanes [left, width) set to 0.
  static V ZeroPast(V v, int64_t left) {
    return _mm256_and_ps(_mm256_castsi256_ps(TailMask(left)), v);
  }
  static V LoadF16Part(const uint16_t* p, int64_t left) { return LoadF16(p, left); }
  static V LoadBf16Part(const uint16_t* p, int64_t left) { return LoadBf16(p, left); }
  static V LoadI8Part(const int8_t* p, int64_t left) { return LoadI8(p, left); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm256_div_ps(a, b); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static V Fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }  // a * b + c
  static V Fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }  // a * b - c
  static float ReduceAdd(V v) { return HorizontalSum(v); }
  static float ReduceMax(V v) { return HorizontalMax(v); }
  static V Exp(V x) { return avx2::Exp(x); }
  static float First(V v) { return _mm256_cvtss_f32(v); }
  // Lane t = the sum of v[t]'s lanes (v has kWidth vectors).
  static V ReduceAddEach(const V* v) { return ReduceAdd8(v); }
  // cols[d] lane t = rows[t] lane d (8 x 8: pairs, then quads, then the 128-bit halves).
  static void Transpose(const V* rows, V* cols) { Transpose8(rows, cols); }
  // cols[d] lane t = rows[t][d] * scales[t] (8 x 8 int8 values; AVX2's grouped attention path
  // only, which AVX-512 does not take).
  static void TransposeI8(const int8_t* const* rows, const float* scales, V* cols) {
    avx2::TransposeI8(rows, scales, cols);
  }
  // Chunks of a query attention may keep in registers while it sums kWidth keys at once: none,
  // since the 8 partial sums and their loads already fill most of the 16 ymm registers.
  static constexpr int kMaxQChunks = 0;
};

}  // namespace tinyserve::kernels::cpu::avx2
