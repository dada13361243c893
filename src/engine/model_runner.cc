#include "engine/model_runner.h"

#include <algorithm>

namespace tinyserve {

void BuildForwardBatch(const SchedulerOutput& out, int32_t block_size, ForwardBatch* batch,
                       std::vector<SequenceLogits>* logits) {
  ForwardBatch& b = *batch;
  b.token_ids.clear();
  b.positions.clear();
  b.slot_mapping.clear();
  b.query_start.clear();
  b.seq_lens.clear();
  b.logit_rows.clear();
  if (logits != nullptr) logits->assign(out.scheduled.size(), SequenceLogits{});
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
    const int32_t first_row = b.query_start.back();
    b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
    const int32_t len = seq.num_computed_tokens + s.num_new_tokens;
    b.seq_lens.push_back(len);
    const int32_t used = (len + block_size - 1) / block_size;
    std::copy(blocks.begin(), blocks.begin() + used, b.block_tables.begin() + i * max_blocks);
    SequenceLogits where;
    if (seq.needs_prompt_logits) {
      // Positions whose next token is still a prompt token (the last prompt position's
      // logits are the sample row below).
      where.prompt_first = static_cast<int32_t>(b.logit_rows.size());
      where.prompt_position = seq.num_computed_tokens;
      where.prompt_count =
          std::clamp(seq.num_prompt_tokens - 1 - seq.num_computed_tokens, 0, s.num_new_tokens);
      for (int32_t j = 0; j < where.prompt_count; ++j) b.logit_rows.push_back(first_row + j);
    }
    if (s.sample) {
      where.sample = static_cast<int32_t>(b.logit_rows.size());
      b.logit_rows.push_back(b.query_start.back() - 1);
    }
    if (logits != nullptr) (*logits)[i] = where;
  }
}

ForwardBatch BuildForwardBatch(const SchedulerOutput& out, int32_t block_size,
                               std::vector<SequenceLogits>* logits) {
  ForwardBatch batch;
  BuildForwardBatch(out, block_size, &batch, logits);
  return batch;
}

ModelRunner::ModelRunner(Model* model, std::span<const kernels::PagedKvLayer> kv_layers,
                         ThreadPool* pool)
    : model_(model), kv_layers_(kv_layers), pool_(pool), vocab_size_(model->config().vocab_size) {}

Status ModelRunner::Run(const SchedulerOutput& out, int32_t block_size) {
  BuildForwardBatch(out, block_size, &batch_, &sequence_logits_);
  // Grown only: the forward pass writes every row it returns, and a vector's resize would
  // zero-fill (tens of MB) each time the number of sampled rows goes up.
  const size_t needed = batch_.logit_rows.size() * vocab_size_;
  if (needed > logits_.size()) logits_.Resize(needed);
  return model_->Forward(batch_, kv_layers_, logits_.data(), pool_);
}

std::span<float> ModelRunner::logits(int32_t row) {
  return std::span<float>(logits_.data() + row * vocab_size_, vocab_size_);
}

}  // namespace tinyserve
