#include "engine/output_processor.h"

#include <algorithm>
#include <string>

namespace tinyserve {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

OutputProcessor::OutputProcessor(TokenText text, std::vector<int32_t> eos_token_ids)
    : text_(std::move(text)), eos_(eos_token_ids.begin(), eos_token_ids.end()) {}

std::unique_ptr<OutputText> OutputProcessor::NewChoiceText(const OutputSpec& spec) const {
  if (!spec.detokenize) return nullptr;
  return std::make_unique<OutputText>(spec.stop.stop, spec.stop.include_stop_str_in_output);
}

std::vector<int32_t> OutputProcessor::BannedTokens(const OutputSpec& spec,
                                                   int32_t num_generated) const {
  std::vector<int32_t> banned;
  if (num_generated >= spec.stop.min_tokens) return banned;
  if (!spec.stop.ignore_eos) banned.insert(banned.end(), eos_.begin(), eos_.end());
  banned.insert(banned.end(), spec.stop.stop_token_ids.begin(), spec.stop.stop_token_ids.end());
  return banned;
}

TokenOutput OutputProcessor::ProcessToken(const OutputSpec& spec, const Sequence& seq,
                                          const SampleResult& sample, bool constraint_done,
                                          OutputText* text) const {
  const StopConditions& stop = spec.stop;
  const int32_t token = sample.token_id;
  TokenOutput out;
  RequestEvent& event = out.event;
  event.token_ids.push_back(token);
  if (spec.logprobs) {
    TokenLogprobs lp;
    lp.chosen = {token, sample.logprob};
    for (const auto& [id, value] : sample.top_logprobs) lp.top.push_back({id, value});
    event.logprobs.push_back(std::move(lp));
  }
  const bool check_stop = seq.num_generated() >= stop.min_tokens;
  bool stopped_by_string = false;
  // The grammar accepted EOS (the output is complete), or EOS itself.
  if (constraint_done || (check_stop && !stop.ignore_eos && eos_.contains(token))) {
    out.finish = FinishReason::kStop;
  } else if (check_stop && std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(),
                                     token) != stop.stop_token_ids.end()) {
    out.finish = FinishReason::kStop;
    event.stop_reason = std::to_string(token);
  } else if (text != nullptr) {
    const bool hidden = spec.skip_special_tokens && text_.is_special && text_.is_special(token);
    OutputText::Update u =
        text->Append(hidden ? std::string() : text_.token_bytes(token), check_stop);
    event.text = std::move(u.delta);
    if (u.stopped) {
      out.finish = FinishReason::kStop;
      event.stop_reason = std::move(u.stop_string);
      stopped_by_string = true;
    }
  }
  if (out.finish == FinishReason::kNone &&
      (seq.num_generated() >= spec.max_tokens || seq.num_tokens() >= spec.max_model_len)) {
    out.finish = FinishReason::kLength;
  }
  // A choice that ends releases the text held back for stop strings or a partial character.
  if (out.finish != FinishReason::kNone && text != nullptr && !stopped_by_string) {
    event.text += text->Flush();
  }
  return out;
}

ChoiceUsage OutputProcessor::Usage(const Sequence& seq, std::chrono::steady_clock::time_point now) {
  ChoiceUsage usage;
  usage.prompt_tokens = seq.num_prompt_tokens;
  usage.completion_tokens = seq.num_generated();
  usage.cached_prompt_tokens = std::max(0, seq.num_cached_prompt_tokens);
  usage.num_preemptions = seq.num_preemptions;
  if (seq.scheduled_once) {
    usage.queue_time_s = Seconds(seq.arrival_time, seq.first_scheduled_time);
    if (seq.num_generated() > 0) {
      usage.prefill_time_s = Seconds(seq.first_scheduled_time, seq.first_token_time);
      usage.decode_time_s = Seconds(seq.first_token_time, now);
    } else {
      usage.prefill_time_s = Seconds(seq.first_scheduled_time, now);
    }
  } else {
    usage.queue_time_s = Seconds(seq.arrival_time, now);
  }
  return usage;
}

}  // namespace tinyserve
