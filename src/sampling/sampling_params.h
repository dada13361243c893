// Per-request sampling parameters (OpenAI / vLLM semantics) and their resolution against the
// model's generation_config.json defaults. Plain data; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/config.h"
#include "util/status.h"

namespace tinyserve {

// Unset optionals take the model's generation_config.json value, then the OpenAI default
// (temperature 1, top_p 1, top_k off, min_p 0, repetition_penalty 1).
struct SamplingParams {
  std::optional<float> temperature;         // 0 = greedy
  std::optional<float> top_p;               // (0, 1]
  std::optional<int32_t> top_k;             // <= 0 = off
  std::optional<float> min_p;               // [0, 1]
  std::optional<float> repetition_penalty;  // > 0; 1 = off; prompt and output tokens
  float presence_penalty = 0.0f;            // [-2, 2]; output tokens only
  float frequency_penalty = 0.0f;           // [-2, 2]; output tokens only
  // Added to the logit of each token before anything else (OpenAI: [-100, 100]).
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;  // same seed, same tokens; unset: random
  // Log-probabilities: `logprobs` asks for the chosen token's; `top_logprobs` (0..20) adds that
  // many most likely alternatives. Values are the model's raw distribution (log-softmax of the
  // logits before bias, penalties and temperature), as vLLM reports by default.
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

// All fields concrete: what the sampler reads.
struct ResolvedSamplingParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;
  bool logprobs = false;
  int32_t top_logprobs = 0;

  bool greedy() const { return temperature <= kGreedyTemperature; }
  static constexpr float kGreedyTemperature = 1e-5f;
};

// Checks ranges (negative temperature, top_p outside (0, 1], token ids in logit_bias outside
// [0, vocab_size), top_logprobs outside [0, max_top_logprobs], ...). Errors name the field.
[[nodiscard]] Status ValidateSamplingParams(const SamplingParams& params, int64_t vocab_size,
                                            int32_t max_top_logprobs = 20);

// Fills unset fields from `defaults`, then from the OpenAI defaults.
ResolvedSamplingParams ResolveSamplingParams(const SamplingParams& params,
                                             const GenerationDefaults& defaults);

}  // namespace tinyserve
