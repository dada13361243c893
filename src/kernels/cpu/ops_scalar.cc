// Portable versions of the per-ISA building blocks (f32 arithmetic, like the SIMD ones), used
// on CPUs without AVX2.
#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/cpu/cpu_kernels.h"

namespace tinyserve::kernels::cpu::scalar {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;
    float sum_sq = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(sum_sq / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = xr[i] * inv * weight[i];
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
      for (int64_t i = 0; i < half; ++i) {
        const float a = xh[i], b = xh[i + half];
        xh[i] = a * c[i] - b * s[i];
        xh[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    for (int64_t i = 0; i < dim; ++i)
      out[r * dim + i] = g[i] / (1.0f + std::exp(-g[i])) * g[dim + i];
  }
}

float SoftmaxWeights(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  return sum;
}

// In double with libm's exp: the reference the SIMD versions are tested against.
float LogSumExp(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, x[i]);
  if (mx == -INFINITY) return mx;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i] - mx));
  return mx + static_cast<float>(std::log(sum));
}

// One by one (the SIMD paths sum blocks first; the index is the same but for rounding).
int64_t FirstIndexPassing(const float* w, int64_t n, double target) {
  double cum = 0;
  for (int64_t i = 0; i < n; ++i) {
    cum += w[i];
    if (target < cum) return i;
  }
  return -1;
}

int64_t Argmax(const float* x, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) continue;
    if (best < 0 || x[i] > x[best]) best = i;
  }
  return best < 0 ? 0 : best;
}

void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] += bias[i];
  }
}

void AddInPlace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += x[i];
}

void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (dtype) {
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToF32(h[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(h[i]);
      return;
    default:
      std::memcpy(dst, src, n * sizeof(float));
  }
}

void FromF32(DType dtype, const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  if (dtype == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) h[i] = F32ToFp16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = F32ToBf16(src[i]);
  }
}

}  // namespace tinyserve::kernels::cpu::scalar
