#include "model/simple_kv_cache.h"

#include <algorithm>
#include <cstring>

#include "util/check.h"

namespace tinyserve {

SimpleKvCache::SimpleKvCache(const ModelConfig& config, int64_t num_blocks, int32_t block_size,
                             DType dtype)
    : num_blocks_(num_blocks), block_size_(block_size) {
  TS_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
           dtype == DType::kI8);
  const size_t elem = dtype == DType::kF32 ? 4 : dtype == DType::kI8 ? 1 : 2;
  const size_t rows = static_cast<size_t>(num_blocks) * block_size * config.num_kv_heads;
  const size_t bytes = rows * config.head_dim * elem;
  auto zeroed = [&](size_t n) {
    AlignedBuffer<uint8_t> buf(n);
    std::memset(buf.data(), 0, n);
    void* p = buf.data();
    storage_.push_back(std::move(buf));
    return p;
  };
  for (int64_t l = 0; l < config.num_layers; ++l) {
    kernels::PagedKvLayer layer;
    layer.k = zeroed(bytes);
    layer.v = zeroed(bytes);
    if (dtype == DType::kI8) {  // one binary16 scale per slot and KV head
      layer.k_scale = static_cast<uint16_t*>(zeroed(rows * 2));
      layer.v_scale = static_cast<uint16_t*>(zeroed(rows * 2));
    }
    layer.dtype = dtype;
    layer.num_blocks = num_blocks;
    layer.block_size = block_size;
    layer.num_kv_heads = static_cast<int32_t>(config.num_kv_heads);
    layer.head_dim = static_cast<int32_t>(config.head_dim);
    layers_.push_back(layer);
  }
}

void BatchBuilder::AddSequence(std::span<const int32_t> tokens, int32_t start_pos,
                               std::span<const int32_t> block_table, bool all_logits) {
  ForwardBatch& b = batch_;
  if (b.query_start.empty()) b.query_start.push_back(0);
  const int32_t first_row = static_cast<int32_t>(b.token_ids.size());
  for (size_t j = 0; j < tokens.size(); ++j) {
    const int32_t pos = start_pos + static_cast<int32_t>(j);
    b.token_ids.push_back(tokens[j]);
    b.positions.push_back(pos);
    b.slot_mapping.push_back(int64_t{block_table[pos / block_size_]} * block_size_ +
                             pos % block_size_);
    if (all_logits || j + 1 == tokens.size())
      b.logit_rows.push_back(first_row + static_cast<int32_t>(j));
  }
  b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
  b.seq_lens.push_back(start_pos + static_cast<int32_t>(tokens.size()));
  tables_.emplace_back(block_table.begin(), block_table.end());
}

ForwardBatch BatchBuilder::Finish() {
  size_t max_blocks = 1;
  for (const auto& t : tables_) max_blocks = std::max(max_blocks, t.size());
  batch_.max_blocks_per_seq = static_cast<int32_t>(max_blocks);
  batch_.block_tables.assign(tables_.size() * max_blocks, 0);
  for (size_t s = 0; s < tables_.size(); ++s)
    std::copy(tables_[s].begin(), tables_[s].end(), batch_.block_tables.begin() + s * max_blocks);
  tables_.clear();
  return std::move(batch_);
}

}  // namespace tinyserve
