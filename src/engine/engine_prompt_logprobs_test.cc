// Prompt log-probabilities (GenerateRequest::prompt_logprobs) on the real Qwen2 forward pass
// (dummy "tiny" preset): teacher forcing gives, token for token, the log-probabilities the same
// tokens had when they were generated, however the prompt is chunked (the 128-token cap, a
// small step budget), with the prompt already in the prefix cache, and for every choice.
#include <gtest/gtest.h>

#include <random>

#include "engine/engine_core.h"
#include "engine/testing/fake_model.h"
#include "engine/testing/step.h"
#include "engine/testing/tiny_qwen2.h"

namespace tinyserve {
namespace {

constexpr int32_t kTop = 3;

std::vector<int32_t> RandomPrompt(int32_t len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> p(len);
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % 150000);
  return p;
}

// Every event of one request (all choices), after running the engine until idle.
std::vector<RequestEvent> RunRequest(EngineCore& engine, const GenerateRequest& r) {
  auto stream = engine.AddRequest(r);
  EXPECT_TRUE(stream.ok()) << stream.status().ToString();
  if (!stream.ok()) return {};
  testing::RunUntilIdle(engine);
  std::vector<RequestEvent> events;
  while (auto e = (*stream)->TryNext()) {
    EXPECT_NE(e->finish_reason, FinishReason::kError) << e->error.ToString();
    events.push_back(std::move(*e));
  }
  return events;
}

void ExpectSameLogprobs(const TokenLogprobs& got, const TokenLogprobs& want, size_t at) {
  SCOPED_TRACE(at);
  EXPECT_EQ(got.chosen.token_id, want.chosen.token_id);
  EXPECT_EQ(got.chosen.logprob, want.chosen.logprob);
  ASSERT_EQ(got.top.size(), want.top.size());
  for (size_t i = 0; i < got.top.size(); ++i) {
    EXPECT_EQ(got.top[i].token_id, want.top[i].token_id);
    EXPECT_EQ(got.top[i].logprob, want.top[i].logprob);
  }
}

// The prompt log-probabilities of choice `index` (from its first event).
std::vector<TokenLogprobs> PromptLogprobsOf(const std::vector<RequestEvent>& events,
                                            int32_t index) {
  for (const RequestEvent& e : events) {
    if (e.index == index) return e.prompt_logprobs;  // the choice's first event
  }
  ADD_FAILURE() << "no event for choice " << index;
  return {};
}

// Generates `generate` tokens after a prompt of `prompt_len`, then scores prompt + generated
// tokens as one prompt: the scored entries of the generated tokens are their logprobs.
struct TeacherForcing {
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;
  std::vector<TokenLogprobs> generated_logprobs;

  TeacherForcing(EngineCore& engine, int32_t prompt_len, int32_t generate) {
    prompt = RandomPrompt(prompt_len, 11);
    GenerateRequest r = testing::GreedyRequest(prompt, generate);
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = kTop;
    for (const RequestEvent& e : RunRequest(engine, r)) {
      EXPECT_TRUE(e.prompt_logprobs.empty()) << "not asked";
      generated.insert(generated.end(), e.token_ids.begin(), e.token_ids.end());
      generated_logprobs.insert(generated_logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    }
  }
  GenerateRequest Scoring(int32_t n = 1) const {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), generated.begin(), generated.end());
    GenerateRequest r = testing::GreedyRequest(all, 1);
    r.prompt_logprobs = kTop;
    r.n = n;
    return r;
  }
  void Check(const std::vector<TokenLogprobs>& scored) const {
    ASSERT_EQ(scored.size(), prompt.size() + generated.size() - 1);
    for (size_t i = 0; i < generated.size(); ++i) {
      // Entry j predicts prompt token j + 1.
      ExpectSameLogprobs(scored[prompt.size() - 1 + i], generated_logprobs[i], i);
    }
    for (const TokenLogprobs& lp : scored) {
      EXPECT_LE(lp.chosen.logprob, 0.0f);
      EXPECT_GE(lp.rank, 1);
      ASSERT_EQ(lp.top.size(), static_cast<size_t>(kTop));
      EXPECT_EQ(lp.rank == 1, lp.top[0].token_id == lp.chosen.token_id);
    }
  }
};

TEST(EnginePromptLogprobsTest, TeacherForcingGivesTheGeneratedTokensLogprobs) {
  // 150 + 20 prompt tokens: above kMaxPromptLogprobChunk, so the prompt takes two chunks.
  auto engine = testing::MakeTinyQwen2Engine(testing::TinyQwen2Options());
  const TeacherForcing tf(*engine, 150, 20);
  ASSERT_EQ(tf.generated.size(), 20u);
  // The scored prompt is in the prefix cache now (a plain request of it hits) ...
  GenerateRequest plain = tf.Scoring();
  plain.prompt_logprobs.reset();
  RunRequest(*engine, plain);
  const int64_t hits = engine->Stats().prefix_cache_hits;
  ASSERT_GT(hits, 0);
  // ... and scoring still computes all of it.
  tf.Check(PromptLogprobsOf(RunRequest(*engine, tf.Scoring()), 0));
  EXPECT_EQ(engine->Stats().prefix_cache_hits, hits);
}

TEST(EnginePromptLogprobsTest, SmallStepsAndEveryChoiceGiveTheSameValues) {
  EngineOptions o = testing::TinyQwen2Options();
  o.max_num_batched_tokens = 7;
  auto engine = testing::MakeTinyQwen2Engine(o);
  const TeacherForcing tf(*engine, 30, 8);
  const std::vector<RequestEvent> events = RunRequest(*engine, tf.Scoring(/*n=*/2));
  tf.Check(PromptLogprobsOf(events, 0));
  tf.Check(PromptLogprobsOf(events, 1));
  int32_t carrying = 0;
  for (const RequestEvent& e : events) carrying += e.prompt_logprobs.empty() ? 0 : 1;
  EXPECT_EQ(carrying, 2) << "one event per choice carries them";
}

// With prefix caching, siblings wait for choice 0 and reuse its prompt from the cache: they take
// its prompt values instead of computing the prompt again (the cache hits show they did not).
TEST(EnginePromptLogprobsTest, SiblingsTakeChoiceZerosValuesAndItsCachedPrompt) {
  auto engine = testing::MakeTinyQwen2Engine(testing::TinyQwen2Options());
  const TeacherForcing tf(*engine, 40, 8);
  const int64_t hits = engine->Stats().prefix_cache_hits;
  const std::vector<RequestEvent> events = RunRequest(*engine, tf.Scoring(/*n=*/3));
  for (int32_t i = 0; i < 3; ++i) tf.Check(PromptLogprobsOf(events, i));
  EXPECT_GT(engine->Stats().prefix_cache_hits, hits) << "the siblings computed the prompt again";
}

// Without prefix caching a sibling may start before choice 0: each computes its own.
TEST(EnginePromptLogprobsTest, WithoutPrefixCachingEveryChoiceComputesThePrompt) {
  EngineOptions o = testing::TinyQwen2Options();
  o.enable_prefix_caching = false;
  auto engine = testing::MakeTinyQwen2Engine(o);
  const TeacherForcing tf(*engine, 40, 8);
  const std::vector<RequestEvent> events = RunRequest(*engine, tf.Scoring(/*n=*/3));
  for (int32_t i = 0; i < 3; ++i) tf.Check(PromptLogprobsOf(events, i));
}

TEST(EnginePromptLogprobsTest, OutOfRangeCountsAreRefused) {
  auto engine = testing::MakeTinyQwen2Engine(testing::TinyQwen2Options());
  GenerateRequest r = testing::GreedyRequest(RandomPrompt(5, 1), 1);
  r.prompt_logprobs = 21;
  EXPECT_FALSE(engine->AddRequest(r).ok());
  r.prompt_logprobs = -1;
  EXPECT_FALSE(engine->AddRequest(r).ok());
}

}  // namespace
}  // namespace tinyserve
