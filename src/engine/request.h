// What a client hands the engine (GenerateRequest) and what it gets back (RequestEvent, through
// the RequestStream of engine/request_queue.h). Plain data; built on HTTP threads, read by the
// engine thread after Submit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sampling/sampling_params.h"
#include "structured/compiled_grammar.h"
#include "util/status.h"

namespace tinyserve {

// When a choice ends (vLLM / OpenAI semantics).
struct StopConditions {
  // Generation ends when the output text contains one of these; the stop string itself is cut
  // from the text unless include_stop_str_in_output. Matched across token boundaries; text that
  // could still become a stop string is held back from the stream until it cannot.
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  // Extra token ids that end generation (the token id is reported, its text is not added).
  std::vector<int32_t> stop_token_ids;
  // Keep going past the model's EOS tokens (config eos_token_ids + generation_config's).
  bool ignore_eos = false;
  // EOS, stop_token_ids and stop strings are ignored until this many tokens were generated.
  int32_t min_tokens = 0;
  // Unset: until max_model_len. The engine also stops (reason length) at max_model_len.
  std::optional<int32_t> max_tokens;
};

struct GenerateRequest {
  // Unique among live requests; empty: the engine assigns "req-<number>".
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;  // non-empty; ids < vocab_size
  SamplingParams sampling;
  StopConditions stop;
  // Independent choices of the same prompt; they share the prompt's KV blocks through the
  // prefix cache (choice i > 0 is admitted once choice 0 has computed the prompt). With a
  // seed, choice i uses seed + i.
  int32_t n = 1;
  // Lower runs first; arrival order within a priority (vLLM's priority scheduling).
  int32_t priority = 0;
  // Non-empty: prefix-cache blocks are shared only with requests carrying the same salt.
  std::string cache_salt;
  // Produce text deltas (needs the engine's detokenizer). Special tokens never add text
  // when skip_special_tokens.
  bool detokenize = true;
  bool skip_special_tokens = true;
  // Structured output: every sampled token keeps the output inside this grammar (compiled off
  // the engine thread, see structured/compiler.h). EOS is allowed only where the grammar can
  // end; as max_tokens runs out the grammar steers to its shortest close, and an output that
  // still cannot close finishes with reason length. Null: unconstrained.
  std::shared_ptr<const structured::CompiledGrammar> grammar;
  // Set: log-probabilities of the prompt's tokens (each from the logits at the position before
  // it; the first token has none) with this many top alternatives (0..SamplingParams' top
  // limit), as vLLM's `prompt_logprobs`; delivered with each choice's first event. Such a
  // prompt is computed whole by every choice (no prefix-cache reuse) in chunks of at most
  // kMaxPromptLogprobChunk tokens (each chunk's logits are [chunk, vocab] floats).
  std::optional<int32_t> prompt_logprobs;
  // From Engine::admission().Admit (deadline, client, the whole call's work); 0: the engine
  // registers the request itself, without a deadline.
  int64_t admission_ticket = 0;
};

enum class FinishReason { kNone = 0, kStop, kLength, kAbort, kError };
// "stop", "length", "abort", "error"; "" for kNone.
std::string_view FinishReasonName(FinishReason reason);

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

// Most prompt tokens one step computes, over all sequences, whose prompt log-probabilities are
// asked (GenerateRequest::prompt_logprobs): 128 x 151,936 f32 logits = 78 MB.
inline constexpr int32_t kMaxPromptLogprobChunk = 128;

// Log-probabilities of one generated token: its own and the top alternatives, most likely
// first (raw model distribution, see SamplingParams::logprobs).
struct TokenLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
  int32_t rank = 0;  // of `chosen` in the distribution (1: most likely); prompt tokens only
};

// Per-choice accounting, sent with the choice's final event.
struct ChoiceUsage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache at admission
  int32_t num_preemptions = 0;
  // Seconds: submit -> first scheduled; first scheduled -> first token; first token -> finish.
  double queue_time_s = 0;
  double prefill_time_s = 0;
  double decode_time_s = 0;
};

// One item of a request's stream. Every event belongs to one choice (`index`). A choice's
// events carry its new tokens in order; its last event has finish_reason != kNone (and no
// event follows for that choice). The stream ends after every choice has finished.
struct RequestEvent {
  int32_t index = 0;                    // choice, 0..n-1
  std::vector<int32_t> token_ids;       // tokens generated since the previous event
  std::string text;                     // valid UTF-8 text delta (may lag token_ids: hold-back)
  std::vector<TokenLogprobs> logprobs;  // one per token_ids entry when logprobs were asked
  // GenerateRequest::prompt_logprobs: each choice's first event carries one entry per prompt
  // token after the first (entry i for prompt token i + 1).
  std::vector<TokenLogprobs> prompt_logprobs;
  FinishReason finish_reason = FinishReason::kNone;
  // With kStop: the stop string matched, or the stop token id as decimal text; empty for EOS.
  std::string stop_reason;
  Status error;                      // with kError
  std::optional<ChoiceUsage> usage;  // with the final event of the choice
};

}  // namespace tinyserve
