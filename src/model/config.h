// The model hyper-parameters (Hugging Face config.json or GGUF metadata) and the request
// defaults of generation_config.json. Plain data, validated once at load; read-only after.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace tinyserve
