// The model hyper-parameters (Hugging Face config.json or GGUF metadata) and the request
// defaults of generation_config.json. Plain data, validated once at load; read-only after.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace tinyserve {

struct ModelConfig {
  std::string architecture = "Qwen2ForCausalLM";
  int64_t vocab_size = 151936;
  int64_t hidden_size = 896;
  int64_t intermediate_size = 4864;
  int64_t num_layers = 24;
  int64_t num_heads = 14;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 64;  // hidden_size / num_heads
  int64_t max_position_embeddings = 32768;
  double rope_theta = 1000000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = true;
  int32_t bos_token_id = 151643;
  std::vector<int32_t> eos_token_ids = {151645};
  // The dtype the weights were published in ("bfloat16"); informational.
  std::string torch_dtype = "bfloat16";
};

// Request defaults (generation_config.json); unset fields fall back to the OpenAI defaults.
struct GenerationDefaults {
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int32_t> top_k;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::vector<int32_t> eos_token_ids;  // extra stop ids (e.g. 151645 and 151643)
  std::optional<int32_t> pad_token_id;
};

// Checks the hyper-parameters: positive sizes, num_heads * head_dim consistent with the
// attention shapes, num_kv_heads dividing num_heads, a sane vocabulary, a known architecture.
[[nodiscard]] Status ValidateModelConfig(const ModelConfig& config);

// Parses the text of a Hugging Face config.json (Qwen2ForCausalLM) and validates it.
// Errors name the missing or bad key.
[[nodiscard]] StatusOr<ModelConfig> ModelConfigFromJson(std::string_view json_text);
// The config.json text for `config` (what the dummy-model writer stores).
std::string ModelConfigToJson(const ModelConfig& config);

class GgufFile;
// The config of a GGUF model from its metadata (general.architecture "qwen2", qwen2.* keys,
// tokenizer.ggml.* ids); vocab_size from the token_embd.weight rows, tied unless output.weight
// exists. Validated; errors name the file and key.
[[nodiscard]] StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

// Parses generation_config.json. Unknown keys are ignored.
[[nodiscard]] StatusOr<GenerationDefaults> GenerationDefaultsFromJson(std::string_view json_text);
// The generation_config.json Qwen2.5-0.5B-Instruct ships (for dummy models).
std::string QwenGenerationConfigJson();

}  // namespace tinyserve
