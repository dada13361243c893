// Dummy models (like vLLM's --load-format dummy): Qwen2 weights of a preset shape filled with
// seeded random values, kept in memory or written as a complete model (GGUF file, or a
// safetensors directory with config, generation config and tokenizer files). The random values
// depend only on (seed, tensor name), so every format of one seed holds the same numbers.
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "formats/tensor_view.h"
#include "model/config.h"
#include "util/aligned_buffer.h"
#include "util/status.h"

namespace tinyserve {

// "qwen2.5-0.5b": the published shape (24 layers, 896 hidden, 4864 ffn, 14/2 heads, vocab
// 151936, tied). "tiny": 2 layers, hidden 64, ffn 128, 4/2 heads, head_dim 16, the real vocab,
// tied. Errors: unknown preset.
// "qwen2.5-1.5b" (28 layers, 1536 hidden, 8960 ffn, 12/2 heads, tied), "qwen2.5-3b" (36, 2048,
// 11008, 16/2, tied), "qwen2.5-7b" (28, 3584, 18944, 28/4, vocab 152064, untied) and
// "qwen2-0.5b" (the 0.5B shape, 131072 context, eos 151643) follow the published config.json.
[[nodiscard]] StatusOr<ModelConfig> DummyPresetConfig(std::string_view preset);
// --num-layers: keeps the first `num_layers` layers of a preset (0 = all), so tests can run the
// real widths of the large presets in little time and memory.
[[nodiscard]] Status OverrideDummyLayers(int64_t num_layers, ModelConfig* config);

// The weight types a dummy model can have. q4_0 and q4_k_m follow llama.cpp's choices for
// Qwen2.5-0.5B: the tied embedding is Q8_0 (llama.cpp quantizes it as the output matrix, Q6_K,
// which falls back to Q8_0 for 896-wide rows). q4_k_m per tensor: attn_v and ffn_down take the
// "more bits" type (Q6_K) on layers i < n/8, i >= 7n/8 and (i - n/8) % 3 == 2, Q4_K elsewhere;
// the rest Q4_K; then any k-quant whose row length is not a multiple of 256 falls back:
// Q4_K -> Q5_0, Q6_K -> Q8_0 (so at 896 wide only ffn_down keeps Q4_K/Q6_K).
enum class DummyDType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M };
[[nodiscard]] StatusOr<DummyDType> ParseDummyDType(std::string_view name);
std::string_view DummyDTypeName(DummyDType t);
// The stored type of one tensor (Hugging Face name) in a model of type `t` (1-D tensors: f32
// for quantized models, else the model type).
DType DummyTensorDType(DummyDType t, const ModelConfig& config, const std::string& hf_name,
                       const std::vector<int64_t>& shape);

// Tensors of a dummy model under Hugging Face names, owning their bytes.
struct DummyWeights {
  ModelConfig config;
  DummyDType dtype = DummyDType::kBF16;
  std::vector<TensorView> tensors;  // in file order; data points into `storage`
  std::vector<AlignedBuffer<uint8_t>> storage;
  const TensorView* Find(const std::string& name) const;
};

// Fills every tensor of `config` with random values: matrices uniform with standard deviation
// 1/sqrt(in_features) (activations keep unit scale through every layer), biases with standard
// deviation 0.1, norm weights 1 + uniform(-0.2, 0.2). Values are rounded through the model's
// dtype so GGUF (which keeps 1-D tensors in f32) and safetensors hold the same numbers.
// `num_threads` threads generate (and quantize) in parallel.
[[nodiscard]] StatusOr<std::unique_ptr<DummyWeights>> MakeDummyWeights(const ModelConfig& config,
                                                                       DummyDType dtype,
                                                                       uint64_t seed,
                                                                       int num_threads = 2);

// Writes `weights` as one GGUF file with the official Qwen2.5 GGUF keys, tensor names and
// tokenizer (tokenizer.ggml.*, from the Qwen2.5 tokenizer.json in `tokenizer_dir`).
[[nodiscard]] Status WriteDummyGguf(const DummyWeights& weights, const std::string& tokenizer_dir,
                                    const std::string& path);
// Writes config.json, generation_config.json, model.safetensors, tokenizer.json and
// tokenizer_config.json into `dir` (created if missing). Errors: quantized types (safetensors
// holds float types only).
[[nodiscard]] Status WriteDummySafetensors(const DummyWeights& weights,
                                           const std::string& tokenizer_dir,
                                           const std::string& dir);

}  // namespace tinyserve
