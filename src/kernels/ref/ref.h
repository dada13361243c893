// Plain scalar versions of the operators in kernels/ops.h and kernels/attention.h: the ground
// truth the SIMD kernels are tested against (dense softmax, double accumulation, no tiling).
// Same contracts as the public functions; slow; any thread.
#pragma once

#include <cstdint>

#include "formats/tensor_view.h"
#include "kernels/attention.h"

namespace tinyserve::kernels::ref {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out);
void RopeCosSin(const int32_t* positions, int64_t num_tokens, int64_t head_dim, float theta,
                float* cos_sin);
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim);
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out);
void Softmax(float* x, int64_t num_rows, int64_t dim);
// f32, f16 and bf16 tables only (quantized tables go through DequantizeRow).
void EmbeddingLookup(const TensorView& table, const int32_t* ids, int64_t num_ids, float* out);
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim);
void AddInPlace(float* out, const float* x, int64_t n);

// Element `idx` of a cache tensor of `dtype` (kF32, kF16, kBF16) as f32.
float LoadCacheElement(DType dtype, const void* base, int64_t idx);
// Element d of the key (value = false) or value row of `slot` and `kv_head`, any cache dtype.
float LoadKv(const PagedKvLayer& layer, bool value, int64_t slot, int64_t kv_head, int64_t d);
void WriteKv(const PagedKvLayer& layer, const float* k, const float* v, const int64_t* slot_mapping,
             int64_t num_tokens);
void PagedAttention(const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out);

}  // namespace tinyserve::kernels::ref
