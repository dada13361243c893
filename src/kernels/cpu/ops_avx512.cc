// AVX-512 versions of the row-wise operators (16 floats per vector, masked tails only).
// GCC 12's AVX-512 intrinsics (max/min/extract/unpack) read a deliberately undefined register
// and trip -Wmaybe-uninitialized / -Wuninitialized when inlined: known false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx512.h"

namespace tinyserve::kernels::cpu::avx512 {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 4 * kWidth <= dim; i += 4 * kWidth) {
      for (int u = 0; u < 4; ++u) {
        const __m512 v = _mm512_loadu_ps(xr + i + u * kWidth);
        acc[u] = _mm512_fmadd_ps(v, v, acc[u]);
      }
    }
    for (; i < dim; i += kWidth) {
      const __m512 v = LoadPart(xr + i, dim - i);
      acc[0] = _mm512_fmadd_ps(v, v, acc[0]);
    }
    const float sum_sq =
        ReduceAdd(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    const __m512 inv =
        _mm512_set1_ps(1.0f / __builtin_sqrtf(sum_sq / static_cast<float>(dim) + eps));
    for (i = 0; i < dim; i += kWidth) {
      const __m512 v = _mm512_mul_ps(LoadPart(xr + i, dim - i), inv);
      StorePart(o + i, _mm512_mul_ps(v, LoadPart(weight + i, dim - i)), dim - i);
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
        const int64_t left = half - i;
        const __m512 a = LoadPart(xh + i, left);
        const __m512 b = LoadPart(xh + half + i, left);
        const __m512 cv = LoadPart(c + i, left);
        const __m512 sv = LoadPart(s + i, left);
        StorePart(xh + i, _mm512_fmsub_ps(a, cv, _mm512_mul_ps(b, sv)), left);
        StorePart(xh + half + i, _mm512_fmadd_ps(b, cv, _mm512_mul_ps(a, sv)), left);
      }
    }
  }
}

void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    float* o = out + r * dim;
    for (int64_t i = 0; i < dim; i += kWidth) {
      const __m512 gv = LoadPart(g + i, dim - i);
      const __m512 uv = LoadPart(g + dim + i, dim - i);
      const __m512 denom = _mm512_add_ps(one, Exp(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
      StorePart(o + i, _mm512_mul_ps(_mm512_div_ps(gv, denom), uv), dim - i);
    }
  }
}

void Softmax(float* x, int64_t num_rows, int64_t dim) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int64_t r = 0; r < num_rows; ++r) {
    float* xr = x + r * dim;
    __m512 mx = neg_inf;
    for (int64_t i = 0; i < dim; i += kWidth) {
      const __m512 v = dim - i >= kWidth ? _mm512_loadu_ps(xr + i)
                                         : _mm512_mask_loadu_ps(neg_inf, TailMask(dim - i), xr + i);
      mx = _mm512_max_ps(mx, v);
    }
    const __m512 max_v = _mm512_set1_ps(ReduceMax(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < dim; i += kWidth) {
      __m512 e = Exp(_mm512_sub_ps(LoadPart(xr + i, dim - i), max_v));
      if (dim - i < kWidth) e = _mm512_maskz_mov_ps(TailMask(dim - i), e);
      sum = _mm512_add_ps(sum, e);
      StorePart(xr + i, e, dim - i);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / ReduceAdd(sum));
    for (int64_t i = 0; i < dim; i += kWidth) {
      StorePart(xr + i, _mm512_mul_ps(LoadPart(xr + i, dim - i), inv), dim - i);
    }
  }
}

void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) AddInPlace(out + r * dim, bias, dim);
}

void AddInPlace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += kWidth) {
    StorePart(out + i, _mm512_add_ps(LoadPart(out + i, n - i), LoadPart(x + i, n - i)), n - i);
  }
}

void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  const auto* f = static_cast<const float*>(src);
  int64_t i = 0;
  // Whole vectors with plain loads and stores: masked ones are much slower on some cores
  // (Zen 4), and a masked store also delays the loads that read it back.
  if (dtype == DType::kF16) {
    for (; i + kWidth <= n; i += kWidth)
      _mm512_storeu_ps(
          dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  } else if (dtype == DType::kBF16) {
    for (; i + kWidth <= n; i += kWidth) {
      const __m512i wide =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
  } else {
    for (; i + kWidth <= n; i += kWidth) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(f + i));
  }
  for (; i < n; i += kWidth) {
    const __mmask16 m = TailMask(n - i < kWidth ? n - i : kWidth);
    __m512 v;
    if (dtype == DType::kF16) {
      v = LoadF16(h + i, m);
    } else if (dtype == DType::kBF16) {
      v = LoadBf16(h + i, m);
    } else {
      v = _mm512_maskz_loadu_ps(m, f + i);
    }
    _mm512_mask_storeu_ps(dst + i, m, v);
  }
}

}  // namespace tinyserve::kernels::cpu::avx512
