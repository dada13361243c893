// BuildForwardBatch into a batch reused step after step (as ModelRunner does): the same batch as
// a fresh one, whatever the previous step held, and no new storage for a step no larger than an
// earlier one.
#include "engine/model_runner.h"

#include <gtest/gtest.h>

#include <vector>

namespace tinyserve {
namespace {

constexpr int32_t kRunnerBlockSize = 4;

// A sequence of `len` tokens (ids base, base + 1, ...) with `computed` already in the cache,
// its blocks numbered from first_block.
Sequence RunnerSequence(int32_t len, int32_t computed, int32_t base, int32_t first_block) {
  Sequence s;
  for (int32_t i = 0; i < len; ++i) s.token_ids.push_back(base + i);
  s.num_prompt_tokens = len;
  s.num_computed_tokens = computed;
  for (int32_t b = 0; b < (len + kRunnerBlockSize - 1) / kRunnerBlockSize; ++b)
    s.block_table.blocks.push_back(first_block + 2 * b);
  return s;
}

void ExpectSameForwardBatch(const ForwardBatch& got, const ForwardBatch& want) {
  EXPECT_EQ(got.token_ids, want.token_ids);
  EXPECT_EQ(got.positions, want.positions);
  EXPECT_EQ(got.slot_mapping, want.slot_mapping);
  EXPECT_EQ(got.query_start, want.query_start);
  EXPECT_EQ(got.seq_lens, want.seq_lens);
  EXPECT_EQ(got.block_tables, want.block_tables);
  EXPECT_EQ(got.max_blocks_per_seq, want.max_blocks_per_seq);
  EXPECT_EQ(got.logit_rows, want.logit_rows);
}

TEST(BuildForwardBatchTest, AReusedBatchEqualsAFreshOneAndKeepsItsStorage) {
  // Step 1: a decode, the last 3 prompt tokens of a sequence whose prompt's logits are asked
  // (2 prompt rows + its sample row) and a 10-token prefill.
  Sequence a = RunnerSequence(10, 0, 100, 0);
  Sequence b = RunnerSequence(7, 6, 200, 1);
  Sequence c = RunnerSequence(5, 2, 300, 9);
  c.needs_prompt_logits = true;
  SchedulerOutput big;
  big.scheduled = {{&b, 1, true}, {&c, 3, true}, {&a, 10, true}};
  big.num_tokens = 14;

  ForwardBatch reused;
  std::vector<SequenceLogits> logits;
  BuildForwardBatch(big, kRunnerBlockSize, &reused, &logits);
  ExpectSameForwardBatch(reused, BuildForwardBatch(big, kRunnerBlockSize));
  ASSERT_EQ(logits.size(), 3u);
  EXPECT_EQ(logits[1].prompt_count, 2);
  EXPECT_EQ(reused.logit_rows, (std::vector<int32_t>{0, 1, 2, 3, 13}));
  EXPECT_EQ(logits[2].sample, 4);  // after b's row and c's three
  const int32_t* tokens = reused.token_ids.data();
  const int64_t* slots = reused.slot_mapping.data();
  const int32_t* tables = reused.block_tables.data();
  const SequenceLogits* where = logits.data();

  // Step 2: b decodes alone, one position on.
  b.num_computed_tokens = 7;
  b.token_ids.push_back(207);
  SchedulerOutput small;
  small.scheduled = {{&b, 1, true}};
  small.num_tokens = 1;
  BuildForwardBatch(small, kRunnerBlockSize, &reused, &logits);
  ExpectSameForwardBatch(reused, BuildForwardBatch(small, kRunnerBlockSize));
  EXPECT_EQ(reused.token_ids, std::vector<int32_t>{207});
  EXPECT_EQ(reused.seq_lens, std::vector<int32_t>{8});
  ASSERT_EQ(logits.size(), 1u);
  EXPECT_EQ(logits[0].sample, 0);
  EXPECT_EQ(reused.token_ids.data(), tokens);
  EXPECT_EQ(reused.slot_mapping.data(), slots);
  EXPECT_EQ(reused.block_tables.data(), tables);
  EXPECT_EQ(logits.data(), where);
}

}  // namespace
}  // namespace tinyserve
