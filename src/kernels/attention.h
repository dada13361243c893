// Attention over a paged KV cache (PagedAttention): keys and values live in fixed-size blocks
// scattered in memory; each sequence names its blocks in a block table. Grouped-query: query
// head h reads KV head h / (num_heads / num_kv_heads). Dispatched at run time like ops.h.
// Only the engine thread calls these (they write or read the cache it owns).
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "kernels/isa.h"
#include "util/thread_pool.h"

namespace tinyserve::kernels {

// One layer's cache. Both k and v are [num_blocks, block_size, num_kv_heads, head_dim] in
// `dtype` (kF32, kF16, kBF16 or kI8). Slot s is token s % block_size of block s / block_size.
// kI8 (the quantized cache) also has one binary16 scale per slot and KV head in k_scale /
// v_scale ([num_blocks, num_kv_heads, block_size]: a KV head's scales of a block side by side,
// read in one conversion; KvScaleIndex): element = int8 * scale (see kv_quant.h).
struct PagedKvLayer {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF16;
  int64_t num_blocks = 0;
  int32_t block_size = 16;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  uint16_t* k_scale = nullptr;  // kI8 only
  uint16_t* v_scale = nullptr;  // kI8 only
};

// Index in k_scale / v_scale of the first slot of block `block`, KV head `kv_head` (its
// block_size scales follow).
inline int64_t KvBlockScaleIndex(const PagedKvLayer& layer, int64_t block, int64_t kv_head) {
  return (block * layer.num_kv_heads + kv_head) * layer.block_size;
}

// Index in k_scale / v_scale of slot `slot`, KV head `kv_head`.
inline int64_t KvScaleIndex(const PagedKvLayer& layer, int64_t slot, int64_t kv_head) {
  return KvBlockScaleIndex(layer, slot / layer.block_size, kv_head) + slot % layer.block_size;
}

// Stores k[t], v[t] ([num_tokens, num_kv_heads, head_dim], f32) into slot slot_mapping[t],
// converting to the cache dtype (kI8: quantized per slot and head, QuantizeKvRow). A negative
// slot means "do not store" (padding).
void WriteKv(const PagedKvLayer& layer, const float* k, const float* v, const int64_t* slot_mapping,
             int64_t num_tokens);

// The fused step between the QKV projection and attention, one pass over the tokens (one
// parallel region): q_out[t] = RoPE(q[t]); the cache slot slot_mapping[t] gets RoPE(k[t]) and
// v[t] (converted / quantized as WriteKv does). q, k, v are rows of q_stride / kv_stride floats
// (the fused projection's output is one [T, q + 2 kv] matrix: pass its column offsets);
// cos_sin as RopeCosSin; q_out may be q itself (q_stride = num_heads * head_dim). Bit-identical
// to RopeNeox on q and k, then WriteKv.
void RopeStoreKv(const float* q, const float* k, const float* v, int64_t q_stride,
                 int64_t kv_stride, int64_t num_tokens, int32_t num_heads, const float* cos_sin,
                 const PagedKvLayer& layer, const int64_t* slot_mapping, float* q_out,
                 ThreadPool* pool);
void RopeStoreKv(Isa isa, const float* q, const float* k, const float* v, int64_t q_stride,
                 int64_t kv_stride, int64_t num_tokens, int32_t num_heads, const float* cos_sin,
                 const PagedKvLayer& layer, const int64_t* slot_mapping, float* q_out,
                 ThreadPool* pool);

// The sequences of one flat batch, as attention sees them.
struct AttentionBatch {
  int32_t num_seqs = 0;
  // [num_seqs + 1]: the query tokens of sequence s are rows query_start[s]..query_start[s+1]-1.
  const int32_t* query_start = nullptr;
  // [num_seqs]: tokens in the cache for sequence s after this step's writes (its context length).
  // Query row j of a sequence with q_len rows sits at position seq_lens[s] - q_len + j and
  // attends causally to cached positions 0..that position.
  const int32_t* seq_lens = nullptr;
  // [num_seqs, max_blocks_per_seq]: block ids of each sequence in order.
  const int32_t* block_tables = nullptr;
  int32_t max_blocks_per_seq = 0;
};

// out = softmax(q K^T * scale, causal) V for every query row and head.
// q, out: [num_tokens, num_heads, head_dim] f32 (q already rotated). num_heads must be a
// multiple of layer.num_kv_heads.
void PagedAttention(const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool);
// The same on a chosen instruction set (tests, benchmarks). Requires IsaSupported(isa).
void PagedAttention(Isa isa, const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool);

}  // namespace tinyserve::kernels
