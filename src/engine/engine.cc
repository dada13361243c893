#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "engine/block_manager.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/output_text.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "sampling/sampler.h"
#include "structured/matcher.h"
#include "util/logging.h"
#include "util/thread_pool.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct RequestState;

// A sequence plus what the engine needs to sample and emit for it.
struct EngineSequence {
  Sequence seq;
  RequestState* request = nullptr;
  int32_t index = 0;
  ResolvedSamplingParams params;
  std::unique_ptr<SamplerState> sampler;
  std::unique_ptr<OutputText> text;
  std::unique_ptr<structured::GrammarMatcher> matcher;  // structured output only
  std::vector<uint32_t> mask;  // the matcher's allowed-token bitmask (scratch)
  bool finished = false;
};

struct RequestState {
  std::string id;
  std::shared_ptr<RequestStream> stream;
  StopConditions stop;
  bool detokenize = true;
  bool skip_special_tokens = true;
  int32_t max_tokens = 0;  // effective: also bounded by max_model_len
  int32_t choices_open = 0;
  std::vector<EngineSequence*> choices;
};

}  // namespace

class Engine::Impl {
 public:
  Impl(std::shared_ptr<Model> model, const EngineOptions& options, const EngineLimits& limits,
       const GenerationDefaults& defaults, TokenText text, KvCache kv)
      : model_(std::move(model)),
        options_(options),
        limits_(limits),
        defaults_(defaults),
        text_(std::move(text)),
        pool_(limits.threads),
        kv_(std::move(kv)),
        blocks_(static_cast<int32_t>(kv_.num_blocks()), options.block_size,
                options.enable_prefix_caching),
        scheduler_({options.max_num_seqs, options.max_num_batched_tokens}, &blocks_),
        runner_(model_.get(), kv_.layers(), &pool_),
        queue_(options.max_queue_len) {
    for (int32_t id : model_->config().eos_token_ids) eos_.insert(id);
    for (int32_t id : defaults_.eos_token_ids) eos_.insert(id);
    PublishStats();
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    queue_.Stop();
    thread_.join();
    // The loop is over: this thread now owns the engine state.
    std::vector<PendingRequest> incoming;
    std::vector<std::string> aborts;
    queue_.Take(/*block=*/false, &incoming, &aborts);
    for (PendingRequest& p : incoming) AddRequest(std::move(p));
    std::vector<RequestState*> live;
    for (auto& [id, r] : requests_) live.push_back(r.get());
    for (RequestState* r : live) FinishRequest(r, FinishReason::kAbort, OkStatus());
  }

  StatusOr<std::shared_ptr<RequestStream>> Submit(GenerateRequest request) {
    Status s = Validate(request);
    if (!s.ok()) {
      ++rejected_;
      return s;
    }
    if (request.request_id.empty()) {
      request.request_id = fmt::format("req-{}", next_request_number_.fetch_add(1));
    }
    auto stream = std::make_shared<RequestStream>(request.request_id, request.n);
    PendingRequest pending{std::move(request), stream, Clock::now()};
    s = queue_.Push(std::move(pending));
    if (!s.ok()) {
      ++rejected_;
      return s;
    }
    return stream;
  }

  void Abort(std::string_view id) { queue_.Abort(std::string(id)); }
  EngineStats Stats() const {
    EngineStats s = stats_.Get();
    s.requests_rejected = rejected_.load();
    return s;
  }
  const EngineOptions& options() const { return options_; }
  const EngineLimits& limits() const { return limits_; }
  const ModelConfig& model_config() const { return model_->config(); }
  std::vector<int32_t> eos_token_ids() const { return {eos_.begin(), eos_.end()}; }

 private:
  Status Validate(const GenerateRequest& r) const {
    const int64_t vocab = model_->config().vocab_size;
    if (r.prompt_token_ids.empty()) return InvalidArgumentError("the prompt is empty");
    for (int32_t t : r.prompt_token_ids) {
      if (t < 0 || t >= vocab) {
        return InvalidArgumentError("prompt token id {} is outside the vocabulary [0, {})", t,
                                    vocab);
      }
    }
    TS_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling, vocab, options_.max_top_logprobs));
    if (r.n < 1 || r.n > 128) return InvalidArgumentError("n must be in [1, 128], got {}", r.n);
    if (r.stop.min_tokens < 0) return InvalidArgumentError("min_tokens must be >= 0");
    if (r.stop.max_tokens && *r.stop.max_tokens < 1) {
      return InvalidArgumentError("max_tokens must be >= 1, got {}", *r.stop.max_tokens);
    }
    for (int32_t t : r.stop.stop_token_ids) {
      if (t < 0 || t >= vocab) return InvalidArgumentError("stop token id {} is out of range", t);
    }
    if (r.grammar && r.grammar->vocab().size() > vocab) {
      return InvalidArgumentError("the grammar's vocabulary ({} tokens) is larger than the model's {}",
                                  r.grammar->vocab().size(), vocab);
    }
    const int64_t prompt_len = static_cast<int64_t>(r.prompt_token_ids.size());
    if (prompt_len + 1 > limits_.max_model_len) {
      return InvalidArgumentError(
          "the prompt has {} tokens; with at least one generated token that exceeds the "
          "maximum model length of {}",
          prompt_len, limits_.max_model_len);
    }
    const int64_t max_len =
        std::min<int64_t>(limits_.max_model_len, prompt_len + r.stop.max_tokens.value_or(
                                                                  limits_.max_model_len));
    const int64_t blocks_needed = (max_len + options_.block_size - 1) / options_.block_size;
    if (blocks_needed > limits_.num_kv_blocks) {
      return InvalidArgumentError(
          "the request can reach {} tokens, which needs {} KV blocks, but the whole KV cache "
          "has {} blocks ({} tokens); lower max_tokens or raise --kv-cache-memory",
          max_len, blocks_needed, limits_.num_kv_blocks,
          limits_.num_kv_blocks * options_.block_size);
    }
    return OkStatus();
  }

  void Loop() {
    std::vector<PendingRequest> incoming;
    std::vector<std::string> aborts;
    while (true) {
      incoming.clear();
      aborts.clear();
      queue_.Take(/*block=*/!scheduler_.has_work(), &incoming, &aborts);
      for (PendingRequest& p : incoming) AddRequest(std::move(p));
      if (queue_.stopped()) break;
      for (const std::string& id : aborts) {
        auto it = requests_.find(id);
        if (it != requests_.end()) FinishRequest(it->second.get(), FinishReason::kAbort, OkStatus());
      }
      bool progressed = true;
      if (scheduler_.has_work()) progressed = Step();
      CleanUp();
      PublishStats();
      if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void AddRequest(PendingRequest p) {
    auto req = std::make_unique<RequestState>();
    GenerateRequest& r = p.request;
    req->id = r.request_id;
    req->stream = std::move(p.stream);
    req->stop = r.stop;
    req->detokenize = r.detokenize && !text_.empty();
    req->skip_special_tokens = r.skip_special_tokens;
    const int32_t prompt_len = static_cast<int32_t>(r.prompt_token_ids.size());
    req->max_tokens = std::min(limits_.max_model_len - prompt_len,
                               r.stop.max_tokens.value_or(limits_.max_model_len));
    req->choices_open = r.n;
    const ResolvedSamplingParams params = ResolveSamplingParams(r.sampling, defaults_);
    for (int32_t i = 0; i < r.n; ++i) {
      auto es = std::make_unique<EngineSequence>();
      es->request = req.get();
      es->index = i;
      es->params = params;
      if (params.seed) es->params.seed = *params.seed + static_cast<uint64_t>(i);
      es->sampler = std::make_unique<SamplerState>(es->params, r.prompt_token_ids);
      es->text = std::make_unique<OutputText>(r.stop.stop, r.stop.include_stop_str_in_output);
      if (r.grammar) es->matcher = std::make_unique<structured::GrammarMatcher>(r.grammar);
      Sequence& seq = es->seq;
      seq.seq_id = next_seq_id_++;
      seq.priority = r.priority;
      seq.arrival = seq.seq_id;
      seq.cache_salt = r.cache_salt;
      seq.token_ids = r.prompt_token_ids;
      seq.num_prompt_tokens = prompt_len;
      seq.arrival_time = p.arrival;
      seq.waits_for_sibling = i > 0 && blocks_.prefix_caching();
      req->choices.push_back(es.get());
      scheduler_.AddWaiting(&es->seq);
      by_seq_[&es->seq] = es.get();
      seqs_.push_back(std::move(es));
    }
    requests_[req->id] = std::move(req);
  }

  // Runs one step; false when nothing could be scheduled.
  bool Step() {
    SchedulerOutput out = scheduler_.Schedule();
    queue_.SetEngineWaiting(static_cast<int64_t>(scheduler_.waiting().size()));
    if (out.empty()) return false;
    ++num_steps_;
    const Clock::time_point now = Clock::now();
    for (const ScheduledSequence& s : out.scheduled) {
      if (!s.seq->scheduled_once) {
        s.seq->scheduled_once = true;
        s.seq->first_scheduled_time = now;
        prompt_tokens_ += s.seq->num_prompt_tokens;
      }
      computed_tokens_ += s.num_new_tokens;
    }
    Status status = runner_.Run(out, options_.block_size);
    if (!status.ok()) {
      TS_LOG_ERROR("forward pass failed: {}", status.ToString());
      for (const ScheduledSequence& s : out.scheduled) {
        EngineSequence* es = by_seq_.at(s.seq);
        if (!es->finished) {
          FinishRequest(es->request, FinishReason::kError,
                        InternalError("the model failed on this batch"));
        }
      }
      return true;
    }
    scheduler_.OnStepComputed(out);
    draws_.clear();
    int32_t row = 0;
    for (const ScheduledSequence& s : out.scheduled) {
      if (!s.sample) continue;
      EngineSequence* es = by_seq_.at(s.seq);
      if (!es->finished) {
        PendingDraw& d = draws_.emplace_back();
        d.es = es;
        d.row = row;
      }
      ++row;
    }
    // Sampling touches only each sequence's own state (RNG, penalties, grammar matcher), so the
    // pool draws for many sequences at once; emitting stays in scheduling order on this thread.
    pool_.ParallelFor(static_cast<int64_t>(draws_.size()), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) Draw(&draws_[i], runner_.logits_row(draws_[i].row));
    });
    for (PendingDraw& d : draws_) Emit(d);
    return true;
  }

  // A sampled token waiting to be emitted, or why there is none.
  struct PendingDraw {
    EngineSequence* es = nullptr;
    int32_t row = 0;
    SampleResult result;
    Status error;
    double mask_seconds = -1;  // < 0: no grammar
  };

  // Any pool thread: grammar mask, sampling and the grammar's advance for one sequence.
  void Draw(PendingDraw* d, std::span<float> logits) const {
    EngineSequence* es = d->es;
    const Sequence& seq = es->seq;
    const RequestState* req = es->request;
    const StopConditions& stop = req->stop;
    std::vector<int32_t> banned;
    if (seq.num_generated() < stop.min_tokens) {
      if (!stop.ignore_eos) banned.insert(banned.end(), eos_.begin(), eos_.end());
      banned.insert(banned.end(), stop.stop_token_ids.begin(), stop.stop_token_ids.end());
    }
    std::span<const uint32_t> allowed;
    if (es->matcher) {
      const Clock::time_point t0 = Clock::now();
      es->mask.resize(es->matcher->grammar().vocab().mask_words());
      es->matcher->FillNextTokenBitmask(es->mask.data(), req->max_tokens - seq.num_generated());
      d->mask_seconds = Seconds(t0, Clock::now());
      allowed = es->mask;
      if (std::all_of(es->mask.begin(), es->mask.end(), [](uint32_t w) { return w == 0; })) {
        // The budget logic keeps a way to close open: no allowed token is a matcher bug, or a
        // grammar too ambiguous to follow within the matcher's work bounds (its error says so).
        d->error = es->matcher->error().ok() ? InternalError("the grammar allows no next token")
                                             : es->matcher->error();
        return;
      }
    }
    d->result = Sample(logits, es->params, *es->sampler, banned, allowed);
    if (es->matcher && !es->matcher->AcceptToken(d->result.token_id)) {
      d->error = InternalError("sampled token {} outside the grammar's mask", d->result.token_id);
    }
  }

  void Emit(PendingDraw& d) {
    EngineSequence* es = d.es;
    if (es->finished) return;
    Sequence& seq = es->seq;
    RequestState* req = es->request;
    const StopConditions& stop = req->stop;
    if (d.mask_seconds >= 0) {
      mask_seconds_sum_ += d.mask_seconds;
      ++num_masks_;
    }
    if (!d.error.ok()) {
      FinishChoice(es, FinishReason::kError, std::move(d.error), RequestEvent{});
      return;
    }
    const SampleResult& r = d.result;
    const int32_t token = r.token_id;
    seq.token_ids.push_back(token);
    ++generation_tokens_;
    if (seq.num_generated() == 1) {
      seq.first_token_time = Clock::now();
      if (es->index == 0) {
        for (EngineSequence* sibling : req->choices) sibling->seq.waits_for_sibling = false;
      }
    }
    RequestEvent event;
    event.index = es->index;
    event.token_ids.push_back(token);
    if (es->params.logprobs) {
      TokenLogprobs lp;
      lp.chosen = {token, r.logprob};
      for (const auto& [id, value] : r.top_logprobs) lp.top.push_back({id, value});
      event.logprobs.push_back(std::move(lp));
    }
    const bool check_stop = seq.num_generated() >= stop.min_tokens;
    FinishReason finish = FinishReason::kNone;
    bool stopped_by_string = false;
    if (es->matcher && es->matcher->IsTerminated()) {
      finish = FinishReason::kStop;  // the grammar accepted EOS: the output is complete
    } else if (check_stop && !stop.ignore_eos && eos_.contains(token)) {
      finish = FinishReason::kStop;
    } else if (check_stop && std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(),
                                       token) != stop.stop_token_ids.end()) {
      finish = FinishReason::kStop;
      event.stop_reason = std::to_string(token);
    } else if (req->detokenize) {
      const bool hidden = req->skip_special_tokens && text_.is_special && text_.is_special(token);
      OutputText::Update u = es->text->Append(hidden ? std::string() : text_.token_bytes(token),
                                              check_stop);
      event.text = std::move(u.delta);
      if (u.stopped) {
        finish = FinishReason::kStop;
        event.stop_reason = std::move(u.stop_string);
        stopped_by_string = true;
      }
    }
    if (finish == FinishReason::kNone &&
        (seq.num_generated() >= req->max_tokens || seq.num_tokens() >= limits_.max_model_len)) {
      finish = FinishReason::kLength;
    }
    if (finish == FinishReason::kNone) {
      req->stream->Push(std::move(event));
      return;
    }
    if (req->detokenize && !stopped_by_string) event.text += es->text->Flush();
    FinishChoice(es, finish, OkStatus(), std::move(event));
  }

  void FinishChoice(EngineSequence* es, FinishReason reason, Status error, RequestEvent event) {
    Sequence& seq = es->seq;
    RequestState* req = es->request;
    const Clock::time_point now = Clock::now();
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
    queue_time_sum_ += usage.queue_time_s;
    prefill_time_sum_ += usage.prefill_time_s;
    decode_time_sum_ += usage.decode_time_s;
    ++finished_[static_cast<int>(reason)];
    event.index = es->index;
    event.finish_reason = reason;
    event.error = std::move(error);
    event.usage = usage;
    scheduler_.Finish(&seq);
    es->finished = true;
    req->stream->Push(std::move(event));
    if (--req->choices_open == 0) done_.push_back(req->id);
  }

  void FinishRequest(RequestState* req, FinishReason reason, const Status& error) {
    for (EngineSequence* es : req->choices) {
      if (!es->finished) FinishChoice(es, reason, error, RequestEvent{});
    }
  }

  // Frees the state of requests whose choices all finished (after the step that used them).
  void CleanUp() {
    for (const std::string& id : done_) {
      auto it = requests_.find(id);
      if (it == requests_.end()) continue;
      for (EngineSequence* es : it->second->choices) by_seq_.erase(&es->seq);
      std::erase_if(seqs_, [&](const std::unique_ptr<EngineSequence>& es) {
        return es->request == it->second.get();
      });
      requests_.erase(it);
      queue_.Release(id);
    }
    done_.clear();
  }

  void PublishStats() {
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
    stats_.Set(s);
    queue_.SetEngineWaiting(s.num_waiting);
  }

  const std::shared_ptr<Model> model_;
  const EngineOptions options_;
  const EngineLimits limits_;
  const GenerationDefaults defaults_;
  const TokenText text_;
  std::unordered_set<int32_t> eos_;
  ThreadPool pool_;
  KvCache kv_;
  BlockManager blocks_;
  Scheduler scheduler_;
  ModelRunner runner_;
  RequestQueue queue_;
  Published<EngineStats> stats_;
  std::atomic<int64_t> next_request_number_{0};
  std::atomic<int64_t> rejected_{0};

  // Engine thread only.
  std::unordered_map<std::string, std::unique_ptr<RequestState>> requests_;
  std::vector<std::unique_ptr<EngineSequence>> seqs_;
  std::unordered_map<const Sequence*, EngineSequence*> by_seq_;
  std::vector<std::string> done_;
  std::vector<PendingDraw> draws_;
  int64_t next_seq_id_ = 0;
  int64_t num_steps_ = 0;
  int64_t prompt_tokens_ = 0;
  int64_t computed_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  int64_t finished_[5] = {};
  double queue_time_sum_ = 0, prefill_time_sum_ = 0, decode_time_sum_ = 0;
  double mask_seconds_sum_ = 0;
  int64_t num_masks_ = 0;
  std::thread thread_;  // last: starts after everything above exists
};

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<Model> model,
                                                 const EngineOptions& options,
                                                 const GenerationDefaults& generation_defaults,
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
  TS_ASSIGN_OR_RETURN(KvCache kv, KvCache::Create(config, options.block_size,
                                                  options.kv_cache_dtype, budget));
  limits.num_kv_blocks = kv.num_blocks();
  limits.kv_cache_bytes = kv.bytes();
  limits.threads = options.threads > 0
                       ? options.threads
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto impl = std::make_unique<Impl>(std::move(model), options, limits, generation_defaults,
                                     std::move(text), std::move(kv));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(GenerateRequest request) {
  return impl_->Submit(std::move(request));
}
void Engine::Abort(std::string_view request_id) { impl_->Abort(request_id); }
EngineStats Engine::Stats() const { return impl_->Stats(); }
const EngineOptions& Engine::options() const { return impl_->options(); }
const EngineLimits& Engine::limits() const { return impl_->limits(); }
const ModelConfig& Engine::model_config() const { return impl_->model_config(); }
std::vector<int32_t> Engine::eos_token_ids() const { return impl_->eos_token_ids(); }

}  // namespace tinyserve
