#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/ref/ref.h"

namespace tinyserve::kernels::ref {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;
    double sum_sq = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += double{xr[i]} * xr[i];
    const double inv = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i)
      out[r * dim + i] = static_cast<float>(xr[i] * inv * weight[i]);
  }
}

void RopeCosSin(const int32_t* positions, int64_t num_tokens, int64_t head_dim, float theta,
                float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq =
          std::pow(double{theta}, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
      const double angle = positions[t] * inv_freq;
      cos_sin[t * head_dim + i] = static_cast<float>(std::cos(angle));
      cos_sin[t * head_dim + half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* cs = cos_sin + t * head_dim;
    for (int64_t h = 0; h < num_heads; ++h) {
      float* xh = x + (t * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double a = xh[i], b = xh[i + half], c = cs[i], s = cs[half + i];
        xh[i] = static_cast<float>(a * c - b * s);
        xh[i + half] = static_cast<float>(b * c + a * s);
      }
    }
  }
}

void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    for (int64_t i = 0; i < dim; ++i) {
      const double gi = g[i];
      out[r * dim + i] = static_cast<float>(gi / (1.0 + std::exp(-gi)) * g[dim + i]);
    }
  }
}

void Softmax(float* x, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) {
    float* xr = x + r * dim;
    float mx = -INFINITY;
    for (int64_t i = 0; i < dim; ++i) mx = std::fmax(mx, xr[i]);
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += std::exp(double{xr[i]} - mx);
    for (int64_t i = 0; i < dim; ++i)
      xr[i] = static_cast<float>(std::exp(double{xr[i]} - mx) / sum);
  }
}

void EmbeddingLookup(const TensorView& table, const int32_t* ids, int64_t num_ids, float* out) {
  const int64_t dim = table.RowLength();
  for (int64_t i = 0; i < num_ids; ++i) {
    const int64_t base = int64_t{ids[i]} * dim;
    for (int64_t j = 0; j < dim; ++j) {
      out[i * dim + j] = LoadCacheElement(table.dtype, table.data, base + j);
    }
  }
}

void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] += bias[i];
  }
}

void AddInPlace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += x[i];
}

}  // namespace tinyserve::kernels::ref
