// The scalar AttendBlock (cpu_kernels.h): one query at a time, every sum in key and dimension
// order; the path of CPUs without AVX2.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kv_quant.h"
#include "kernels/prefetch.h"

namespace tinyserve::kernels::cpu::scalar {

void AttendBlock(const AttendBlockArgs& a) {
  PrefetchRunsToL2(a.prefetch, a.num_prefetch_runs);
  const int64_t hd = a.head_dim;
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = std::min(a.num_valid[i], a.n);
    if (nv <= 0) continue;
    const float* qi = a.q + i * hd;
    float block_max = -INFINITY;
    for (int32_t t = 0; t < nv; ++t) {
      const float* kt = a.k + t * hd;
      float dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kt[d];
      a.scores[t] = dot * a.scale;
      block_max = std::fmax(block_max, a.scores[t]);
    }
    const float new_max = std::fmax(a.max[i], block_max);
    const float correction = a.max[i] == -INFINITY ? 0.0f : std::exp(a.max[i] - new_max);
    float block_sum = 0;
    for (int32_t t = 0; t < nv; ++t) {
      a.scores[t] = std::exp(a.scores[t] - new_max);
      block_sum += a.scores[t];
    }
    a.sum[i] = a.sum[i] * correction + block_sum;
    a.max[i] = new_max;
    float* acc = a.acc + i * hd;
    for (int64_t d = 0; d < hd; ++d) {
      float x = acc[d] * correction;
      for (int32_t t = 0; t < nv; ++t) x += a.scores[t] * a.v[t * hd + d];
      acc[d] = x;
    }
  }
}

float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  return QuantizeQueryRow(x, n, q, sum);
}

uint16_t QuantizeKv(const float* x, int64_t n, int8_t* q) { return QuantizeKvRow(x, n, q); }

}  // namespace tinyserve::kernels::cpu::scalar
