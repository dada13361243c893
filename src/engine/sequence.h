// One choice of one request as the engine tracks it: its tokens, how many are in the KV cache,
// its blocks and its scheduling state. State only; the scheduler and the engine move it.
// Engine thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/block_manager.h"

namespace tinyserve {

enum class SequenceStatus { kWaiting, kRunning, kFinished };

struct Sequence {
  using Clock = std::chrono::steady_clock;

  int64_t seq_id = 0;
  int32_t priority = 0;  // lower first
  int64_t arrival = 0;   // submission order (ties within a priority)
  int64_t admitted = 0;  // order of the latest admission (preemption picks the largest)
  std::string cache_salt;
  std::vector<int32_t> token_ids;  // prompt, then generated tokens
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;  // tokens whose K/V are in the cache
  BlockTable block_table;
  SequenceStatus status = SequenceStatus::kWaiting;
  // n > 1: choices after the first wait until the first has computed the prompt, then reuse
  // its blocks through the prefix cache.
  bool waits_for_sibling = false;
  // Prompt log-probabilities are asked and not yet delivered: the prompt is computed whole
  // (no prefix-cache reuse) in chunks of at most kMaxPromptLogprobChunk tokens, each chunk with
  // logits for its prompt positions (engine/model_runner.h).
  bool needs_prompt_logits = false;

  // Accounting.
  int32_t num_cached_prompt_tokens = -1;  // at first admission; -1 = not admitted yet
  int32_t num_preemptions = 0;
  Clock::time_point arrival_time{};
  Clock::time_point first_scheduled_time{};
  Clock::time_point first_token_time{};
  bool scheduled_once = false;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_generated() const { return num_tokens() - num_prompt_tokens; }
  int32_t num_uncomputed() const { return num_tokens() - num_computed_tokens; }
  std::span<const int32_t> tokens() const { return token_ids; }
};

}  // namespace tinyserve
