// The Qwen2 forward pass (fast path): one flat batch of tokens from several sequences, kernels
// from kernels/, KV in a paged cache the caller owns (model/model.h). Load builds it from a model
// directory (safetensors), a .gguf file, or "dummy:<preset>" (seeded random weights in memory).
// Forward is called from one thread at a time (the engine thread); it reuses a scratch arena.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/config.h"
#include "model/model.h"
#include "model/qwen2_weights.h"
#include "util/aligned_buffer.h"

namespace tinyserve {

struct LoadOptions {
  // Dummy models only: the weight type, one of f32 f16 bf16 q8_0 q4_0 q4_k_m (empty = bf16,
  // the published dtype). Files keep the types they store.
  std::string dtype;
  // Dummy models only: the seed of the random weights (same seed, same weights, any format).
  uint64_t seed = 0;
  // vLLM's --quantization: q8_0, q4_0, q4_k, ... quantizes every f32/f16/bf16 matrix at load
  // (see Qwen2PrepareOptions); empty = keep the stored types.
  std::string quantization;
  // Dummy presets only: keep the first num_layers layers (0 = all), for small tests.
  int64_t num_layers = 0;
};

// Seconds spent in each op since the last ResetProfile (when profiling is on).
struct Qwen2Profile {
  double embed = 0, norm = 0, qkv = 0, rope = 0, attention = 0, o_proj = 0, gate_up = 0, silu = 0,
         down = 0, residual = 0, lm_head = 0;
  int64_t calls = 0;
};

class Qwen2Model : public Model {
 public:
  // `model`: a directory with config.json (+ generation_config.json) and model.safetensors or a
  // sharded index; a path ending in .gguf; or "dummy:qwen2.5-0.5b" / "dummy:tiny".
  // Errors name the file and the key or tensor at fault.
  [[nodiscard]] static StatusOr<std::unique_ptr<Qwen2Model>> Load(const std::string& model,
                                                                  const LoadOptions& options);
  // From bound tensors whose bytes `source` keeps alive.
  [[nodiscard]] static StatusOr<std::unique_ptr<Qwen2Model>> FromTensors(
      const ModelConfig& config, Qwen2Tensors tensors, std::shared_ptr<const void> source,
      const Qwen2PrepareOptions& prepare = {});

  const ModelConfig& config() const override { return config_; }
  [[nodiscard]] Status Forward(const ForwardBatch& batch,
                               std::span<const kernels::PagedKvLayer> kv_layers, float* logits,
                               ThreadPool* pool) override;

  // The stored tensors (for the reference model and tools) and the kernel-ready weights.
  const Qwen2Tensors& tensors() const { return tensors_; }
  const Qwen2Weights& weights() const { return weights_; }
  // generation_config.json of a model directory, when it has one.
  const std::optional<GenerationDefaults>& generation_defaults() const { return gen_defaults_; }
  // The directory holding tokenizer.json for a safetensors model; empty otherwise.
  const std::string& tokenizer_dir() const { return tokenizer_dir_; }
  // For a .gguf model: the file (its tokenizer.ggml.* metadata); nullptr otherwise.
  const GgufFile* gguf() const { return gguf_; }

  // Per-op timing (adds a clock read around each op).
  void set_profiling(bool on) { profiling_ = on; }
  const Qwen2Profile& profile() const { return profile_; }
  void ResetProfile() { profile_ = Qwen2Profile(); }
  // Whether the norms and SiLU * up quantize their output for the quantized matmul after them
  // (kernels/ops.h *Quantize; on by default). Off, every matmul quantizes its f32 input itself
  // (the unfused path); the logits are bit-identical either way (tests compare the two).
  void set_fused_quantization(bool on) { fuse_quantization_ = on; }

 private:
  Qwen2Model() = default;
  [[nodiscard]] Status ValidateBatch(const ForwardBatch& batch,
                                     std::span<const kernels::PagedKvLayer> kv_layers) const;
  // Grows the activation buffers to `t` tokens and `r` logit rows (never shrinks them).
  void EnsureScratch(int64_t t, int64_t r);

  ModelConfig config_;
  std::shared_ptr<const void> source_;  // owns the bytes the views below point into
  const GgufFile* gguf_ = nullptr;
  Qwen2Tensors tensors_;
  Qwen2Weights weights_;
  std::optional<GenerationDefaults> gen_defaults_;
  std::string tokenizer_dir_;
  std::unique_ptr<ThreadPool> own_pool_;  // used when Forward gets no pool

  // Scratch arena, grown to the largest batch seen and reused.
  int64_t scratch_tokens_ = 0;
  int64_t scratch_logit_rows_ = 0;
  AlignedBuffer<float> x_;        // [T, hidden] residual stream
  AlignedBuffer<float> normed_;   // [T, hidden]
  AlignedBuffer<float> qkv_;      // [T, q_dim + 2 * kv_dim]
  AlignedBuffer<float> q_;        // [T, num_heads, head_dim]
  AlignedBuffer<float> k_;        // [T, num_kv_heads, head_dim]
  AlignedBuffer<float> v_;        // [T, num_kv_heads, head_dim]
  AlignedBuffer<float> attn_;     // [T, num_heads * head_dim]
  AlignedBuffer<float> proj_;     // [T, hidden]
  AlignedBuffer<float> gate_up_;  // [T, 2 * intermediate]
  AlignedBuffer<float> act_;      // [T, intermediate]
  AlignedBuffer<float> up_;       // [T, intermediate] (only when gate and up are not fused)
  AlignedBuffer<float> cos_sin_;  // [T, head_dim]
  AlignedBuffer<float> final_;    // [R, hidden] rows that need logits
  // The next quantized matmul's input, quantized (by the op before it or just before the call);
  // one buffer serves every matmul in turn and keeps its size across steps.
  kernels::QuantizedActivations acts_;
  // The down projection's input from the fused gate/up + SiLU (read while acts_ is its input).
  kernels::QuantizedActivations ffn_acts_;
  bool fuse_quantization_ = true;

  bool profiling_ = false;
  Qwen2Profile profile_;
};

}  // namespace tinyserve
