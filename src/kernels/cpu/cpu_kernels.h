// Internal to kernels/: the per-ISA building blocks behind ops.h and attention.h. Each of
// namespaces scalar, avx2 and avx512 defines the same set (avx2/avx512 in files compiled for that
// ISA, so call them only when IsaSupported says so); KernelsFor(isa) gathers one set in a table.
// Row-wise functions work on the calling thread; ops.cc / attention.cc split work over the pool.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "kernels/isa.h"
#include "kernels/prefetch.h"

namespace tinyserve::kernels::cpu {

// One step of online (flash-attention) softmax: folds a run of n consecutive cache positions
// (one or more whole blocks, chosen by position only) into the running state of num_q query
// vectors. Query i sees the first num_valid[i] keys of the run (causal mask; <= 0 means it sees
// none and its state is untouched). The arithmetic for query i depends only on its own vector and
// the keys it sees, never on the other queries, which is what makes attention independent of how
// the batch is composed.
struct AttendBlockArgs {
  const float* q = nullptr;            // [num_q, head_dim]
  const int32_t* num_valid = nullptr;  // [num_q]
  int32_t num_q = 0;
  const float* k = nullptr;  // [n, head_dim], f32
  const float* v = nullptr;  // [n, head_dim], f32
  int32_t n = 0;
  int32_t head_dim = 0;
  float scale = 1;
  float* max = nullptr;     // [num_q] running max of the scaled scores (start: -inf)
  float* sum = nullptr;     // [num_q] running sum of exp(score - max) (start: 0)
  float* acc = nullptr;     // [num_q, head_dim] running sum of exp(score - max) * v (start: 0)
  float* scores = nullptr;  // scratch, [n] rounded up to 16
  // AVX2 and AVX-512 (the driver sets these for no other ISA; k / v are then unused): key / value t
  // is the head_dim elements of rows_dtype (kF32, kF16, kBF16 or kI8) at k_rows[t] / v_rows[t],
  // either the f32 rows of k / v or rows straight in the cache (kI8: times k_scales[t] /
  // v_scales[t]). Conversion to f32 is exact, so the result is the same either way.
  const void* const* k_rows = nullptr;  // [n]
  const void* const* v_rows = nullptr;  // [n]
  const float* k_scales = nullptr;      // [n], kI8 only
  const float* v_scales = nullptr;      // [n], kI8 only
  DType rows_dtype = DType::kF32;
  // kI8 rows (an int8 cache): q holds the queries rounded to 16 bits (QuantizeQueryRow, in f32:
  // DequantizeQuery), and these their integers (two int8 rows each), scales and sums; the AVX2 and
  // AVX-512 kernels read them for an integer q.k where head_dim % 64 == 0 and head_dim <= 256.
  const int8_t* q_i8 = nullptr;     // [num_q, 2 * head_dim]
  const float* q_scales = nullptr;  // [num_q]
  const int32_t* q_sums = nullptr;  // [num_q]
  // Cache lines of a later step to request into L2 (attention.cc's read-ahead): num_prefetch
  // lines in num_prefetch_runs runs, none empty. The AVX-512 kernel spreads them through its
  // value loop: issued in one burst they fill the core's miss buffers and stall it until memory
  // answers, instead of overlapping the arithmetic.
  const LineRun* prefetch = nullptr;  // [num_prefetch_runs]
  int32_t num_prefetch_runs = 0;
  int32_t num_prefetch = 0;
};

#define TINYSERVE_CPU_KERNELS_DECLARE                                                         \
  void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps, \
               float* out);                                                                   \
  void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,        \
                int64_t head_dim);                                                            \
  void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out);              \
  float SoftmaxWeights(float* x, int64_t n);                                                  \
  float LogSumExp(const float* x, int64_t n);                                                 \
  int64_t FirstIndexPassing(const float* w, int64_t n, double target);                        \
  int64_t Argmax(const float* x, int64_t n);                                                  \
  void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim);                 \
  void AddInPlace(float* out, const float* x, int64_t n);                                     \
  /* dtype: kF32, kF16 or kBF16. */                                                           \
  void ToF32(DType dtype, const void* src, float* dst, int64_t n);                            \
  /* dtype kF16 or kBF16: convert.h's F32ToFp16 / F32ToBf16 of each element, bit for bit. */  \
  void FromF32(DType dtype, const float* src, void* dst, int64_t n);                          \
  void AttendBlock(const AttendBlockArgs& args);                                              \
  /* kernels/kv_quant.h's QuantizeQueryRow, bit for bit (the AVX-512 one in vectors). */      \
  float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum);                    \
  /* kernels/kv_quant.h's QuantizeKvRow, bit for bit (the AVX-512 one in vectors). */         \
  uint16_t QuantizeKv(const float* x, int64_t n, int8_t* q);

namespace scalar {
TINYSERVE_CPU_KERNELS_DECLARE
}  // namespace scalar
namespace avx2 {
TINYSERVE_CPU_KERNELS_DECLARE
}  // namespace avx2
namespace avx512 {
TINYSERVE_CPU_KERNELS_DECLARE
}  // namespace avx512

#undef TINYSERVE_CPU_KERNELS_DECLARE

struct CpuKernels {
  void (*rms_norm)(const float*, const float*, int64_t, int64_t, float, float*);
  void (*rope_neox)(float*, const float*, int64_t, int64_t, int64_t);
  void (*silu_mul)(const float*, int64_t, int64_t, float*);
  float (*softmax_weights)(float*, int64_t);
  float (*log_sum_exp)(const float*, int64_t);
  int64_t (*first_index_passing)(const float*, int64_t, double);
  int64_t (*argmax)(const float*, int64_t);
  void (*add_bias)(float*, const float*, int64_t, int64_t);
  void (*add_in_place)(float*, const float*, int64_t);
  void (*to_f32)(DType, const void*, float*, int64_t);
  void (*from_f32)(DType, const float*, void*, int64_t);
  void (*attend_block)(const AttendBlockArgs&);
  float (*quantize_query)(const float*, int64_t, int8_t*, int32_t*);
  uint16_t (*quantize_kv)(const float*, int64_t, int8_t*);
};

// Requires IsaSupported(isa).
const CpuKernels& KernelsFor(Isa isa);

}  // namespace tinyserve::kernels::cpu
