#include "engine/scheduler.h"

#include <algorithm>

#include "util/check.h"

namespace tinyserve {

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager* blocks)
    : config_(config), blocks_(blocks) {}

void Scheduler::AddWaiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  auto it = std::upper_bound(waiting_.begin(), waiting_.end(), seq, [](Sequence* a, Sequence* b) {
    return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
  });
  waiting_.insert(it, seq);
}

Sequence* Scheduler::PickVictim() const {
  Sequence* victim = nullptr;
  for (Sequence* s : running_) {
    if (victim == nullptr || s->priority > victim->priority ||
        (s->priority == victim->priority && s->admitted > victim->admitted)) {
      victim = s;
    }
  }
  return victim;
}

int32_t Scheduler::ChunkLimit(const Sequence& seq, int32_t num_new, int32_t prompt_logit_rows) {
  return seq.needs_prompt_logits ? std::min(num_new, prompt_logit_rows) : num_new;
}

void Scheduler::Preempt(Sequence* seq) {
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  blocks_->Free(&seq->block_table);
  seq->num_computed_tokens = 0;
  ++seq->num_preemptions;
  ++counters_.preemptions;
  AddWaiting(seq);
}

const SchedulerOutput& Scheduler::Schedule() {
  SchedulerOutput& out = out_;
  out.scheduled.clear();
  out.preempted.clear();
  out.num_tokens = 0;
  int32_t budget = config_.max_num_batched_tokens;
  // Prompt positions whose logits this step may return (Sequence::needs_prompt_logits), over
  // all sequences: the logits buffer holds [rows, vocab] floats.
  int32_t prompt_logit_rows = kMaxPromptLogprobChunk;

  // Running sequences: decodes (one token left) first, then partial prefills; each in
  // admission order (a stable partition, in two passes: std::stable_partition allocates a
  // buffer every call).
  order_.clear();
  for (Sequence* seq : running_)
    if (seq->num_uncomputed() <= 1) order_.push_back(seq);
  for (Sequence* seq : running_)
    if (seq->num_uncomputed() > 1) order_.push_back(seq);
  // Prefill chunks (everything after the decodes) also fit the step-time budget.
  int32_t num_decodes = 0;
  bool prefill_capped = false;
  auto cap_prefill = [&] {
    if (prefill_capped || !prefill_token_limit_) return;
    prefill_capped = true;
    budget = std::min(budget, std::max(0, prefill_token_limit_(num_decodes)));
  };
  for (Sequence* seq : order_) {
    if (seq->num_uncomputed() > 1) cap_prefill();
    if (budget == 0) break;
    if (seq->status != SequenceStatus::kRunning) continue;  // preempted in this loop
    const int32_t num_new =
        std::min(ChunkLimit(*seq, seq->num_uncomputed(), prompt_logit_rows), budget);
    if (num_new <= 0) continue;
    bool fits = true;
    while (!blocks_->Allocate(&seq->block_table, {}, seq->num_computed_tokens + num_new)) {
      Sequence* victim = PickVictim();
      TS_CHECK(victim != nullptr);
      // A victim scheduled earlier in this step gives its tokens back.
      auto it = std::find_if(out.scheduled.begin(), out.scheduled.end(),
                             [&](const ScheduledSequence& s) { return s.seq == victim; });
      if (it != out.scheduled.end()) {
        budget += it->num_new_tokens;
        out.num_tokens -= it->num_new_tokens;
        out.scheduled.erase(it);
      }
      Preempt(victim);
      out.preempted.push_back(victim);
      if (victim == seq) {
        fits = false;
        break;
      }
    }
    if (!fits) continue;
    out.scheduled.push_back(
        {seq, num_new, seq->num_computed_tokens + num_new == seq->num_tokens()});
    if (seq->needs_prompt_logits) prompt_logit_rows -= num_new;
    out.num_tokens += num_new;
    budget -= num_new;
    if (!prefill_capped) ++num_decodes;
  }
  cap_prefill();

  // Waiting sequences, in (priority, arrival) order; none while this step had to preempt
  // (vLLM: the freed blocks go to the preempted sequences first).
  if (out.preempted.empty()) {
    for (auto it = waiting_.begin(); it != waiting_.end() && budget > 0;) {
      if (static_cast<int32_t>(running_.size()) >= config_.max_num_seqs) break;
      Sequence* seq = *it;
      if (seq->waits_for_sibling) {
        ++it;
        continue;
      }
      if (seq->needs_prompt_logits && prompt_logit_rows == 0) {
        ++it;  // this step's prompt-logit rows are taken
        continue;
      }
      // A prompt whose log-probabilities are asked is computed whole: cached blocks have no
      // logits.
      std::vector<int32_t> cached = seq->needs_prompt_logits
                                        ? std::vector<int32_t>{}
                                        : blocks_->FindCachedPrefix(seq->tokens(), seq->cache_salt);
      const int32_t num_cached = static_cast<int32_t>(cached.size()) * blocks_->block_size();
      const int32_t num_new =
          std::min(ChunkLimit(*seq, seq->num_tokens() - num_cached, prompt_logit_rows), budget);
      if (!blocks_->Allocate(&seq->block_table, cached, num_cached + num_new)) break;
      if (blocks_->prefix_caching()) {
        counters_.prefix_cache_queries += seq->num_tokens();
        counters_.prefix_cache_hits += num_cached;
      }
      if (seq->num_cached_prompt_tokens < 0) {
        seq->num_cached_prompt_tokens = std::min(num_cached, seq->num_prompt_tokens);
      }
      seq->num_computed_tokens = num_cached;
      seq->status = SequenceStatus::kRunning;
      seq->admitted = next_admission_++;
      running_.push_back(seq);
      it = waiting_.erase(it);
      out.scheduled.push_back({seq, num_new, num_cached + num_new == seq->num_tokens()});
      if (seq->needs_prompt_logits) prompt_logit_rows -= num_new;
      out.num_tokens += num_new;
      budget -= num_new;
    }
  }
  return out;
}

void Scheduler::OnStepComputed(const SchedulerOutput& out) {
  for (const ScheduledSequence& s : out.scheduled) {
    Sequence* seq = s.seq;
    seq->num_computed_tokens += s.num_new_tokens;
    blocks_->RegisterComputed(&seq->block_table, seq->tokens(), seq->num_computed_tokens,
                              seq->cache_salt);
  }
}

void Scheduler::Finish(Sequence* seq) {
  if (auto it = std::find(running_.begin(), running_.end(), seq); it != running_.end()) {
    running_.erase(it);
  } else if (auto w = std::find(waiting_.begin(), waiting_.end(), seq); w != waiting_.end()) {
    waiting_.erase(w);
  }
  blocks_->Free(&seq->block_table);
  seq->status = SequenceStatus::kFinished;
}

}  // namespace tinyserve
