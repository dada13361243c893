// Batch invariance of the engine on the real Qwen2 forward pass (dummy "tiny" preset: 2 layers,
// hidden 64, the real vocabulary, seeded random weights): greedy tokens of prompts submitted
// together, with chunked prefill, with a prefix-cache hit and under preemption equal the
// tokens of each prompt run alone.
#include <gtest/gtest.h>

#include <random>

#include "engine/engine_core.h"
#include "engine/kv_cache.h"
#include "engine/testing/step.h"
#include "engine/testing/tiny_qwen2.h"

namespace tinyserve {
namespace {

std::vector<std::vector<int32_t>> Prompts(int n) {
  std::mt19937_64 rng(5);
  std::vector<std::vector<int32_t>> prompts(n);
  for (auto& p : prompts) {
    p.resize(4 + rng() % 40);
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % 150000);
  }
  return prompts;
}

std::vector<std::vector<int32_t>> Generate(EngineCore& engine,
                                           const std::vector<std::vector<int32_t>>& ps,
                                           int32_t max_tokens) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : ps) {
    GenerateRequest r;
    r.prompt_token_ids = p;
    r.sampling.temperature = 0.0f;
    r.stop.max_tokens = max_tokens;
    r.stop.ignore_eos = true;
    auto s = engine.AddRequest(r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    streams.push_back(*s);
  }
  testing::RunUntilIdle(engine);
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    std::vector<int32_t> tokens;
    while (auto e = s->TryNext()) {
      EXPECT_NE(e->finish_reason, FinishReason::kError) << e->error.ToString();
      tokens.insert(tokens.end(), e->token_ids.begin(), e->token_ids.end());
    }
    out.push_back(tokens);
  }
  return out;
}

TEST(EngineQwen2Test, GreedyTokensAreBatchInvariant) {
  const auto prompts = Prompts(8);
  constexpr int32_t kTokens = 5;
  std::vector<std::vector<int32_t>> alone;
  {
    EngineOptions o = testing::TinyQwen2Options();
    o.enable_prefix_caching = false;
    auto engine = testing::MakeTinyQwen2Engine(o);
    for (const auto& p : prompts) alone.push_back(Generate(*engine, {p}, kTokens)[0]);
  }
  {
    auto engine = testing::MakeTinyQwen2Engine(testing::TinyQwen2Options());
    EXPECT_EQ(Generate(*engine, prompts, kTokens), alone) << "together";
    // Every prompt again: full prompt blocks now come from the prefix cache.
    EXPECT_EQ(Generate(*engine, prompts, kTokens), alone) << "prefix-cache hit";
    EXPECT_GT(engine->Stats().prefix_cache_hits, 0);
  }
  {
    EngineOptions o = testing::TinyQwen2Options();
    o.max_num_batched_tokens = 7;
    auto engine = testing::MakeTinyQwen2Engine(o);
    EXPECT_EQ(Generate(*engine, prompts, kTokens), alone) << "chunked prefill";
  }
  {
    EngineOptions o = testing::TinyQwen2Options();
    o.kv_cache_memory_bytes =
        13 * KvCache::BlockBytes(testing::TinyQwen2Model()->config(), 4, DType::kF32);
    auto engine = testing::MakeTinyQwen2Engine(o);
    EXPECT_EQ(Generate(*engine, prompts, kTokens), alone) << "preemption";
    EXPECT_GT(engine->Stats().num_preemptions, 0);
  }
}

}  // namespace
}  // namespace tinyserve
