// What the engine drives: a causal LM that computes one flat batch (model/forward_batch.h)
// against a paged KV cache it does not own. Implementations: Qwen2Model (fast path) and
// fakes in engine tests. Forward is called from one thread at a time (the engine thread).
#pragma once

#include <span>

#include "kernels/attention.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace tinyserve {

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  // Computes every token of `batch`, storing each token's K and V at its slot in `kv_layers`
  // (one per layer, [num_layers]), and writes logits for batch.logit_rows into `logits`
  // ([logit_rows.size(), vocab_size], row i for logit_rows[i]). Errors: malformed batch
  // (token id out of range, inconsistent shapes, slot out of the cache).
  [[nodiscard]] virtual Status Forward(const ForwardBatch& batch,
                                       std::span<const kernels::PagedKvLayer> kv_layers,
                                       float* logits, ThreadPool* pool) = 0;
};

}  // namespace tinyserve
