// The flat batch one forward pass computes: the tokens of several sequences laid end to end,
// with what attention needs to find each sequence's cached keys and values. The scheduler's
// model runner fills it; Qwen2Model::Forward reads it. Plain data; no invariants beyond the
// shapes below (Forward validates them).
#pragma once

#include <cstdint>
#include <vector>

namespace tinyserve {

struct ForwardBatch {
  std::vector<int32_t> token_ids;     // [num_tokens]
  std::vector<int32_t> positions;     // [num_tokens] position of each token in its sequence
  std::vector<int64_t> slot_mapping;  // [num_tokens] KV slot = block_id * block_size + offset
  std::vector<int32_t> query_start;   // [num_seqs + 1] first token row of each sequence
  std::vector<int32_t> seq_lens;      // [num_seqs] context length after this step
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq] block ids, row-major
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> logit_rows;  // token rows whose logits are wanted, ascending

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }
};

}  // namespace tinyserve
