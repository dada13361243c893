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

// The flat batch for `out` (pure function; tests check it directly).
ForwardBatch BuildForwardBatch(const SchedulerOutput& out, int32_t block_size);

class ModelRunner {
 public:
  ModelRunner(Model* model, std::span<const kernels::PagedKvLayer> kv_layers, ThreadPool* pool);

  // Computes the step. On success logits_row(i) is the logits of the i-th scheduled sequence
  // with sample == true (in scheduling order).
  [[nodiscard]] Status Run(const SchedulerOutput& out, int32_t block_size);
  std::span<float> logits_row(int32_t i);

 private:
  Model* const model_;
  const std::span<const kernels::PagedKvLayer> kv_layers_;
  ThreadPool* const pool_;
  const int64_t vocab_size_;
  ForwardBatch batch_;
  AlignedBuffer<float> logits_;  // [>= num_sampled_rows, vocab_size]
};

}  // namespace tinyserve
