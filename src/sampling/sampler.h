// The sampler chain for one sequence: logit bias -> banned tokens -> penalties -> (greedy argmax)
// | temperature -> top-k -> top-p -> min-p -> draw with the sequence's RNG; plus log-probs of
// the raw model distribution. Each stage is a free function so tests can check it alone.
// Engine thread only (each SamplerState belongs to one sequence).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "sampling/sampling_params.h"

namespace tinyserve {

// Per-sequence state: RNG and the token statistics the penalties need.
class SamplerState {
 public:
  // `prompt`: the prompt token ids (repetition penalty covers them). Seeded params give the
  // same draws for the same seed; unseeded ones draw a seed from std::random_device.
  SamplerState(const ResolvedSamplingParams& params, std::span<const int32_t> prompt);

  // Records a generated token (frequency / presence / repetition penalties).
  void Accept(int32_t token_id);
  // A uniform double in [0, 1).
  double Uniform();

  const std::unordered_map<int32_t, int32_t>& output_counts() const { return output_counts_; }
  const std::vector<int32_t>& prompt_tokens() const { return prompt_tokens_; }

 private:
  std::mt19937_64 rng_;
  std::vector<int32_t> prompt_tokens_;  // sorted, unique
  std::unordered_map<int32_t, int32_t> output_counts_;
};

struct SampleResult {
  int32_t token_id = 0;
  // Filled when params.logprobs: raw log-softmax of the model's logits.
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top_logprobs;  // most likely first
};

// Samples one token from `logits` ([vocab_size], modified in place) and records it in `state`
// (it calls state.Accept: do not call it again). `allowed` (a bitmask, bit t of word t/32; empty
// = every token) restricts the choice, as a grammar does; log-probs still describe the raw
// distribution. `banned` tokens get -inf (min_tokens holds back stop tokens this way) unless no
// token would be left. At least one token must be allowed.
SampleResult Sample(std::span<float> logits, const ResolvedSamplingParams& params,
                    SamplerState& state, std::span<const int32_t> banned = {},
                    std::span<const uint32_t> allowed = {});

// ---- Stages (exposed for tests) ----

// logits[t] = -inf for every token t whose bit in `allowed` is 0 (tokens past the mask too).
void ApplyAllowedMask(std::span<float> logits, std::span<const uint32_t> allowed);
// logits[id] += bias.
void ApplyLogitBias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);
// vLLM / OpenAI: repetition (prompt and output tokens: positive logits divided by the penalty,
// negative ones multiplied), then logit -= frequency * count + presence * (count > 0) over
// output tokens.
void ApplyPenalties(std::span<float> logits, const ResolvedSamplingParams& params,
                    const SamplerState& state);
// The index of the largest logit (the lowest index among ties; NaN logits never win):
// kernels::Argmax.
int32_t Argmax(std::span<const float> logits);
// log(sum(exp(logits))): the log-softmax of token t is logits[t] minus it (kernels::LogSumExp).
// One pass of exp over the vocabulary, so a row's callers compute it once and share it.
float LogSumExp(std::span<const float> logits);
// The `k` most likely (token, logprob) pairs, most likely first; `lse` is LogSumExp(logits).
std::vector<std::pair<int32_t, float>> TopLogprobs(std::span<const float> logits, int32_t k,
                                                   float lse);

// The candidate set after temperature / top-k / top-p / min-p: token ids and their
// probabilities (normalised over the candidates); most likely first when top-k or top-p chose
// them, in id order otherwise. The most likely are selected in one pass over the vocabulary
// (top-p selects a growing number until they hold its mass), not sorted.
struct Candidates {
  std::vector<int32_t> ids;
  std::vector<float> probs;
};
Candidates FilterCandidates(std::span<const float> logits, const ResolvedSamplingParams& params);
// Draws from candidates with `u` uniform in [0, 1).
int32_t Draw(const Candidates& candidates, double u);
// Draws from softmax(logits / temperature) over the whole vocabulary with `u` uniform in [0, 1)
// (what Draw(FilterCandidates(...)) gives with no top-k / top-p / min-p, without the candidate
// list). Overwrites `logits` with the unnormalised softmax weights (kernels::SoftmaxWeights).
// Tokens with -inf logits are never drawn unless every logit is -inf, in which case the result is
// token 0.
int32_t DrawFromFullSoftmax(std::span<float> logits, float temperature, double u);

}  // namespace tinyserve
