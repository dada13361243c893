// Scheduling policy (vLLM V1): each step spends a token budget on the running sequences'
// decode tokens first, then on prefill chunks (partly prefilled sequences, then waiting ones in
// priority and arrival order), within max_num_seqs. When blocks run out the most recently
// admitted running sequence (lowest priority first) is preempted: its blocks are freed and it
// waits to be recomputed, reusing its cached prefix. Engine thread only; owns no sequences.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "engine/block_manager.h"
#include "engine/request.h"
#include "engine/sequence.h"

namespace tinyserve {

struct SchedulerConfig {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 1024;
};

struct ScheduledSequence {
  Sequence* seq = nullptr;
  int32_t num_new_tokens = 0;  // tokens from seq->num_computed_tokens to compute this step
  // The step computes the sequence's last known token, so a new token is sampled.
  bool sample = false;
};

struct SchedulerOutput {
  std::vector<ScheduledSequence> scheduled;  // decodes first, then prefill chunks
  std::vector<Sequence*> preempted;          // sequences preempted while building this step
  int32_t num_tokens = 0;
  bool empty() const { return scheduled.empty(); }
};

struct SchedulerCounters {
  int64_t prefix_cache_queries = 0;  // tokens looked up at admission
  int64_t prefix_cache_hits = 0;     // tokens found
  int64_t preemptions = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager* blocks);

  // The step-time budget (engine/admission.h): the most prefill tokens a step with
  // `num_decodes` decodes may take. Unset: only max_num_batched_tokens.
  void SetPrefillTokenLimit(std::function<int32_t(int32_t num_decodes)> limit) {
    prefill_token_limit_ = std::move(limit);
  }
  // Adds a sequence to the waiting queue (by priority, then arrival).
  void AddWaiting(Sequence* seq);
  // Builds the next step. Sequences it lists stay valid until Finish. The output lives in the
  // scheduler until the next Schedule, which reuses its storage: a step no larger than an
  // earlier one allocates nothing.
  const SchedulerOutput& Schedule();
  // After the forward pass of `out`: advances num_computed_tokens and registers the newly
  // full blocks in the prefix cache. Call before appending sampled tokens.
  void OnStepComputed(const SchedulerOutput& out);
  // Removes `seq` from whichever queue holds it and frees its blocks.
  void Finish(Sequence* seq);

  const std::deque<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  const SchedulerCounters& counters() const { return counters_; }

 private:
  // num_new, capped by the step's remaining prompt-logit rows for a sequence that needs its
  // prompt's logits (Sequence::needs_prompt_logits).
  static int32_t ChunkLimit(const Sequence& seq, int32_t num_new, int32_t prompt_logit_rows);
  void Preempt(Sequence* seq);
  // The running sequence to preempt next: the largest (priority, admitted).
  Sequence* PickVictim() const;

  const SchedulerConfig config_;
  BlockManager* const blocks_;
  std::function<int32_t(int32_t)> prefill_token_limit_;
  std::deque<Sequence*> running_;  // in admission order
  std::deque<Sequence*> waiting_;  // by (priority, arrival)
  SchedulerOutput out_;            // Schedule's, reused
  std::vector<Sequence*> order_;   // Schedule's running sequences in step order, reused
  int64_t next_admission_ = 0;
  SchedulerCounters counters_;
};

}  // namespace tinyserve
