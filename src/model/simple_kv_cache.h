// A self-contained paged KV cache and a ForwardBatch builder, for callers without the engine:
// `tinyserve generate`, tools, tests and benchmarks (the engine has its own block manager).
// Not thread-safe; one owner.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/dtype.h"
#include "kernels/attention.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "util/aligned_buffer.h"

namespace tinyserve {

class SimpleKvCache {
 public:
  // num_blocks blocks of block_size tokens per layer, in `dtype` (kF32, kF16, kBF16 or kI8), zeroed.
  SimpleKvCache(const ModelConfig& config, int64_t num_blocks, int32_t block_size, DType dtype);
  std::span<const kernels::PagedKvLayer> layers() const { return layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }

 private:
  int64_t num_blocks_;
  int32_t block_size_;
  std::vector<AlignedBuffer<uint8_t>> storage_;
  std::vector<kernels::PagedKvLayer> layers_;
};

// Appends one sequence to `batch`: `tokens` at positions start_pos.. (the first start_pos are
// already cached), KV slots from `block_table` (which must cover start_pos + tokens.size()),
// and logits for every new token (all_logits) or only the last one. Call Finish after the last
// sequence to lay out the block tables.
class BatchBuilder {
 public:
  explicit BatchBuilder(int32_t block_size) : block_size_(block_size) {}
  void AddSequence(std::span<const int32_t> tokens, int32_t start_pos,
                   std::span<const int32_t> block_table, bool all_logits);
  ForwardBatch Finish();

 private:
  int32_t block_size_;
  ForwardBatch batch_;
  std::vector<std::vector<int32_t>> tables_;
};

}  // namespace tinyserve
