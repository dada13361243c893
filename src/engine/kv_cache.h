// The KV cache storage: for every layer, K and V arrays of [num_blocks, block_size,
// num_kv_heads, head_dim] in f32, f16, bf16 or i8 (int8 with a binary16 scale per slot and KV
// head, about half the bytes of f16), handed to the model as PagedKvLayer views.
// Sized once at start-up from a byte budget. Engine thread only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/dtype.h"
#include "kernels/attention.h"
#include "model/config.h"
#include "util/aligned_buffer.h"
#include "util/status.h"

namespace tinyserve {

class KvCache {
 public:
  // Bytes one block takes over all layers (K and V).
  static int64_t BlockBytes(const ModelConfig& config, int32_t block_size, DType dtype);
  // Allocates as many blocks as fit in `budget_bytes`. Errors: unsupported dtype, a budget
  // below one block.
  [[nodiscard]] static StatusOr<KvCache> Create(const ModelConfig& config, int32_t block_size,
                                                DType dtype, int64_t budget_bytes);
  // The budget for --memory-utilization: `fraction` of MemAvailable in /proc/meminfo.
  [[nodiscard]] static StatusOr<int64_t> BytesFromMemoryUtilization(double fraction);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t bytes() const { return static_cast<int64_t>(storage_.size()); }
  std::span<const kernels::PagedKvLayer> layers() const { return layers_; }

 private:
  int64_t num_blocks_ = 0;
  AlignedBuffer<uint8_t> storage_;
  std::vector<kernels::PagedKvLayer> layers_;  // [num_layers]
};

}  // namespace tinyserve
