// AVX2 AttendBlock: one online-softmax step over a block of f32 keys/values.
#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"

namespace tinyserve::kernels::cpu::avx2 {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 2 * kWidth <= n; d += 2 * kWidth) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + kWidth), _mm256_loadu_ps(b + d + kWidth), acc1);
  }
  for (; d < n; d += kWidth) {
    acc0 = _mm256_fmadd_ps(LoadTail(a + d, n - d), LoadTail(b + d, n - d), acc0);
  }
  return HorizontalSum(_mm256_add_ps(acc0, acc1));
}

}  // namespace

void AttendBlock(const AttendBlockArgs& a) {
  const int64_t hd = a.head_dim;
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) continue;
    const float* qi = a.q + i * hd;
    for (int32_t t = 0; t < nv; ++t) a.scores[t] = Dot(qi, a.k + t * hd, hd) * a.scale;

    __m256 mx = neg_inf;
    for (int32_t t = 0; t < nv; t += kWidth) {
      const __m256 live = _mm256_castsi256_ps(TailMask(nv - t));
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(neg_inf, LoadTail(a.scores + t, nv - t), live));
    }
    const float block_max = HorizontalMax(mx);
    const float old_max = a.max[i];
    const float new_max = old_max > block_max ? old_max : block_max;
    const float correction = old_max == -__builtin_inff()
                                 ? 0.0f
                                 : _mm256_cvtss_f32(Exp(_mm256_set1_ps(old_max - new_max)));
    const __m256 max_v = _mm256_set1_ps(new_max);
    __m256 psum = _mm256_setzero_ps();
    for (int32_t t = 0; t < nv; t += kWidth) {
      const __m256 live = _mm256_castsi256_ps(TailMask(nv - t));
      const __m256 p =
          _mm256_and_ps(live, Exp(_mm256_sub_ps(LoadTail(a.scores + t, nv - t), max_v)));
      psum = _mm256_add_ps(psum, p);
      StoreTail(a.scores + t, p, nv - t);
    }
    a.sum[i] = a.sum[i] * correction + HorizontalSum(psum);
    a.max[i] = new_max;

    float* acc = a.acc + i * hd;
    const __m256 corr_v = _mm256_set1_ps(correction);
    for (int64_t d = 0; d < hd; d += kWidth) {
      __m256 x = _mm256_mul_ps(LoadTail(acc + d, hd - d), corr_v);
      for (int32_t t = 0; t < nv; ++t) {
        x = _mm256_fmadd_ps(_mm256_set1_ps(a.scores[t]), LoadTail(a.v + t * hd + d, hd - d), x);
      }
      StoreTail(acc + d, x, hd - d);
    }
  }
}

}  // namespace tinyserve::kernels::cpu::avx2
