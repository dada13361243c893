// Output processing for one step's sampled tokens, apart from scheduling and the model: turns
// a choice's new token into the event its stream sees (token, logprobs, UTF-8 text delta with
// stop strings held back) and decides whether the choice ends (constraint complete, EOS, stop
// token ids, stop strings, min_tokens, max_tokens, max_model_len); computes a finished
// choice's usage and timings. Engine thread only (the processor is immutable after
// construction; each ChoiceText belongs to one choice).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "engine/output_text.h"
#include "engine/request.h"
#include "engine/sequence.h"
#include "engine/token_text.h"
#include "sampling/sampler.h"

namespace tinyserve {

// What every choice of one request shares about its output.
struct OutputSpec {
  StopConditions stop;
  int32_t max_tokens = 0;  // effective: also bounded by max_model_len - prompt length
  int32_t max_model_len = 0;
  bool detokenize = false;  // the request asked for text and the engine has a vocabulary
  bool skip_special_tokens = true;
  bool logprobs = false;
};

// The event for a processed token and the choice's finish reason (kNone: it goes on).
struct TokenOutput {
  RequestEvent event;
  FinishReason finish = FinishReason::kNone;
};

class OutputProcessor {
 public:
  // `eos_token_ids`: the tokens that end generation unless ignore_eos.
  OutputProcessor(TokenText text, std::vector<int32_t> eos_token_ids);

  bool has_text() const { return !text_.empty(); }
  std::vector<int32_t> eos_token_ids() const { return {eos_.begin(), eos_.end()}; }

  // The per-choice text state for `spec` (null without detokenization).
  std::unique_ptr<OutputText> NewChoiceText(const OutputSpec& spec) const;
  // Tokens the sampler must not draw while the choice has `num_generated` tokens: EOS (unless
  // ignore_eos) and stop token ids, until min_tokens.
  std::vector<int32_t> BannedTokens(const OutputSpec& spec, int32_t num_generated) const;
  // `seq` has just had `sample.token_id` appended. `constraint_done`: the sampling constraint
  // (grammar) is complete, so the output is too.
  TokenOutput ProcessToken(const OutputSpec& spec, const Sequence& seq, const SampleResult& sample,
                           bool constraint_done, OutputText* text) const;

  // Counts and timings of a choice that ends at `now` (see ChoiceUsage).
  static ChoiceUsage Usage(const Sequence& seq, std::chrono::steady_clock::time_point now);

 private:
  const TokenText text_;
  const std::unordered_set<int32_t> eos_;
};

}  // namespace tinyserve
