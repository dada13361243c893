// The engine's synchronous core: every request, sequence, the scheduler, the paged KV cache
// and the model, advanced one Step() at a time (schedule -> run -> sample -> process outputs),
// as vLLM's EngineCore and nano-vllm's LLMEngine.step(). No thread of its own: the serving
// Engine drives it from its loop thread; tests, `tinyserve generate` and `bench throughput`
// call Step() directly. Not thread-safe: one owner thread calls every method, except
// ValidateRequest, which reads only constants and may run on any thread at any time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/admission.h"
#include "engine/block_manager.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/output_processor.h"
#include "engine/request.h"
#include "engine/request_queue.h"
#include "engine/scheduler.h"
#include "engine/token_text.h"
#include "formats/dtype.h"
#include "model/config.h"
#include "model/model.h"
#include "sampling/token_constraint.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace tinyserve {

// Every knob, named after vLLM's flags. Printed at start-up and exported as metrics.
struct EngineOptions {
  int32_t max_num_seqs = 64;              // --max-num-seqs: sequences in one step
  int32_t max_num_batched_tokens = 1024;  // --max-num-batched-tokens: tokens in one step
  int32_t max_model_len = 0;              // --max-model-len: prompt + output; 0 = model's max
  int32_t block_size = 16;                // --block-size: tokens per KV block
  // KV cache size: --kv-cache-memory BYTES wins when > 0, else --memory-utilization FRACTION
  // of MemAvailable (/proc/meminfo) when > 0, else kDefaultKvCacheBytes.
  int64_t kv_cache_memory_bytes = 0;
  double memory_utilization = 0.0;
  DType kv_cache_dtype = DType::kF16;  // --kv-cache-dtype f16|bf16|f32
  bool enable_prefix_caching = true;   // --[no-]enable-prefix-caching
  int32_t max_queue_len = 1024;        // --max-queue-len: submitted, not yet running
  int32_t threads = 0;                 // --threads: compute pool size; 0 = all cores
  int32_t max_top_logprobs = 20;       // largest top_logprobs a request may ask
  // --max-step-ms: steps with running decodes stay within this (prefill chunks shrink); 0 =
  // tokens only. 150 ms: a 16-sequence decode step of Qwen2.5-0.5B Q8_0 on 2 cores takes
  // ~60 ms (ITL p50) and a capped step overshoots its budget by up to ~20% (attention late in
  // a long prompt costs more than the linear step model says), so ITL p99 stays under 3x p50
  // there (200 ms gave 3.8x) while long prompts still get more than half of each step.
  double max_step_ms = 150;

  static constexpr int64_t kDefaultKvCacheBytes = int64_t{2} << 30;
};

// A snapshot for /metrics (counters are totals since start).
struct EngineStats {
  int64_t num_running = 0;  // sequences holding KV blocks
  int64_t num_waiting = 0;  // sequences waiting for admission (incl. preempted), + inbox
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;        // blocks referenced by a live sequence
  double kv_usage = 0.0;             // used / total
  int64_t prefix_cache_queries = 0;  // prompt tokens looked up in the prefix cache
  int64_t prefix_cache_hits = 0;     // of those, tokens found (not computed)
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0;      // prompt tokens of admitted choices
  int64_t computed_tokens = 0;    // tokens run through the model (prefill + decode + recompute)
  int64_t generation_tokens = 0;  // tokens sampled
  int64_t num_steps = 0;
  int64_t requests_finished = 0;  // choices finished, by any reason
  int64_t finished_stop = 0;
  int64_t finished_length = 0;
  int64_t finished_abort = 0;
  int64_t finished_error = 0;
  int64_t requests_rejected = 0;  // Submit errors (queue full, invalid, can never fit)
  // Sums over finished choices (seconds), for averages: see ChoiceUsage.
  double queue_time_s_sum = 0;
  double prefill_time_s_sum = 0;
  double decode_time_s_sum = 0;
  // Structured output: allowed-token masks computed, and the seconds spent on them.
  int64_t structured_masks = 0;
  double structured_mask_seconds_sum = 0;
};

// What EngineCore::Create resolved (useful to print and export).
struct EngineLimits {
  int32_t max_model_len = 0;
  int64_t num_kv_blocks = 0;
  int64_t kv_cache_bytes = 0;
  int32_t threads = 0;
};

class EngineCore {
 public:
  // Sizes and allocates the KV cache and the compute pool. `text` may be empty (then requests
  // get token ids only). Errors: bad options, a cache too small for one block.
  [[nodiscard]] static StatusOr<std::unique_ptr<EngineCore>> Create(
      std::shared_ptr<Model> model, const EngineOptions& options,
      const GenerationDefaults& generation_defaults = {}, TokenText text = {});
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;
  // Live requests end with finish reason abort.
  ~EngineCore();

  // Any thread. The checks a request must pass before it is queued: InvalidArgument for an
  // empty prompt, a token id out of range, bad sampling params, prompt + 1 > max_model_len, a
  // request that could never fit in the KV cache.
  [[nodiscard]] Status ValidateRequest(const GenerateRequest& request) const;

  // Validates and adds a request (an empty id becomes "req-<number>"; a live id is
  // InvalidArgument). Its events reach the returned stream as steps run. `outbox` and `tag`:
  // see RequestStream.
  [[nodiscard]] StatusOr<std::shared_ptr<RequestStream>> AddRequest(
      GenerateRequest request, std::shared_ptr<Outbox> outbox = nullptr, int32_t tag = 0);
  // Adds a request that already passed ValidateRequest, with its stream and arrival time.
  void AddValidatedRequest(PendingRequest pending);
  // Ends every choice of the request now with finish reason abort and frees its blocks.
  // Unknown ids are ignored.
  void AbortRequest(std::string_view request_id);
  void AbortAll();

  // One engine step: first ends queued requests that admission shed (they can no longer meet
  // their deadline), then schedules and runs. False when nothing could be scheduled.
  bool Step();
  // Some request is unfinished.
  bool has_work() const { return scheduler_.has_work(); }
  int64_t num_waiting() const { return static_cast<int64_t>(scheduler_.waiting().size()); }
  EngineStats Stats() const;

  // What the serving loop learns from the core as it happens (both optional; called on the
  // owner thread).
  struct Callbacks {
    // After each step's scheduling, before the forward pass: sequences still waiting (the
    // request queue's length limit counts them).
    std::function<void(int64_t num_waiting)> on_scheduled;
    // A request's choices have all finished and its state is freed: its id may be reused.
    std::function<void(const std::string& request_id)> on_request_released;
    // Before a step posts its tokens, and again once choices have finished and are counted,
    // before their final events are posted: the loop publishes Stats() here, so a client that has
    // read a token of its response finds its request counted as running in /metrics, and one
    // that has read the end finds it counted as finished.
    std::function<void()> before_events;
  };
  void set_callbacks(Callbacks callbacks) { callbacks_ = std::move(callbacks); }

  // Any thread (the controller locks itself): deadline-aware admission and its predictor.
  AdmissionController& admission() { return admission_; }
  const EngineOptions& options() const { return options_; }
  const EngineLimits& limits() const { return limits_; }
  const ModelConfig& model_config() const { return model_->config(); }
  // Tokens that end generation: the model config's and generation_config's EOS ids.
  std::vector<int32_t> eos_token_ids() const { return output_.eos_token_ids(); }

 private:
  struct RequestState;
  struct ChoiceState;
  struct PendingDraw;
  struct PromptLogit;

  EngineCore(std::shared_ptr<Model> model, const EngineOptions& options, const EngineLimits& limits,
             const GenerationDefaults& defaults, TokenText text, KvCache kv);
  // Fills the prompt log-probabilities of the step's prompt positions that asked for them.
  void ComputePromptLogprobs(const SchedulerOutput& out);
  void SampleChoice(PendingDraw* d);
  void Emit(PendingDraw& d);
  void FinishChoice(ChoiceState* c, FinishReason reason, Status error, RequestEvent event);
  void FinishRequest(RequestState* r, FinishReason reason, const Status& error);
  // Ends the requests of an admission ticket that have not started (shed before any work).
  void Shed(int64_t ticket);
  // Posts the held final events, then frees the state of requests whose choices all finished
  // (after the step that used them).
  void CleanUp();

  const std::shared_ptr<Model> model_;
  const EngineOptions options_;
  const EngineLimits limits_;
  const GenerationDefaults defaults_;
  const OutputProcessor output_;
  AdmissionController admission_;
  ThreadPool pool_;
  KvCache kv_;
  BlockManager blocks_;
  Scheduler scheduler_;
  ModelRunner runner_;
  Callbacks callbacks_;

  std::unordered_map<std::string, std::unique_ptr<RequestState>> requests_;
  std::unordered_map<const Sequence*, ChoiceState*> by_seq_;
  std::vector<std::string> done_;
  std::vector<PendingDraw> draws_;
  // Final events of finished choices, held by FinishChoice until CleanUp posts them (after
  // callbacks_.before_events; the streams live until CleanUp frees their requests).
  std::vector<std::pair<RequestStream*, RequestEvent>> held_finals_;
  std::vector<PromptLogit> prompt_logits_;               // scratch of Step
  std::vector<AdmissionController::Progress> progress_;  // scratch of Step
  int64_t next_request_number_ = 0;
  int64_t next_seq_id_ = 0;
  int64_t num_steps_ = 0;
  int64_t prompt_tokens_ = 0;
  int64_t computed_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  int64_t finished_[5] = {};
  double queue_time_sum_ = 0, prefill_time_sum_ = 0, decode_time_sum_ = 0;
  double mask_seconds_sum_ = 0;
  int64_t num_masks_ = 0;
};

}  // namespace tinyserve
