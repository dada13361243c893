// AVX2 AttendBlock: attention_simd.h's one-query-at-a-time path at 8 floats per vector.
#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/kv_quant.h"

namespace tinyserve::kernels::cpu::avx2 {

void AttendBlock(const AttendBlockArgs& a) {
  switch (a.rows_dtype) {
    case DType::kF16:
      return simd::AttendEachQuery<Vec, DType::kF16>(a);
    case DType::kBF16:
      return simd::AttendEachQuery<Vec, DType::kBF16>(a);
    case DType::kI8:
      return simd::AttendEachQuery<Vec, DType::kI8>(a);
    default:
      return simd::AttendEachQuery<Vec, DType::kF32>(a);
  }
}

float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  return QuantizeQueryRow(x, n, q, sum);
}

}  // namespace tinyserve::kernels::cpu::avx2
