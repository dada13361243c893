// Forward batches laid out as the engine lays them out, for model tests that drive
// Qwen2Model::Forward directly: chunks of new tokens per sequence (some positions already in
// the cache), and random prompts. Header-only; tests only.
#pragma once

#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "engine/model_runner.h"
#include "engine/scheduler.h"

namespace tinyserve::testing {

// `n` token ids drawn uniformly from Qwen2.5's vocabulary, fixed by `seed`.
inline std::vector<int32_t> RandomTokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, 151935);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = dist(rng);
  return ids;
}

// New tokens of one sequence for one forward pass: `tokens` at positions start.. (the first
// `start` are already in the cache), stored through `table`.
struct Chunk {
  std::vector<int32_t> tokens;
  int32_t start = 0;
  std::vector<int32_t> table;
};

// The engine's layout of `chunks` as one batch of `block_size`-token blocks; logits for every
// token (all_logits) or for the last token of each sequence.
inline ForwardBatch LayoutChunks(const std::vector<Chunk>& chunks, int32_t block_size,
                                 bool all_logits) {
  std::vector<Sequence> seqs(chunks.size());
  SchedulerOutput out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    Sequence& s = seqs[i];
    s.token_ids.assign(chunks[i].start, 0);  // already cached: never read
    s.token_ids.insert(s.token_ids.end(), chunks[i].tokens.begin(), chunks[i].tokens.end());
    s.num_computed_tokens = chunks[i].start;
    s.block_table.blocks = chunks[i].table;
    const int32_t n = static_cast<int32_t>(chunks[i].tokens.size());
    out.scheduled.push_back({&s, n, true});
    out.num_tokens += n;
  }
  ForwardBatch batch = BuildForwardBatch(out, block_size);
  if (all_logits) {
    batch.logit_rows.resize(batch.num_tokens());
    std::iota(batch.logit_rows.begin(), batch.logit_rows.end(), 0);
  }
  return batch;
}

}  // namespace tinyserve::testing
