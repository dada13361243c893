#include "engine/model_runner.h"

#include <algorithm>

namespace tinyserve {

ForwardBatch BuildForwardBatch(const SchedulerOutput& out, int32_t block_size) {
  ForwardBatch b;
  const size_t num_seqs = out.scheduled.size();
  b.token_ids.reserve(out.num_tokens);
  b.positions.reserve(out.num_tokens);
  b.slot_mapping.reserve(out.num_tokens);
  b.query_start.reserve(num_seqs + 1);
  b.seq_lens.reserve(num_seqs);
  int32_t max_blocks = 0;
  for (const ScheduledSequence& s : out.scheduled) {
    const int32_t len = s.seq->num_computed_tokens + s.num_new_tokens;
    max_blocks = std::max(max_blocks, (len + block_size - 1) / block_size);
  }
  b.max_blocks_per_seq = max_blocks;
  b.block_tables.assign(num_seqs * max_blocks, 0);
  b.query_start.push_back(0);
  for (size_t i = 0; i < num_seqs; ++i) {
    const ScheduledSequence& s = out.scheduled[i];
    const Sequence& seq = *s.seq;
    const auto& blocks = seq.block_table.blocks;
    for (int32_t j = 0; j < s.num_new_tokens; ++j) {
      const int32_t pos = seq.num_computed_tokens + j;
      b.token_ids.push_back(seq.token_ids[pos]);
      b.positions.push_back(pos);
      b.slot_mapping.push_back(int64_t{blocks[pos / block_size]} * block_size + pos % block_size);
    }
    b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
    const int32_t len = seq.num_computed_tokens + s.num_new_tokens;
    b.seq_lens.push_back(len);
    const int32_t used = (len + block_size - 1) / block_size;
    std::copy(blocks.begin(), blocks.begin() + used, b.block_tables.begin() + i * max_blocks);
    if (s.sample) b.logit_rows.push_back(b.query_start.back() - 1);
  }
  return b;
}

ModelRunner::ModelRunner(Model* model, std::span<const kernels::PagedKvLayer> kv_layers,
                         ThreadPool* pool)
    : model_(model), kv_layers_(kv_layers), pool_(pool), vocab_size_(model->config().vocab_size) {}

Status ModelRunner::Run(const SchedulerOutput& out, int32_t block_size) {
  batch_ = BuildForwardBatch(out, block_size);
  // Grown only: the forward pass writes every row it returns, and a vector's resize would
  // zero-fill (tens of MB) each time the number of sampled rows goes up.
  const size_t needed = batch_.logit_rows.size() * vocab_size_;
  if (needed > logits_.size()) logits_.Resize(needed);
  return model_->Forward(batch_, kv_layers_, logits_.data(), pool_);
}

std::span<float> ModelRunner::logits_row(int32_t i) {
  return std::span<float>(logits_.data() + i * vocab_size_, vocab_size_);
}

}  // namespace tinyserve
