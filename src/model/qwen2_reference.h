// The Qwen2 forward pass in plain loops: the readable definition of what Qwen2Model computes and
// the oracle its tests compare against. f32 weights (dequantized at construction), one sequence
// at a time with a dense per-sequence KV cache; no kernels, no paging, no threads.
// Forward may be called from any thread on distinct Sequence objects.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/qwen2_weights.h"
#include "util/status.h"

namespace tinyserve {

class Qwen2Reference {
 public:
  // Copies every weight of `tensors` to f32.
  [[nodiscard]] static StatusOr<Qwen2Reference> Create(const ModelConfig& config,
                                                       const Qwen2Tensors& tensors);

  // One sequence's cached keys and values: per layer [length, num_kv_heads * head_dim].
  struct Sequence {
    int64_t length = 0;
    std::vector<std::vector<float>> k, v;
  };

  // Appends `tokens` (ids < vocab_size) to `seq` at positions seq->length.. and returns their
  // logits, [tokens.size(), vocab_size].
  std::vector<float> Forward(Sequence* seq, std::span<const int32_t> tokens) const;

  const ModelConfig& config() const { return config_; }

 private:
  struct Layer {
    std::vector<float> attn_norm, q, k, v, q_bias, k_bias, v_bias, o, ffn_norm, gate, up, down;
  };
  // y[out] = W[out, in] x[in] (+ b[out]).
  static void Linear(const std::vector<float>& w, const float* bias, const float* x,
                     int64_t out_dim, int64_t in_dim, float* y);
  void RmsNorm(const float* x, const std::vector<float>& w, float* y) const;
  void Rope(float* x, int64_t num_heads, int64_t position) const;

  ModelConfig config_;
  std::vector<float> embed_;       // [vocab, hidden]
  std::vector<float> lm_head_;     // [vocab, hidden]
  std::vector<float> final_norm_;  // [hidden]
  std::vector<Layer> layers_;
};

}  // namespace tinyserve
