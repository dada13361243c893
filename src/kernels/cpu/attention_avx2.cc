// AVX2 AttendBlock: one online-softmax step over a block of f32 keys/values.
#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"

namespace tinyserve::kernels::cpu::avx2 {
namespace {

// Adds the lanes of each of 8 vectors: result lane t = sum of v[t]'s 8 lanes, by a
// transpose-add tree that treats every v[t] the same whatever t is.
__m256 ReduceAdd8(const __m256 v[8]) {
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

// scores[t] = dot(q, k[t]) * scale for t < n, 8 keys at a time. Slots past n reuse key n - 1
// and are never stored.
void Scores(const float* q, const float* k, int32_t n, int64_t hd, float scale, float* scores) {
  const __m256 scale_v = _mm256_set1_ps(scale);
  for (int32_t t0 = 0; t0 < n; t0 += kWidth) {
    __m256 partial[8];
    for (int32_t t = 0; t < 8; ++t) {
      const int32_t row = t0 + t < n ? t0 + t : n - 1;
      const float* kt = k + row * hd;
      __m256 sum = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd; d += kWidth) {
        sum = _mm256_fmadd_ps(LoadTail(q + d, hd - d), LoadTail(kt + d, hd - d), sum);
      }
      partial[t] = sum;
    }
    StoreTail(scores + t0, _mm256_mul_ps(ReduceAdd8(partial), scale_v), n - t0);
  }
}

// acc[0, hd) = acc * correction + sum_t p[t] * v[t], four 8-lane column chunks at a time
// (independent FMA chains; each lane still adds the tokens in order).
void UpdateAcc(float* acc, const float* p, const float* v, int32_t nv, int64_t hd,
               float correction) {
  const __m256 corr_v = _mm256_set1_ps(correction);
  for (int64_t d0 = 0; d0 < hd; d0 += 4 * kWidth) {
    __m256 x[4];
    for (int u = 0; u < 4; ++u) {
      x[u] = _mm256_mul_ps(LoadTail(acc + d0 + u * kWidth, hd - d0 - u * kWidth), corr_v);
    }
    for (int32_t t = 0; t < nv; ++t) {
      const __m256 pt = _mm256_set1_ps(p[t]);
      const float* vt = v + t * hd + d0;
      for (int u = 0; u < 4; ++u) {
        x[u] = _mm256_fmadd_ps(pt, LoadTail(vt + u * kWidth, hd - d0 - u * kWidth), x[u]);
      }
    }
    for (int u = 0; u < 4; ++u) StoreTail(acc + d0 + u * kWidth, x[u], hd - d0 - u * kWidth);
  }
}

}  // namespace

void AttendBlock(const AttendBlockArgs& a) {
  const int64_t hd = a.head_dim;
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) continue;
    const float* qi = a.q + i * hd;
    Scores(qi, a.k, nv, hd, a.scale, a.scores);

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

    UpdateAcc(a.acc + i * hd, a.scores, a.v, nv, hd, correction);
  }
}

}  // namespace tinyserve::kernels::cpu::avx2
