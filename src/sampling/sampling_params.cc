#include "sampling/sampling_params.h"

#include <cmath>

namespace tinyserve {

Status ValidateSamplingParams(const SamplingParams& p, int64_t vocab_size,
                              int32_t max_top_logprobs) {
  if (p.temperature && !(std::isfinite(*p.temperature) && *p.temperature >= 0.0f)) {
    return InvalidArgumentError("temperature must be >= 0, got {}", *p.temperature);
  }
  if (p.top_p && !(*p.top_p > 0.0f && *p.top_p <= 1.0f)) {
    return InvalidArgumentError("top_p must be in (0, 1], got {}", *p.top_p);
  }
  if (p.min_p && !(*p.min_p >= 0.0f && *p.min_p <= 1.0f)) {
    return InvalidArgumentError("min_p must be in [0, 1], got {}", *p.min_p);
  }
  if (p.repetition_penalty &&
      !(std::isfinite(*p.repetition_penalty) && *p.repetition_penalty > 0.0f)) {
    return InvalidArgumentError("repetition_penalty must be > 0, got {}", *p.repetition_penalty);
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return InvalidArgumentError("presence_penalty must be in [-2, 2], got {}", p.presence_penalty);
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return InvalidArgumentError("frequency_penalty must be in [-2, 2], got {}",
                                p.frequency_penalty);
  }
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return InvalidArgumentError("logit_bias token id {} is outside the vocabulary [0, {})", token,
                                  vocab_size);
    }
    if (!std::isfinite(bias) || bias < -100.0f || bias > 100.0f) {
      return InvalidArgumentError("logit_bias for token {} must be in [-100, 100], got {}", token,
                                  bias);
    }
  }
  if (p.top_logprobs < 0 || p.top_logprobs > max_top_logprobs) {
    return InvalidArgumentError("top_logprobs must be in [0, {}], got {}", max_top_logprobs,
                                p.top_logprobs);
  }
  return OkStatus();
}

ResolvedSamplingParams ResolveSamplingParams(const SamplingParams& p, const GenerationDefaults& d) {
  ResolvedSamplingParams r;
  r.temperature = p.temperature.value_or(d.temperature.value_or(1.0f));
  r.top_p = p.top_p.value_or(d.top_p.value_or(1.0f));
  r.top_k = p.top_k.value_or(d.top_k.value_or(0));
  r.min_p = p.min_p.value_or(d.min_p.value_or(0.0f));
  r.repetition_penalty = p.repetition_penalty.value_or(d.repetition_penalty.value_or(1.0f));
  r.presence_penalty = p.presence_penalty;
  r.frequency_penalty = p.frequency_penalty;
  r.logit_bias = p.logit_bias;
  r.seed = p.seed;
  r.logprobs = p.logprobs || p.top_logprobs > 0;
  r.top_logprobs = p.top_logprobs;
  return r;
}

}  // namespace tinyserve
