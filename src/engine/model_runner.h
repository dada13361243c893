// Turns one scheduled step into the model's flat batch (token ids, positions, KV slots, block
// tables, rows that need logits), runs the forward pass and keeps the logits rows for sampling.
// Engine thread only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/scheduler.h"
#include "kernels/attention.h"
#include "model/forward_batch.h"
#include "model/model.h"
#include "util/aligned_buffer.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace tinyserve {

// Where one scheduled sequence's rows are in a step's logits.
struct SequenceLogits {
  int32_t sample = -1;  // the row of its last token when it samples; -1: it does not
  // Sequence::needs_prompt_logits: rows prompt_first.. hold the logits at positions
  // prompt_position.. (prompt_count of them, each predicting the prompt token after it).
  int32_t prompt_first = 0;
  int32_t prompt_count = 0;
  int32_t prompt_position = 0;
};

// The flat batch for `out` (pure function; tests check it directly), and where each scheduled
// sequence's logits will be (`logits`, optional: one entry per out.scheduled).
ForwardBatch BuildForwardBatch(const SchedulerOutput& out, int32_t block_size,
                               std::vector<SequenceLogits>* logits = nullptr);
// The same into *batch, whose previous contents it replaces: a batch (and `logits`) reused step
// after step keeps its vectors' storage, so a step no larger than an earlier one allocates
// nothing.
void BuildForwardBatch(const SchedulerOutput& out, int32_t block_size, ForwardBatch* batch,
                       std::vector<SequenceLogits>* logits = nullptr);

class ModelRunner {
 public:
  ModelRunner(Model* model, std::span<const kernels::PagedKvLayer> kv_layers, ThreadPool* pool);

  // Computes the step. On success sequence_logits(i) says where the i-th scheduled sequence's
  // rows are, and logits(row) is one of them.
  [[nodiscard]] Status Run(const SchedulerOutput& out, int32_t block_size);
  const SequenceLogits& sequence_logits(int32_t i) const { return sequence_logits_[i]; }
  std::span<float> logits(int32_t row);

 private:
  Model* const model_;
  const std::span<const kernels::PagedKvLayer> kv_layers_;
  ThreadPool* const pool_;
  const int64_t vocab_size_;
  ForwardBatch batch_;
  std::vector<SequenceLogits> sequence_logits_;
  AlignedBuffer<float> logits_;  // [>= batch_.logit_rows.size(), vocab_size]
};

}  // namespace tinyserve
