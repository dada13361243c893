// AVX2 loops of roofline.cc (used when AVX-512 VNNI is absent): int8 dot products as
// maddubs + madd + add, the sequence AVX2 int8 kernels use.
#include <immintrin.h>

#include "roofline.h"

namespace tinyserve::bench::internal {

uint64_t ReadSliceAvx2(const uint8_t* p, uint64_t bytes, uint64_t* sink) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (uint64_t i = 0; i + 128 <= bytes; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  alignas(32) uint64_t v[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), a0);
  *sink += v[0] + v[1] + v[2] + v[3];
  return bytes / 128 * 128;
}

uint64_t FmaLoopAvx2(int64_t iters, float* sink) {
  constexpr int kChains = 10;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float v[8];
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_store_ps(v, s);
  for (float f : v) *sink += f;
  return static_cast<uint64_t>(iters) * kChains * 8 * 2;
}

uint64_t DotLoopAvx2(int64_t iters, int32_t* sink) {
  constexpr int kChains = 8;
  __m256i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_epi32(i);
  __m256i a = _mm256_set1_epi8(3);
  const __m256i b = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) {
      // An operand opaque to the compiler for each product (no instruction): with constant
      // operands it hoisted maddubs and madd out of the loop, and this measured vpaddd alone.
      __asm__("" : "+x"(a));
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
    }
  }
  alignas(32) uint32_t v[8];
  __m256i s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_epi32(s, acc[i]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  uint32_t total = 0;  // the lanes have wrapped: summed as unsigned, where wrapping is defined
  for (uint32_t x : v) total += x;
  *sink = static_cast<int32_t>(total);
  return static_cast<uint64_t>(iters) * kChains * 32 * 2;
}

}  // namespace tinyserve::bench::internal
