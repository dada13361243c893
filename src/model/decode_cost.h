// What one decode step of Qwen2 must read and compute, for the benchmarks' physical bounds
// (bench_model, `bench throughput`): the weight matrices once per step, each sequence's whole KV
// cache, and the multiply-adds of the linear layers and the lm_head per sampled token plus
// attention's per cached token. Pure arithmetic; any thread.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "model/config.h"

namespace tinyserve {

struct DecodeCost {
  double weight_bytes = 0;        // all weight matrices, as the kernels read them
  double kv_bytes_per_token = 0;  // K and V of one cached token over all layers (with scales)
  double macs_per_token = 0;      // linear layers + lm_head, one sampled token
  double attn_macs_per_context_token = 0;  // q.k and p.v over all layers and heads

  // One step over `tokens` sampled rows whose sequences hold `context_tokens` cached tokens in
  // total (after the step's writes).
  double Bytes(double context_tokens) const {
    return weight_bytes + context_tokens * kv_bytes_per_token;
  }
  double Ops(double tokens, double context_tokens) const {
    return 2 * (tokens * macs_per_token + context_tokens * attn_macs_per_context_token);
  }
};

// kv_dtype: kF32, kF16, kBF16 or kI8 (int8 with a binary16 scale per token and KV head).
inline DecodeCost DecodeCostOf(const ModelConfig& c, double weight_bytes, DType kv_dtype) {
  DecodeCost d;
  d.weight_bytes = weight_bytes;
  const double hd = static_cast<double>(c.head_dim);
  const double row = kv_dtype == DType::kF32 ? 4 * hd : kv_dtype == DType::kI8 ? hd + 2 : 2 * hd;
  d.kv_bytes_per_token = 2.0 * c.num_layers * c.num_kv_heads * row;
  const double h = c.hidden_size, q = c.num_heads * hd, kv = c.num_kv_heads * hd;
  d.macs_per_token = c.num_layers * (h * (q + 2 * kv) + q * h + 3 * h * c.intermediate_size) +
                     double(c.vocab_size) * h;
  d.attn_macs_per_context_token = 2.0 * c.num_layers * c.num_heads * hd;
  return d;
}

}  // namespace tinyserve
