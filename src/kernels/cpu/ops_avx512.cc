// The row-wise operators of ops_simd.h compiled for avx512 (16 floats per vector, masked tails).
// GCC 12's AVX-512 intrinsics (max/min/extract/unpack) read a deliberately undefined register
// and trip -Wmaybe-uninitialized / -Wuninitialized when inlined: known false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/simd_avx512.h"

namespace tinyserve::kernels::cpu::avx512 {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  simd::RmsNorm<Vec>(x, weight, num_rows, dim, eps, out);
}
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  simd::RopeNeox<Vec>(x, cos_sin, num_tokens, num_heads, head_dim);
}
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  simd::SiluMul<Vec>(gate_up, num_rows, dim, out);
}
float SoftmaxWeights(float* x, int64_t n) { return simd::SoftmaxWeights<Vec>(x, n); }
float LogSumExp(const float* x, int64_t n) { return simd::LogSumExp<Vec>(x, n); }
int64_t FirstIndexPassing(const float* w, int64_t n, double target) {
  return simd::FirstIndexPassing<Vec>(w, n, target);
}
int64_t Argmax(const float* x, int64_t n) { return simd::Argmax<Vec>(x, n); }
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  simd::AddBias<Vec>(out, bias, num_rows, dim);
}
void AddInPlace(float* out, const float* x, int64_t n) { simd::AddInPlace<Vec>(out, x, n); }
void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  simd::ToF32<Vec>(dtype, src, dst, n);
}

// 16 elements at a time, the same bits as convert.h's scalar functions. f16: vcvtps2ph rounds to
// nearest even with IEEE overflow and subnormals, as F32ToFp16; a NaN becomes F32ToFp16's quiet
// NaN with the sign kept (the instruction would keep the payload's top bits instead). bf16:
// F32ToBf16's integer rounding in 32-bit lanes (vcvtneps2bf16 would flush subnormal inputs to
// zero). Run for every K and V row stored into an f16 / bf16 cache (RopeStoreKv).
void FromF32(DType dtype, const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  const __m512i sign_bit = _mm512_set1_epi32(0x8000);
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m512 v = LoadPart(src + i, n - i);
    const __m512i u = _mm512_castps_si512(v);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512i high = _mm512_srli_epi32(u, 16);
    __m256i out;
    if (dtype == DType::kF16) {
      const __m256i quiet = _mm512_cvtepi32_epi16(
          _mm512_or_si512(_mm512_and_si512(high, sign_bit), _mm512_set1_epi32(0x7e00)));
      out = _mm256_mask_mov_epi16(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                  nan, quiet);
    } else {
      const __m512i odd = _mm512_and_si512(high, _mm512_set1_epi32(1));
      const __m512i rounded = _mm512_srli_epi32(
          _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);
      out =
          _mm512_cvtepi32_epi16(_mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40)));
    }
    if (n - i >= kWidth) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), out);
    } else {
      _mm256_mask_storeu_epi16(h + i, TailMask(n - i), out);
    }
  }
}

}  // namespace tinyserve::kernels::cpu::avx512
