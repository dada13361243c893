#include "engine/kv_cache.h"

#include <cstring>
#include <fstream>
#include <string>

namespace tinyserve {
namespace {

int64_t ElementBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kI8:
      return 1;
    default:
      return 0;
  }
}

// Bytes of one layer's K (or V) scales per block: a binary16 per slot and KV head (kI8 only).
int64_t ScaleBytes(const ModelConfig& config, int32_t block_size, DType dtype) {
  return dtype == DType::kI8 ? int64_t{block_size} * config.num_kv_heads * 2 : 0;
}

}  // namespace

int64_t KvCache::BlockBytes(const ModelConfig& config, int32_t block_size, DType dtype) {
  return 2 * config.num_layers *
         (int64_t{block_size} * config.num_kv_heads * config.head_dim * ElementBytes(dtype) +
          ScaleBytes(config, block_size, dtype));
}

StatusOr<KvCache> KvCache::Create(const ModelConfig& config, int32_t block_size, DType dtype,
                                  int64_t budget_bytes) {
  if (ElementBytes(dtype) == 0) {
    return InvalidArgumentError("kv cache dtype must be f32, f16, bf16 or i8, got {}",
                                DTypeName(dtype));
  }
  if (block_size <= 0) return InvalidArgumentError("block size must be positive");
  const int64_t block_bytes = BlockBytes(config, block_size, dtype);
  const int64_t num_blocks = budget_bytes / block_bytes;
  if (num_blocks < 1) {
    return InvalidArgumentError("kv cache budget of {} bytes holds no block ({} bytes each)",
                                budget_bytes, block_bytes);
  }
  if (num_blocks > (int64_t{1} << 31) - 1) {
    return InvalidArgumentError("kv cache budget of {} bytes is too large", budget_bytes);
  }
  KvCache cache;
  cache.num_blocks_ = num_blocks;
  cache.storage_.Resize(static_cast<size_t>(num_blocks * block_bytes));
  // Zero once so a kernel bug reading an unwritten slot sees zeros, not stale garbage.
  std::memset(cache.storage_.data(), 0, cache.storage_.size());
  // Per layer: K, V, then (kI8) K scales, V scales.
  const int64_t values =
      num_blocks * block_size * config.num_kv_heads * config.head_dim * ElementBytes(dtype);
  const int64_t scales = num_blocks * ScaleBytes(config, block_size, dtype);
  uint8_t* p = cache.storage_.data();
  for (int64_t l = 0; l < config.num_layers; ++l) {
    kernels::PagedKvLayer layer;
    layer.k = p;
    layer.v = p + values;
    if (scales > 0) {
      layer.k_scale = reinterpret_cast<uint16_t*>(p + 2 * values);
      layer.v_scale = reinterpret_cast<uint16_t*>(p + 2 * values + scales);
    }
    p += 2 * (values + scales);
    layer.dtype = dtype;
    layer.num_blocks = num_blocks;
    layer.block_size = block_size;
    layer.num_kv_heads = static_cast<int32_t>(config.num_kv_heads);
    layer.head_dim = static_cast<int32_t>(config.head_dim);
    cache.layers_.push_back(layer);
  }
  return cache;
}

StatusOr<int64_t> KvCache::BytesFromMemoryUtilization(double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return InvalidArgumentError("memory utilization must be in (0, 1], got {}", fraction);
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return static_cast<int64_t>(fraction * kib * 1024.0);
  }
  return UnavailableError("cannot read MemAvailable from /proc/meminfo");
}

}  // namespace tinyserve
