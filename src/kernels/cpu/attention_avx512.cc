// AVX-512 AttendBlock: one online-softmax step over a block of f32 keys/values.
// GCC 12's AVX-512 intrinsics (max/min/extract) read a deliberately undefined register and trip
// -Wmaybe-uninitialized when inlined; the warning is a known false positive of those headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx512.h"

namespace tinyserve::kernels::cpu::avx512 {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps();
  __m512 acc1 = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + 2 * kWidth <= n; d += 2 * kWidth) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), _mm512_loadu_ps(b + d), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + kWidth), _mm512_loadu_ps(b + d + kWidth), acc1);
  }
  for (; d < n; d += kWidth) {
    const __mmask16 m = TailMask(n - d < kWidth ? n - d : kWidth);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + d), _mm512_maskz_loadu_ps(m, b + d), acc0);
  }
  return ReduceAdd(_mm512_add_ps(acc0, acc1));
}

}  // namespace

void AttendBlock(const AttendBlockArgs& a) {
  const int64_t hd = a.head_dim;
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) continue;
    const float* qi = a.q + i * hd;
    for (int32_t t = 0; t < nv; ++t) a.scores[t] = Dot(qi, a.k + t * hd, hd) * a.scale;

    __m512 mx = neg_inf;
    for (int32_t t = 0; t < nv; t += kWidth) {
      const __mmask16 m = TailMask(nv - t < kWidth ? nv - t : kWidth);
      mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(neg_inf, m, a.scores + t));
    }
    const float block_max = ReduceMax(mx);
    const float old_max = a.max[i];
    const float new_max = old_max > block_max ? old_max : block_max;
    const float correction =
        old_max == -__builtin_inff()
            ? 0.0f
            : _mm512_cvtss_f32(Exp(_mm512_set1_ps(old_max - new_max)));
    const __m512 max_v = _mm512_set1_ps(new_max);
    __m512 psum = _mm512_setzero_ps();
    for (int32_t t = 0; t < nv; t += kWidth) {
      const __mmask16 m = TailMask(nv - t < kWidth ? nv - t : kWidth);
      const __m512 p =
          _mm512_maskz_mov_ps(m, Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a.scores + t), max_v)));
      psum = _mm512_add_ps(psum, p);
      _mm512_mask_storeu_ps(a.scores + t, m, p);
    }
    a.sum[i] = a.sum[i] * correction + ReduceAdd(psum);
    a.max[i] = new_max;

    float* acc = a.acc + i * hd;
    const __m512 corr_v = _mm512_set1_ps(correction);
    for (int64_t d = 0; d < hd; d += kWidth) {
      const __mmask16 m = TailMask(hd - d < kWidth ? hd - d : kWidth);
      __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + d), corr_v);
      for (int32_t t = 0; t < nv; ++t) {
        x = _mm512_fmadd_ps(_mm512_set1_ps(a.scores[t]), _mm512_maskz_loadu_ps(m, a.v + t * hd + d), x);
      }
      _mm512_mask_storeu_ps(acc + d, m, x);
    }
  }
}

}  // namespace tinyserve::kernels::cpu::avx512
