// The AVX-512 VNNI dot instructions on accumulators of GCC's own 32-bit-lane vector type.
// GCC 12 keeps __m512i values (eight 64-bit lanes) that pass through _mm512_dpbusd_epi32 /
// _mm512_dpwssd_epi32 (built on 32-bit lanes) as two kinds of register values: with a dozen or
// more accumulators live across a loop it copied every one of them each iteration and spilled
// those past 16 registers (a reduced copy of attention_avx512.cc's value loop: 50 register
// copies for 16 dots).
// Accumulating in I32x16 through the builtins compiles to the dots alone. (The matmul kernel,
// with eight copies per 128 dots, measured no faster this way and keeps the intrinsics.) Include
// only from files compiled for AVX-512 VNNI (*_avx512.cc).
#pragma once

#include <immintrin.h>

namespace tinyserve::kernels::cpu {

using I32x16 = int __attribute__((vector_size(64)));

// acc + the sums of four u8 x s8 products per 32-bit lane (vpdpbusd).
inline I32x16 DotBytes(I32x16 acc, I32x16 u8, I32x16 s8) {
#if defined(__clang__)
  return __builtin_ia32_vpdpbusd512(acc, u8, s8);
#else
  return __builtin_ia32_vpdpbusd_v16si(acc, u8, s8);
#endif
}

// acc + the sums of two s16 x s16 products per 32-bit lane (vpdpwssd).
inline I32x16 DotWords(I32x16 acc, I32x16 a, I32x16 b) {
#if defined(__clang__)
  return __builtin_ia32_vpdpwssd512(acc, a, b);
#else
  return __builtin_ia32_vpdpwssd_v16si(acc, a, b);
#endif
}

inline I32x16 AsI32x16(__m512i v) { return reinterpret_cast<I32x16>(v); }
inline __m512i AsM512i(I32x16 v) { return reinterpret_cast<__m512i>(v); }

}  // namespace tinyserve::kernels::cpu
