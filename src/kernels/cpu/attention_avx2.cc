// AVX2 AttendBlock: attention_simd.h's grouped path (one query at a time for steps over
// kGroupMaxKeys keys) at 8 floats per vector.
#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/kv_quant.h"

namespace tinyserve::kernels::cpu::avx2 {

// Queries per group: a decode row's whole GQA group for Qwen2.5-0.5B's 7, one accumulator each
// (with a key or value vector and a broadcast, within the 16 ymm registers).
constexpr int kQueryGroup = 8;

void AttendBlock(const AttendBlockArgs& a) {
  switch (a.rows_dtype) {
    case DType::kF16:
      return simd::AttendBlockGrouped<Vec, DType::kF16, kQueryGroup>(a);
    case DType::kBF16:
      return simd::AttendBlockGrouped<Vec, DType::kBF16, kQueryGroup>(a);
    case DType::kI8:
      return simd::AttendBlockGrouped<Vec, DType::kI8, kQueryGroup>(a);
    default:
      return simd::AttendBlockGrouped<Vec, DType::kF32, kQueryGroup>(a);
  }
}

float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  return QuantizeQueryRow(x, n, q, sum);
}

uint16_t QuantizeKv(const float* x, int64_t n, int8_t* q) { return QuantizeKvRow(x, n, q); }

}  // namespace tinyserve::kernels::cpu::avx2
