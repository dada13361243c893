#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

namespace tinyserve {
namespace {

// Owns sequences and plays the model: after each step, sampled sequences get one token.
class FakeRunner {
 public:
  FakeRunner(int32_t num_blocks, int32_t block_size, SchedulerConfig config,
             bool prefix_caching = true)
      : blocks(num_blocks, block_size, prefix_caching), scheduler(config, &blocks) {}

  Sequence* Add(int32_t prompt_len, int32_t priority = 0, int32_t first_token = 0) {
    auto seq = std::make_unique<Sequence>();
    seq->seq_id = next_id++;
    seq->arrival = seq->seq_id;
    seq->priority = priority;
    for (int32_t i = 0; i < prompt_len; ++i) seq->token_ids.push_back(first_token + i);
    seq->num_prompt_tokens = prompt_len;
    scheduler.AddWaiting(seq.get());
    seqs.push_back(std::move(seq));
    return seqs.back().get();
  }

  SchedulerOutput Step() {
    SchedulerOutput out = scheduler.Schedule();
    scheduler.OnStepComputed(out);
    for (const ScheduledSequence& s : out.scheduled) {
      if (s.sample) s.seq->token_ids.push_back(1000 + s.seq->num_tokens());
    }
    return out;
  }

  Status Check() const {
    std::vector<const BlockTable*> tables;
    for (const auto& s : seqs) {
      if (s->status == SequenceStatus::kRunning) {
        tables.push_back(&s->block_table);
        if (static_cast<int32_t>(s->block_table.blocks.size()) <
            blocks.BlocksFor(s->num_computed_tokens)) {
          return InternalError("seq {} has too few blocks", s->seq_id);
        }
      } else if (!s->block_table.blocks.empty()) {
        return InternalError("seq {} holds blocks while not running", s->seq_id);
      }
    }
    return blocks.CheckInvariants(tables);
  }

  BlockManager blocks;
  Scheduler scheduler;
  std::vector<std::unique_ptr<Sequence>> seqs;
  int64_t next_id = 0;
};

TEST(SchedulerTest, TokenBudgetAndSequenceLimitAreRespected) {
  FakeRunner r(1000, 16, {/*max_num_seqs=*/3, /*max_num_batched_tokens=*/50});
  for (int i = 0; i < 5; ++i) r.Add(30);
  SchedulerOutput out = r.Step();
  EXPECT_LE(out.num_tokens, 50);
  // First prompt whole (30), second chunked to the remaining 20.
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 30);
  EXPECT_TRUE(out.scheduled[0].sample);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 20);
  EXPECT_FALSE(out.scheduled[1].sample);
  for (int step = 0; step < 20; ++step) {
    out = r.Step();
    EXPECT_LE(out.num_tokens, 50);
    EXPECT_LE(out.scheduled.size(), 3u);
    EXPECT_LE(r.scheduler.running().size(), 3u);
  }
}

TEST(SchedulerTest, DecodesComeFirstThenPrefillChunksInArrivalOrder) {
  FakeRunner r(1000, 4, {8, 10});
  Sequence* a = r.Add(5);
  r.Step();  // a prefilled (5 tokens), samples
  Sequence* b = r.Add(7, 0, 100);
  Sequence* c = r.Add(7, 0, 200);
  SchedulerOutput out = r.Step();
  ASSERT_EQ(out.scheduled.size(), 3u);
  EXPECT_EQ(out.scheduled[0].seq, a);
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 1);
  EXPECT_EQ(out.scheduled[1].seq, b);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 7);
  EXPECT_EQ(out.scheduled[2].seq, c);
  EXPECT_EQ(out.scheduled[2].num_new_tokens, 2);  // chunk: budget left
  out = r.Step();
  // a and b decode; c continues its prefill with the rest of its prompt.
  ASSERT_EQ(out.scheduled.size(), 3u);
  EXPECT_EQ(out.scheduled[0].seq, a);
  EXPECT_EQ(out.scheduled[1].seq, b);
  EXPECT_EQ(out.scheduled[2].seq, c);
  EXPECT_EQ(out.scheduled[2].num_new_tokens, 5);
  EXPECT_TRUE(out.scheduled[2].sample);
}

// The engine schedules every step: the output (and the step order) live in the scheduler and
// keep their storage, so steady decoding allocates nothing there.
TEST(SchedulerTest, AStepNoLargerThanAnEarlierOneReusesTheOutputsStorage) {
  FakeRunner r(1000, 4, {8, 64});
  for (int i = 0; i < 4; ++i) r.Add(6, 0, 100 * i);
  const SchedulerOutput& prefill = r.scheduler.Schedule();
  ASSERT_EQ(prefill.scheduled.size(), 4u);
  const ScheduledSequence* storage = prefill.scheduled.data();
  r.scheduler.OnStepComputed(prefill);
  for (const ScheduledSequence& s : prefill.scheduled) s.seq->token_ids.push_back(7);
  const SchedulerOutput& decode = r.scheduler.Schedule();
  EXPECT_EQ(&decode, &prefill);
  ASSERT_EQ(decode.scheduled.size(), 4u);
  EXPECT_EQ(decode.scheduled.data(), storage);
  EXPECT_EQ(decode.num_tokens, 4);  // counted afresh, not added to the last step's 24
  EXPECT_TRUE(decode.preempted.empty());
  for (const ScheduledSequence& s : decode.scheduled) EXPECT_EQ(s.num_new_tokens, 1);
}

TEST(SchedulerTest, StepTimeBudgetCapsPrefillOnlyWhileSequencesDecode) {
  FakeRunner r(1000, 4, {8, 100});
  std::vector<int32_t> asked;
  r.scheduler.SetPrefillTokenLimit([&](int32_t decodes) {
    asked.push_back(decodes);
    return decodes > 0 ? 6 : INT32_MAX;
  });
  Sequence* a = r.Add(60);
  SchedulerOutput out = r.Step();  // nothing decodes: the whole prompt at once
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 60);
  Sequence* b = r.Add(20, 0, 100);
  out = r.Step();  // a decodes: b gets a 6-token chunk, not the 99 tokens left in the budget
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].seq, a);
  EXPECT_EQ(out.scheduled[1].seq, b);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 6);
  out = r.Step();  // b's partial prefill continues under the same cap
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 6);
  EXPECT_EQ(asked, (std::vector<int32_t>{0, 1, 1}));  // asked once per step, with the decodes
}

TEST(SchedulerTest, ChunkedPrefillCoversThePromptExactlyOnce) {
  FakeRunner r(1000, 4, {4, 7});
  Sequence* a = r.Add(30);
  int32_t total = 0;
  int steps = 0;
  while (a->num_generated() == 0) {
    SchedulerOutput out = r.Step();
    ASSERT_EQ(out.scheduled.size(), 1u);
    EXPECT_LE(out.scheduled[0].num_new_tokens, 7);
    total += out.scheduled[0].num_new_tokens;
    ++steps;
  }
  EXPECT_EQ(total, 30);
  EXPECT_EQ(steps, 5);  // ceil(30 / 7)
}

TEST(SchedulerTest, PromptLogitsSequencesSkipThePrefixCacheAndTakeCappedChunks) {
  FakeRunner r(1000, 16, {/*max_num_seqs=*/4, /*max_num_batched_tokens=*/1024});
  r.Add(300);
  while (r.seqs[0]->num_generated() == 0) r.Step();  // its prompt blocks are now cached
  Sequence* scored = r.Add(300);                     // the same prompt tokens
  scored->needs_prompt_logits = true;
  std::vector<int32_t> chunks;
  while (scored->num_generated() == 0) {
    for (const ScheduledSequence& s : r.Step().scheduled)
      if (s.seq == scored) chunks.push_back(s.num_new_tokens);
  }
  EXPECT_EQ(chunks, (std::vector<int32_t>{kMaxPromptLogprobChunk, kMaxPromptLogprobChunk, 44}));
  EXPECT_EQ(scored->num_cached_prompt_tokens, 0);
  // Without the flag the same prompt hits the cache and runs in one chunk.
  Sequence* plain = r.Add(300);
  const SchedulerOutput out = r.Step();
  auto it = std::find_if(out.scheduled.begin(), out.scheduled.end(),
                         [&](const ScheduledSequence& s) { return s.seq == plain; });
  ASSERT_NE(it, out.scheduled.end());
  EXPECT_GT(plain->num_cached_prompt_tokens, 0);
  EXPECT_EQ(it->num_new_tokens, 300 - plain->num_cached_prompt_tokens);
  EXPECT_TRUE(r.Check().ok());
}

TEST(SchedulerTest, PromptLogitRowsAreCappedPerStepOverAllSequences) {
  FakeRunner r(1000, 16, {/*max_num_seqs=*/4, /*max_num_batched_tokens=*/1024});
  Sequence* a = r.Add(200, 0, 0);
  Sequence* b = r.Add(200, 0, 5000);
  a->needs_prompt_logits = b->needs_prompt_logits = true;
  int32_t a_total = 0, b_total = 0;
  while (a->needs_prompt_logits || b->needs_prompt_logits) {
    int32_t rows = 0;
    for (const ScheduledSequence& s : r.Step().scheduled) {
      if (!s.seq->needs_prompt_logits) continue;  // decoding
      (s.seq == a ? a_total : b_total) += s.num_new_tokens;
      rows += s.num_new_tokens;
    }
    EXPECT_LE(rows, kMaxPromptLogprobChunk);
    // The engine clears the flag once it has delivered the values (with the first token).
    for (Sequence* s : {a, b}) s->needs_prompt_logits = s->num_generated() == 0;
  }
  EXPECT_EQ(a_total, 200);
  EXPECT_EQ(b_total, 200);
  EXPECT_TRUE(r.Check().ok());
}

TEST(SchedulerTest, PreemptsTheMostRecentlyAdmittedWhenBlocksRunOut) {
  // 6 blocks of 4 tokens. Three prompts of 8 tokens take 2 blocks each; the first decode that
  // needs a third block forces a preemption.
  FakeRunner r(6, 4, {8, 100}, /*prefix_caching=*/false);
  Sequence* a = r.Add(8);
  Sequence* b = r.Add(8);
  Sequence* c = r.Add(8);
  r.Step();  // all prefilled: 6 blocks used
  EXPECT_EQ(r.blocks.num_free_blocks(), 0);
  // Each now holds 9 tokens (8 + sampled); the next decode of a needs a new block.
  SchedulerOutput out = r.Step();
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], c);
  EXPECT_EQ(c->status, SequenceStatus::kWaiting);
  EXPECT_EQ(c->num_computed_tokens, 0);
  EXPECT_EQ(c->num_preemptions, 1);
  EXPECT_EQ(r.scheduler.counters().preemptions, 1);
  EXPECT_EQ(a->status, SequenceStatus::kRunning);
  EXPECT_EQ(b->status, SequenceStatus::kRunning);
  EXPECT_TRUE(r.Check().ok());
}

TEST(SchedulerTest, LowerPriorityValueIsAdmittedFirstAndPreemptedLast) {
  FakeRunner r(1000, 4, {1, 100});
  Sequence* late = r.Add(4, /*priority=*/5);
  Sequence* urgent = r.Add(4, /*priority=*/0);
  SchedulerOutput out = r.Step();
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].seq, urgent);
  EXPECT_EQ(late->status, SequenceStatus::kWaiting);

  FakeRunner p(4, 4, {8, 100}, false);
  Sequence* low = p.Add(8, /*priority=*/9);
  Sequence* high = p.Add(8, /*priority=*/1, 100);
  p.Step();  // both admitted (high first), 4 blocks used; both now 9 tokens
  SchedulerOutput o = p.Step();
  ASSERT_EQ(o.preempted.size(), 1u);
  EXPECT_EQ(o.preempted[0], low);
  EXPECT_EQ(high->status, SequenceStatus::kRunning);
}

TEST(SchedulerTest, RecomputeAfterPreemptionReusesCachedPrefix) {
  // 7 blocks: a takes the spare one, b's block comes from preempting c (its tail block), and
  // c's first block stays cached.
  FakeRunner r(7, 4, {8, 100}, /*prefix_caching=*/true);
  r.Add(8, 0, 0);
  r.Add(8, 0, 100);
  Sequence* c = r.Add(8, 0, 200);
  r.Step();
  r.Step();  // c preempted; its full block stays cached
  ASSERT_EQ(c->status, SequenceStatus::kWaiting);
  const int64_t hits_before = r.scheduler.counters().prefix_cache_hits;
  // Free everything else so c can come back.
  for (auto& s : r.seqs) {
    if (s.get() != c) r.scheduler.Finish(s.get());
  }
  r.Step();
  EXPECT_EQ(c->status, SequenceStatus::kRunning);
  EXPECT_GT(r.scheduler.counters().prefix_cache_hits, hits_before);
  EXPECT_TRUE(r.Check().ok());
}

TEST(SchedulerTest, RandomSubmitAbortFinishKeepsInvariantsEveryStep) {
  std::mt19937 rng(42);
  FakeRunner r(40, 4, {6, 24}, true);
  std::vector<int32_t> target_len;  // per seq id: finish when reaching it
  for (int step = 0; step < 3000; ++step) {
    const int action = rng() % 10;
    if (action < 3 && r.seqs.size() < 400) {
      // Prompts share prefixes sometimes (first_token 0) to exercise the cache.
      const int32_t len = 1 + rng() % 40;
      Sequence* s = r.Add(len, rng() % 3, (rng() % 2) ? 0 : static_cast<int32_t>(rng() % 1000));
      target_len.resize(r.seqs.size());
      target_len[s->seq_id] = len + 1 + rng() % 30;
    } else if (action == 3 && !r.seqs.empty()) {
      Sequence* s = r.seqs[rng() % r.seqs.size()].get();
      if (s->status != SequenceStatus::kFinished) r.scheduler.Finish(s);  // abort
    }
    SchedulerOutput out = r.Step();
    ASSERT_LE(out.num_tokens, 24);
    ASSERT_LE(out.scheduled.size(), 6u);
    for (const ScheduledSequence& s : out.scheduled) {
      if (s.seq->status == SequenceStatus::kRunning &&
          s.seq->num_tokens() >= target_len[s.seq->seq_id]) {
        r.scheduler.Finish(s.seq);
      }
    }
    Status st = r.Check();
    ASSERT_TRUE(st.ok()) << "step " << step << ": " << st.ToString();
  }
  for (auto& s : r.seqs) {
    if (s->status != SequenceStatus::kFinished) r.scheduler.Finish(s.get());
  }
  EXPECT_EQ(r.blocks.num_used_blocks(), 0);
  EXPECT_TRUE(r.Check().ok());
  EXPECT_GT(r.scheduler.counters().preemptions, 0);
  EXPECT_GT(r.scheduler.counters().prefix_cache_hits, 0);
}

}  // namespace
}  // namespace tinyserve
