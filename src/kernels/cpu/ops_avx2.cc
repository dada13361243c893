// AVX2 versions of the row-wise operators (8 floats per vector, masked tails).
#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"

namespace tinyserve::kernels::cpu::avx2 {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 4 * kWidth <= dim; i += 4 * kWidth) {
      for (int u = 0; u < 4; ++u) {
        const __m256 v = _mm256_loadu_ps(xr + i + u * kWidth);
        acc[u] = _mm256_fmadd_ps(v, v, acc[u]);
      }
    }
    for (; i < dim; i += kWidth) {
      const __m256 v = LoadTail(xr + i, dim - i);
      acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
    }
    const float sum_sq =
        HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    const __m256 inv =
        _mm256_set1_ps(1.0f / __builtin_sqrtf(sum_sq / static_cast<float>(dim) + eps));
    for (i = 0; i < dim; i += kWidth) {
      const __m256 v = _mm256_mul_ps(LoadTail(xr + i, dim - i), inv);
      StoreTail(o + i, _mm256_mul_ps(v, LoadTail(weight + i, dim - i)), dim - i);
    }
  }
}

void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = cos_sin + t * head_dim;
    const float* s = c + half;
    for (int64_t h = 0; h < num_heads; ++h) {
      float* xh = x + (t * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; i += kWidth) {
        const int64_t n = half - i;
        const __m256 a = LoadTail(xh + i, n);
        const __m256 b = LoadTail(xh + half + i, n);
        const __m256 cv = LoadTail(c + i, n);
        const __m256 sv = LoadTail(s + i, n);
        StoreTail(xh + i, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sv)), n);
        StoreTail(xh + half + i, _mm256_fmadd_ps(b, cv, _mm256_mul_ps(a, sv)), n);
      }
    }
  }
}

void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    float* o = out + r * dim;
    for (int64_t i = 0; i < dim; i += kWidth) {
      const __m256 gv = LoadTail(g + i, dim - i);
      const __m256 uv = LoadTail(g + dim + i, dim - i);
      const __m256 denom = _mm256_add_ps(one, Exp(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
      StoreTail(o + i, _mm256_mul_ps(_mm256_div_ps(gv, denom), uv), dim - i);
    }
  }
}

void Softmax(float* x, int64_t num_rows, int64_t dim) {
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  for (int64_t r = 0; r < num_rows; ++r) {
    float* xr = x + r * dim;
    __m256 mx = neg_inf;
    for (int64_t i = 0; i < dim; i += kWidth) {
      const __m256 live = _mm256_castsi256_ps(TailMask(dim - i));
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(neg_inf, LoadTail(xr + i, dim - i), live));
    }
    const __m256 max_v = _mm256_set1_ps(HorizontalMax(mx));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < dim; i += kWidth) {
      const __m256 live = _mm256_castsi256_ps(TailMask(dim - i));
      const __m256 e = _mm256_and_ps(live, Exp(_mm256_sub_ps(LoadTail(xr + i, dim - i), max_v)));
      sum = _mm256_add_ps(sum, e);
      StoreTail(xr + i, e, dim - i);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / HorizontalSum(sum));
    for (int64_t i = 0; i < dim; i += kWidth) {
      StoreTail(xr + i, _mm256_mul_ps(LoadTail(xr + i, dim - i), inv), dim - i);
    }
  }
}

void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) AddInPlace(out + r * dim, bias, dim);
}

void AddInPlace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += kWidth) {
    StoreTail(out + i, _mm256_add_ps(LoadTail(out + i, n - i), LoadTail(x + i, n - i)), n - i);
  }
}

void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  const auto* f = static_cast<const float*>(src);
  for (int64_t i = 0; i < n; i += kWidth) {
    __m256 v;
    if (dtype == DType::kF16) {
      v = LoadF16(h + i, n - i);
    } else if (dtype == DType::kBF16) {
      v = LoadBf16(h + i, n - i);
    } else {
      v = LoadTail(f + i, n - i);
    }
    StoreTail(dst + i, v, n - i);
  }
}

}  // namespace tinyserve::kernels::cpu::avx2
