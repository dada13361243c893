// The serving engine: continuous batching over a paged KV cache (chunked prefill, prefix
// caching, preemption by recompute), run by one engine thread that owns the model, the cache
// and every sequence. Submit, Abort and Stats are thread-safe and never wait for a step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/admission.h"
#include "engine/request.h"
#include "engine/request_queue.h"
#include "engine/token_text.h"
#include "formats/dtype.h"
#include "model/config.h"
#include "model/model.h"
#include "util/status.h"

namespace tinyserve {

// Every knob, named after vLLM's flags. Printed at start-up and exported as metrics.
struct EngineOptions {
  int32_t max_num_seqs = 64;             // --max-num-seqs: sequences in one step
  int32_t max_num_batched_tokens = 1024; // --max-num-batched-tokens: tokens in one step
  int32_t max_model_len = 0;             // --max-model-len: prompt + output; 0 = model's max
  int32_t block_size = 16;               // --block-size: tokens per KV block
  // KV cache size: --kv-cache-memory BYTES wins when > 0, else --memory-utilization FRACTION
  // of MemAvailable (/proc/meminfo) when > 0, else kDefaultKvCacheBytes.
  int64_t kv_cache_memory_bytes = 0;
  double memory_utilization = 0.0;
  DType kv_cache_dtype = DType::kF16;    // --kv-cache-dtype f16|bf16|f32
  bool enable_prefix_caching = true;     // --[no-]enable-prefix-caching
  int32_t max_queue_len = 1024;          // --max-queue-len: submitted, not yet running
  int32_t threads = 0;                   // --threads: compute pool size; 0 = all cores
  int32_t max_top_logprobs = 20;         // largest top_logprobs a request may ask
  // --max-step-ms: steps with running decodes stay within this (prefill chunks shrink); 0 =
  // tokens only. 200 ms is ~3x a 16-sequence decode step of Qwen2.5-0.5B Q8_0 on 2 cores,
  // which keeps ITL p99 near 3x p50 there while long prompts still get ~2/3 of each step.
  double max_step_ms = 200;

  static constexpr int64_t kDefaultKvCacheBytes = int64_t{2} << 30;
};

// A snapshot for /metrics (counters are totals since start).
struct EngineStats {
  int64_t num_running = 0;   // sequences holding KV blocks
  int64_t num_waiting = 0;   // sequences waiting for admission (incl. preempted), + inbox
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;  // blocks referenced by a live sequence
  double kv_usage = 0.0;       // used / total
  int64_t prefix_cache_queries = 0;  // prompt tokens looked up in the prefix cache
  int64_t prefix_cache_hits = 0;     // of those, tokens found (not computed)
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0;     // prompt tokens of admitted choices
  int64_t computed_tokens = 0;   // tokens run through the model (prefill + decode + recompute)
  int64_t generation_tokens = 0; // tokens sampled
  int64_t num_steps = 0;
  int64_t requests_finished = 0;     // choices finished, by any reason
  int64_t finished_stop = 0;
  int64_t finished_length = 0;
  int64_t finished_abort = 0;
  int64_t finished_error = 0;
  int64_t requests_rejected = 0;     // Submit errors (queue full, invalid, can never fit)
  // Sums over finished choices (seconds), for averages: see ChoiceUsage.
  double queue_time_s_sum = 0;
  double prefill_time_s_sum = 0;
  double decode_time_s_sum = 0;
  // Structured output: allowed-token masks computed, and the seconds spent on them.
  int64_t structured_masks = 0;
  double structured_mask_seconds_sum = 0;
};

// What Engine::Create resolved (useful to print and export).
struct EngineLimits {
  int32_t max_model_len = 0;
  int64_t num_kv_blocks = 0;
  int64_t kv_cache_bytes = 0;
  int32_t threads = 0;
};

class Engine {
 public:
  // Sizes and allocates the KV cache, starts the engine thread. `text` may be empty (then
  // requests get token ids only). Errors: bad options, a cache too small for one block.
  [[nodiscard]] static StatusOr<std::unique_ptr<Engine>> Create(
      std::shared_ptr<Model> model, const EngineOptions& options,
      const GenerationDefaults& generation_defaults = {}, TokenText text = {});
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Stops the thread; live requests end with finish reason abort.
  ~Engine();

  // Any thread. Validates the request (InvalidArgument: empty prompt, token id out of range,
  // bad sampling params, duplicate live id, prompt + 1 > max_model_len, a request that could
  // never fit in the KV cache); fails with Unavailable at once when the queue is full.
  [[nodiscard]] StatusOr<std::shared_ptr<RequestStream>> Submit(GenerateRequest request);
  // Any thread. Ends every choice of the request with finish reason abort (at the next step
  // boundary; its blocks are freed then). Unknown ids are ignored.
  void Abort(std::string_view request_id);
  // Any thread. Deadline-aware admission and its predictor (see engine/admission.h).
  AdmissionController& admission();
  // Any thread. The snapshot after the last step.
  EngineStats Stats() const;

  const EngineOptions& options() const;
  const EngineLimits& limits() const;
  const ModelConfig& model_config() const;
  // Tokens that end generation: the model config's and generation_config's EOS ids.
  std::vector<int32_t> eos_token_ids() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tinyserve
