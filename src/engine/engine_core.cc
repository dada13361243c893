#include "engine/engine_core.h"

#include <algorithm>
#include <thread>

#include "engine/grammar_constraint.h"
#include "engine/sequence.h"
#include "sampling/sampler.h"
#include "util/logging.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;

AdmissionOptions AdmissionOptionsFor(const EngineOptions& o, const EngineLimits& limits) {
  AdmissionOptions a;
  a.max_num_seqs = o.max_num_seqs;
  a.max_num_batched_tokens = o.max_num_batched_tokens;
  a.max_step_s = o.max_step_ms / 1000.0;
  // Half the cache: prompts computed long ago may have been evicted since.
  if (o.enable_prefix_caching)
    a.prefix_cache_blocks = limits.num_kv_blocks * o.block_size / kPrefixBlockTokens / 2;
  return a;
}

// The log-probability of `token` under `logits` (raw model distribution), its rank, and the
// `top` most likely alternatives.
TokenLogprobs PromptTokenLogprobs(std::span<const float> logits, int32_t token, int32_t top) {
  TokenLogprobs lp;
  const float lse = LogSumExp(logits);
  lp.chosen = {token, logits[token] - lse};
  const float own = logits[token];
  lp.rank = 1 + static_cast<int32_t>(
                    std::count_if(logits.begin(), logits.end(), [&](float v) { return v > own; }));
  for (const auto& [id, value] : TopLogprobs(logits, top, lse)) lp.top.push_back({id, value});
  return lp;
}

Status ShedStatus() {
  return UnavailableError("the request can no longer finish before its deadline; retry later");
}

}  // namespace

// One request: what its choices share.
struct EngineCore::RequestState {
  std::string id;
  std::shared_ptr<RequestStream> stream;
  OutputSpec spec;
  int32_t choices_open = 0;
  int64_t ticket = 0;  // admission ticket
  std::vector<std::unique_ptr<ChoiceState>> choices;
};

// One choice: its sequence plus what sampling and output processing keep for it.
struct EngineCore::ChoiceState {
  Sequence seq;
  RequestState* request = nullptr;
  int32_t index = 0;
  ResolvedSamplingParams params;
  std::unique_ptr<SamplerState> sampler;
  std::unique_ptr<TokenConstraint> constraint;  // structured output only
  std::unique_ptr<OutputText> text;             // detokenized requests only
  // GenerateRequest::prompt_logprobs: top alternatives asked (-1: none), and
  // the entries computed so far (entry i for prompt token i + 1), sent with the first token.
  int32_t prompt_top = -1;
  std::vector<TokenLogprobs> prompt_logprobs;
  bool prompt_logprobs_sent = false;
  // A sibling that takes choice 0's prompt log-probabilities instead of computing them (with
  // prefix caching it waits for choice 0 and reuses its prompt anyway), until they are copied.
  bool takes_choice0_prompt = false;
  bool finished = false;
};

// A prompt position whose logits give the log-probability of the prompt token after it.
struct EngineCore::PromptLogit {
  ChoiceState* choice = nullptr;
  int32_t row = 0;       // in the step's logits
  int32_t position = 0;  // predicts prompt token position + 1
};

// A sampled token waiting to be processed, or why there is none.
struct EngineCore::PendingDraw {
  ChoiceState* choice = nullptr;
  int32_t row = 0;
  ConstrainedSample sample;
};

EngineCore::EngineCore(std::shared_ptr<Model> model, const EngineOptions& options,
                       const EngineLimits& limits, const GenerationDefaults& defaults,
                       TokenText text, KvCache kv)
    : model_(std::move(model)),
      options_(options),
      limits_(limits),
      defaults_(defaults),
      output_(std::move(text),
              [&] {
                std::vector<int32_t> eos = model_->config().eos_token_ids;
                for (int32_t id : defaults.eos_token_ids) {
                  if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
                }
                return eos;
              }()),
      admission_(AdmissionOptionsFor(options, limits)),
      pool_(limits.threads),
      kv_(std::move(kv)),
      blocks_(static_cast<int32_t>(kv_.num_blocks()), options.block_size,
              options.enable_prefix_caching),
      scheduler_({options.max_num_seqs, options.max_num_batched_tokens}, &blocks_),
      runner_(model_.get(), kv_.layers(), &pool_) {
  scheduler_.SetPrefillTokenLimit(
      [this](int32_t decodes) { return admission_.PrefillTokenLimit(decodes); });
}

EngineCore::~EngineCore() { AbortAll(); }

Status EngineCore::ValidateRequest(const GenerateRequest& r) const {
  const int64_t vocab = model_->config().vocab_size;
  if (r.prompt_token_ids.empty()) return InvalidArgumentError("the prompt is empty");
  for (int32_t t : r.prompt_token_ids) {
    if (t < 0 || t >= vocab) {
      return InvalidArgumentError("prompt token id {} is outside the vocabulary [0, {})", t, vocab);
    }
  }
  TS_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling, vocab, options_.max_top_logprobs));
  if (r.prompt_logprobs &&
      (*r.prompt_logprobs < 0 || *r.prompt_logprobs > options_.max_top_logprobs)) {
    return InvalidArgumentError("prompt_logprobs must be in [0, {}], got {}",
                                options_.max_top_logprobs, *r.prompt_logprobs);
  }
  if (r.n < 1 || r.n > 128) return InvalidArgumentError("n must be in [1, 128], got {}", r.n);
  if (r.stop.min_tokens < 0) return InvalidArgumentError("min_tokens must be >= 0");
  if (r.stop.max_tokens && *r.stop.max_tokens < 1) {
    return InvalidArgumentError("max_tokens must be >= 1, got {}", *r.stop.max_tokens);
  }
  for (int32_t t : r.stop.stop_token_ids) {
    if (t < 0 || t >= vocab) return InvalidArgumentError("stop token id {} is out of range", t);
  }
  if (r.grammar && r.grammar->vocab().size() > vocab) {
    return InvalidArgumentError(
        "the grammar's vocabulary ({} tokens) is larger than the model's {}",
        r.grammar->vocab().size(), vocab);
  }
  const int64_t prompt_len = static_cast<int64_t>(r.prompt_token_ids.size());
  if (prompt_len + 1 > limits_.max_model_len) {
    return InvalidArgumentError(
        "the prompt has {} tokens; with at least one generated token that exceeds the "
        "maximum model length of {}",
        prompt_len, limits_.max_model_len);
  }
  const int64_t max_len = std::min<int64_t>(
      limits_.max_model_len, prompt_len + r.stop.max_tokens.value_or(limits_.max_model_len));
  const int64_t blocks_needed = (max_len + options_.block_size - 1) / options_.block_size;
  if (blocks_needed > limits_.num_kv_blocks) {
    return InvalidArgumentError(
        "the request can reach {} tokens, which needs {} KV blocks, but the whole KV cache "
        "has {} blocks ({} tokens); lower max_tokens or raise --kv-cache-memory",
        max_len, blocks_needed, limits_.num_kv_blocks, limits_.num_kv_blocks * options_.block_size);
  }
  return OkStatus();
}

StatusOr<std::shared_ptr<RequestStream>> EngineCore::AddRequest(GenerateRequest request,
                                                                std::shared_ptr<Outbox> outbox,
                                                                int32_t tag) {
  TS_RETURN_IF_ERROR(ValidateRequest(request));
  if (request.request_id.empty()) {
    do {
      request.request_id = fmt::format("req-{}", next_request_number_++);
    } while (requests_.contains(request.request_id));
  } else if (requests_.contains(request.request_id)) {
    return InvalidArgumentError("request id '{}' is already in use", request.request_id);
  }
  if (request.admission_ticket == 0) {
    request.admission_ticket =
        admission_.Register(WorkOfRequest(request, limits_.max_model_len), Clock::now());
  }
  auto stream =
      std::make_shared<RequestStream>(request.request_id, request.n, std::move(outbox), tag);
  AddValidatedRequest(PendingRequest{std::move(request), stream, Clock::now()});
  return stream;
}

void EngineCore::AddValidatedRequest(PendingRequest p) {
  auto req = std::make_unique<RequestState>();
  GenerateRequest& r = p.request;
  req->id = r.request_id;
  req->stream = std::move(p.stream);
  const int32_t prompt_len = static_cast<int32_t>(r.prompt_token_ids.size());
  OutputSpec& spec = req->spec;
  spec.stop = r.stop;
  spec.max_tokens = std::min(limits_.max_model_len - prompt_len,
                             r.stop.max_tokens.value_or(limits_.max_model_len));
  spec.max_model_len = limits_.max_model_len;
  spec.detokenize = r.detokenize && output_.has_text();
  spec.skip_special_tokens = r.skip_special_tokens;
  spec.logprobs = r.sampling.logprobs;
  req->choices_open = r.n;
  req->ticket = r.admission_ticket;
  // Queued work waits in fair-share order (engine/fair_share.h); a ticket already shed has no
  // order and ends at once.
  const std::optional<int64_t> order = admission_.OrderKey(req->ticket);
  const ResolvedSamplingParams params = ResolveSamplingParams(r.sampling, defaults_);
  for (int32_t i = 0; i < r.n; ++i) {
    auto c = std::make_unique<ChoiceState>();
    c->request = req.get();
    c->index = i;
    c->params = params;
    if (params.seed) c->params.seed = *params.seed + static_cast<uint64_t>(i);
    c->sampler = std::make_unique<SamplerState>(c->params, r.prompt_token_ids);
    c->text = output_.NewChoiceText(spec);
    if (r.grammar) c->constraint = std::make_unique<GrammarConstraint>(r.grammar);
    Sequence& seq = c->seq;
    // The choice's first event carries the prompt's values. With prefix caching, siblings wait
    // for choice 0 and then reuse its prompt from the cache: they take its values too, where
    // computing them again cost each choice the prompt's whole prefill and a vocabulary-wide
    // output matmul per prompt token. Without it, a sibling may start first: each computes.
    if (r.prompt_logprobs) {
      c->prompt_top = *r.prompt_logprobs;
      if (i > 0 && blocks_.prefix_caching()) {
        c->takes_choice0_prompt = true;
      } else {
        c->prompt_logprobs.resize(prompt_len - 1);
        seq.needs_prompt_logits = true;
      }
    }
    seq.seq_id = next_seq_id_++;
    seq.priority = r.priority;
    seq.arrival = order.value_or(0);
    seq.cache_salt = r.cache_salt;
    seq.token_ids = r.prompt_token_ids;
    seq.num_prompt_tokens = prompt_len;
    seq.arrival_time = p.arrival;
    seq.waits_for_sibling = i > 0 && blocks_.prefix_caching();
    scheduler_.AddWaiting(&seq);
    by_seq_[&seq] = c.get();
    req->choices.push_back(std::move(c));
  }
  RequestState* added = req.get();
  requests_[req->id] = std::move(req);
  if (!order) {
    FinishRequest(added, FinishReason::kError, ShedStatus());
    CleanUp();
  }
}

void EngineCore::Shed(int64_t ticket) {
  std::vector<RequestState*> shed;
  for (auto& [id, r] : requests_) {
    if (r->ticket != ticket) continue;
    const bool started = std::any_of(r->choices.begin(), r->choices.end(),
                                     [](const auto& c) { return c->seq.scheduled_once; });
    if (!started) shed.push_back(r.get());
  }
  for (RequestState* r : shed) FinishRequest(r, FinishReason::kError, ShedStatus());
}

void EngineCore::AbortRequest(std::string_view id) {
  auto it = requests_.find(std::string(id));
  if (it == requests_.end()) return;
  FinishRequest(it->second.get(), FinishReason::kAbort, OkStatus());
  CleanUp();
}

void EngineCore::AbortAll() {
  for (auto& [id, r] : requests_) FinishRequest(r.get(), FinishReason::kAbort, OkStatus());
  CleanUp();
}

bool EngineCore::Step() {
  const std::vector<int64_t> shed = admission_.TakeShed(Clock::now());
  if (!shed.empty()) {
    for (int64_t ticket : shed) Shed(ticket);
    CleanUp();
  }
  const SchedulerOutput& out = scheduler_.Schedule();
  if (callbacks_.on_scheduled) callbacks_.on_scheduled(num_waiting());
  if (out.empty()) return false;
  ++num_steps_;
  const Clock::time_point now = Clock::now();
  StepObservation observed;
  progress_.clear();
  for (const ScheduledSequence& s : out.scheduled) {
    const bool decode = s.num_new_tokens == 1 && s.sample;
    (decode ? observed.num_decodes : observed.num_prefill_tokens) += s.num_new_tokens;
    const ChoiceState* c = by_seq_.at(s.seq);
    progress_.push_back(AdmissionController::ProgressOf(c->request->ticket, s, c->index == 0));
    if (!s.seq->scheduled_once) {
      s.seq->scheduled_once = true;
      s.seq->first_scheduled_time = now;
      prompt_tokens_ += s.seq->num_prompt_tokens;
    }
    computed_tokens_ += s.num_new_tokens;
  }
  // Run.
  Status status = runner_.Run(out, options_.block_size);
  if (!status.ok()) {
    TS_LOG_ERROR("forward pass failed: {}", status.ToString());
    for (const ScheduledSequence& s : out.scheduled) {
      ChoiceState* c = by_seq_.at(s.seq);
      if (!c->finished) {
        FinishRequest(c->request, FinishReason::kError,
                      InternalError("the model failed on this batch"));
      }
    }
    CleanUp();
    return true;
  }
  scheduler_.OnStepComputed(out);
  ComputePromptLogprobs(out);
  // Sample. It touches only each choice's own state (RNG, penalties, constraint), so the pool
  // draws for many choices at once; outputs are processed in scheduling order on this thread.
  draws_.clear();
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledSequence& s = out.scheduled[i];
    if (!s.sample) continue;
    ChoiceState* c = by_seq_.at(s.seq);
    const int32_t row = runner_.sequence_logits(static_cast<int32_t>(i)).sample;
    if (!c->finished) draws_.push_back(PendingDraw{c, row, {}});
  }
  pool_.ParallelFor(static_cast<int64_t>(draws_.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) SampleChoice(&draws_[i]);
  });
  // Process outputs.
  if (!draws_.empty() && callbacks_.before_events) callbacks_.before_events();
  for (PendingDraw& d : draws_) Emit(d);
  observed.seconds = std::chrono::duration<double>(Clock::now() - now).count();
  admission_.OnStep(observed, progress_, Clock::now());
  CleanUp();
  return true;
}

void EngineCore::ComputePromptLogprobs(const SchedulerOutput& out) {
  prompt_logits_.clear();
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const SequenceLogits& where = runner_.sequence_logits(static_cast<int32_t>(i));
    if (where.prompt_count == 0) continue;  // nearly always: no lookup per scheduled sequence
    ChoiceState* c = by_seq_.at(out.scheduled[i].seq);
    for (int32_t j = 0; j < where.prompt_count; ++j)
      prompt_logits_.push_back({c, where.prompt_first + j, where.prompt_position + j});
  }
  // Each entry writes only its own slot (a preempted prompt computed again rewrites the same
  // values), so the pool shares the rows.
  pool_.ParallelFor(static_cast<int64_t>(prompt_logits_.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const PromptLogit& p = prompt_logits_[i];
      const int32_t token = p.choice->seq.token_ids[p.position + 1];
      p.choice->prompt_logprobs[p.position] =
          PromptTokenLogprobs(runner_.logits(p.row), token, p.choice->prompt_top);
    }
  });
}

void EngineCore::SampleChoice(PendingDraw* d) {
  ChoiceState* c = d->choice;
  const OutputSpec& spec = c->request->spec;
  const int32_t generated = c->seq.num_generated();
  d->sample = SampleWithConstraint(runner_.logits(d->row), c->params, *c->sampler,
                                   output_.BannedTokens(spec, generated), c->constraint.get(),
                                   spec.max_tokens - generated);
}

void EngineCore::Emit(PendingDraw& d) {
  ChoiceState* c = d.choice;
  if (c->finished) return;
  if (d.sample.mask_seconds >= 0) {
    mask_seconds_sum_ += d.sample.mask_seconds;
    ++num_masks_;
  }
  if (!d.sample.error.ok()) {
    FinishChoice(c, FinishReason::kError, std::move(d.sample.error), RequestEvent{});
    return;
  }
  Sequence& seq = c->seq;
  seq.token_ids.push_back(d.sample.result.token_id);
  ++generation_tokens_;
  if (seq.num_generated() == 1) {
    seq.first_token_time = Clock::now();
    if (c->index == 0) {
      for (auto& sibling : c->request->choices) {
        sibling->seq.waits_for_sibling = false;
        if (sibling->takes_choice0_prompt) {
          sibling->prompt_logprobs = c->prompt_logprobs;  // before c's event takes them
          sibling->takes_choice0_prompt = false;
        }
      }
    }
  }
  TokenOutput o =
      output_.ProcessToken(c->request->spec, seq, d.sample.result,
                           c->constraint && c->constraint->IsTerminated(), c->text.get());
  o.event.index = c->index;
  if (c->prompt_top >= 0 && !c->prompt_logprobs_sent) {
    o.event.prompt_logprobs = std::move(c->prompt_logprobs);
    c->prompt_logprobs_sent = true;
    seq.needs_prompt_logits = false;
  }
  if (o.finish == FinishReason::kNone) {
    if (!c->request->stream->Push(std::move(o.event))) {
      // Its reader has fallen behind by the outbox's limit (a client that stopped reading its
      // stream): stop computing for it, as for a client that left.
      FinishRequest(c->request, FinishReason::kAbort,
                    ResourceExhaustedError("the client stopped reading its stream"));
    }
  } else {
    FinishChoice(c, o.finish, OkStatus(), std::move(o.event));
  }
}

void EngineCore::FinishChoice(ChoiceState* c, FinishReason reason, Status error,
                              RequestEvent event) {
  Sequence& seq = c->seq;
  RequestState* req = c->request;
  const ChoiceUsage usage = OutputProcessor::Usage(seq, Clock::now());
  queue_time_sum_ += usage.queue_time_s;
  prefill_time_sum_ += usage.prefill_time_s;
  decode_time_sum_ += usage.decode_time_s;
  ++finished_[static_cast<int>(reason)];
  event.index = c->index;
  event.finish_reason = reason;
  event.error = std::move(error);
  event.usage = usage;
  scheduler_.Finish(&seq);
  admission_.OnChoiceFinished(req->ticket, seq.num_generated(),
                              reason == FinishReason::kStop || reason == FinishReason::kLength,
                              Clock::now());
  c->finished = true;
  // Choice 0 ended before computing the prompt: its siblings stop waiting for it, and compute
  // the prompt's values they were to take from it.
  if (c->index == 0) {
    for (auto& sibling : req->choices) {
      sibling->seq.waits_for_sibling = false;
      if (sibling->takes_choice0_prompt) {
        sibling->takes_choice0_prompt = false;
        sibling->prompt_logprobs.resize(sibling->seq.num_prompt_tokens - 1);
        sibling->seq.needs_prompt_logits = true;
      }
    }
  }
  // Posted by CleanUp, once the finish is counted in what the loop publishes.
  held_finals_.emplace_back(req->stream.get(), std::move(event));
  if (--req->choices_open == 0) done_.push_back(req->id);
}

void EngineCore::FinishRequest(RequestState* req, FinishReason reason, const Status& error) {
  for (auto& c : req->choices) {
    if (!c->finished) FinishChoice(c.get(), reason, error, RequestEvent{});
  }
}

void EngineCore::CleanUp() {
  if (!held_finals_.empty() && callbacks_.before_events) callbacks_.before_events();
  // A final event is posted whatever the backlog (the choice ends here either way).
  for (auto& [stream, event] : held_finals_) (void)stream->Push(std::move(event));
  held_finals_.clear();
  for (const std::string& id : done_) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    for (auto& c : it->second->choices) by_seq_.erase(&c->seq);
    requests_.erase(it);
    if (callbacks_.on_request_released) callbacks_.on_request_released(id);
  }
  done_.clear();
}

EngineStats EngineCore::Stats() const {
  EngineStats s;
  s.num_running = static_cast<int64_t>(scheduler_.running().size());
  s.num_waiting = static_cast<int64_t>(scheduler_.waiting().size());
  s.kv_blocks_total = blocks_.num_blocks();
  s.kv_blocks_used = blocks_.num_used_blocks();
  s.kv_usage = static_cast<double>(s.kv_blocks_used) / std::max<int64_t>(1, s.kv_blocks_total);
  const SchedulerCounters& c = scheduler_.counters();
  s.prefix_cache_queries = c.prefix_cache_queries;
  s.prefix_cache_hits = c.prefix_cache_hits;
  s.num_preemptions = c.preemptions;
  s.prompt_tokens = prompt_tokens_;
  s.computed_tokens = computed_tokens_;
  s.generation_tokens = generation_tokens_;
  s.num_steps = num_steps_;
  s.finished_stop = finished_[static_cast<int>(FinishReason::kStop)];
  s.finished_length = finished_[static_cast<int>(FinishReason::kLength)];
  s.finished_abort = finished_[static_cast<int>(FinishReason::kAbort)];
  s.finished_error = finished_[static_cast<int>(FinishReason::kError)];
  s.requests_finished = s.finished_stop + s.finished_length + s.finished_abort + s.finished_error;
  s.queue_time_s_sum = queue_time_sum_;
  s.prefill_time_s_sum = prefill_time_sum_;
  s.decode_time_s_sum = decode_time_sum_;
  s.structured_masks = num_masks_;
  s.structured_mask_seconds_sum = mask_seconds_sum_;
  return s;
}

StatusOr<std::unique_ptr<EngineCore>> EngineCore::Create(std::shared_ptr<Model> model,
                                                         const EngineOptions& options,
                                                         const GenerationDefaults& defaults,
                                                         TokenText text) {
  if (model == nullptr) return InvalidArgumentError("no model");
  if (options.max_num_seqs < 1) return InvalidArgumentError("max_num_seqs must be >= 1");
  if (options.max_num_batched_tokens < 1) {
    return InvalidArgumentError("max_num_batched_tokens must be >= 1");
  }
  if (options.block_size < 1 || options.block_size > 1024) {
    return InvalidArgumentError("block_size must be in [1, 1024], got {}", options.block_size);
  }
  if (options.max_queue_len < 1) return InvalidArgumentError("max_queue_len must be >= 1");
  if (!(options.max_step_ms >= 0)) return InvalidArgumentError("max_step_ms must be >= 0");
  if (options.max_model_len < 0) return InvalidArgumentError("max_model_len must be >= 0");
  const ModelConfig& config = model->config();
  EngineLimits limits;
  limits.max_model_len = options.max_model_len > 0
                             ? options.max_model_len
                             : static_cast<int32_t>(config.max_position_embeddings);
  if (limits.max_model_len > config.max_position_embeddings) {
    return InvalidArgumentError("max_model_len {} exceeds the model's {} positions",
                                limits.max_model_len, config.max_position_embeddings);
  }
  int64_t budget = EngineOptions::kDefaultKvCacheBytes;
  if (options.kv_cache_memory_bytes > 0) {
    budget = options.kv_cache_memory_bytes;
  } else if (options.memory_utilization > 0) {
    TS_ASSIGN_OR_RETURN(budget, KvCache::BytesFromMemoryUtilization(options.memory_utilization));
  }
  TS_ASSIGN_OR_RETURN(KvCache kv,
                      KvCache::Create(config, options.block_size, options.kv_cache_dtype, budget));
  limits.num_kv_blocks = kv.num_blocks();
  limits.kv_cache_bytes = kv.bytes();
  limits.threads = options.threads > 0
                       ? options.threads
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::unique_ptr<EngineCore>(
      new EngineCore(std::move(model), options, limits, defaults, std::move(text), std::move(kv)));
}

}  // namespace tinyserve
