#include "engine/engine.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "engine/kv_cache.h"
#include "engine/testing/fake_model.h"

namespace tinyserve {
namespace {

using testing::FakeGreedy;
using testing::FakeModel;

struct Result {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  std::string stop_reason;
  std::optional<ChoiceUsage> usage;
  std::vector<TokenLogprobs> logprobs;
  std::vector<std::string> deltas;
};

// Reads a stream to its end; one Result per choice.
std::vector<Result> Collect(RequestStream& stream) {
  std::vector<Result> out(stream.n());
  while (auto e = stream.Next(std::chrono::seconds(20))) {
    Result& r = out[e->index];
    r.tokens.insert(r.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    r.text += e->text;
    if (!e->text.empty()) r.deltas.push_back(e->text);
    r.logprobs.insert(r.logprobs.end(), e->logprobs.begin(), e->logprobs.end());
    if (e->finish_reason != FinishReason::kNone) {
      r.finish = e->finish_reason;
      r.stop_reason = e->stop_reason;
      r.usage = e->usage;
    }
  }
  EXPECT_TRUE(stream.done());
  return out;
}

EngineOptions SmallOptions() {
  EngineOptions o;
  o.max_num_seqs = 64;
  o.max_num_batched_tokens = 256;
  o.block_size = 4;
  o.kv_cache_dtype = DType::kF32;
  o.kv_cache_memory_bytes = 4096 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
  o.threads = 1;
  return o;
}

GenerateRequest Greedy(std::vector<int32_t> prompt, int32_t max_tokens) {
  GenerateRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

std::vector<std::vector<int32_t>> RandomPrompts(int n, uint64_t seed, int min_len, int max_len) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> prompts(n);
  for (auto& p : prompts) {
    p.resize(min_len + rng() % (max_len - min_len + 1));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % 500);
  }
  return prompts;
}

// Waits until the engine has published an idle snapshot.
EngineStats WaitIdle(Engine& engine) {
  EngineStats s;
  for (int i = 0; i < 2000; ++i) {
    s = engine.Stats();
    if (s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_used == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return s;
}

// Submits all prompts at once and returns each one's greedy tokens.
std::vector<std::vector<int32_t>> RunTogether(Engine& engine,
                                              const std::vector<std::vector<int32_t>>& prompts,
                                              int32_t max_tokens) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) {
    auto s = engine.Submit(Greedy(p, max_tokens));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    streams.push_back(*s);
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    auto r = Collect(*s);
    EXPECT_EQ(r[0].finish, FinishReason::kLength);
    out.push_back(r[0].tokens);
  }
  return out;
}

void ExpectMatchesOracle(const std::vector<std::vector<int32_t>>& prompts,
                         const std::vector<std::vector<int32_t>>& got, int32_t max_tokens) {
  ASSERT_EQ(prompts.size(), got.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i], FakeGreedy(prompts[i], FakeModel::kVocab, max_tokens)) << "prompt " << i;
  }
}

std::unique_ptr<Engine> MakeEngine(const EngineOptions& o, std::shared_ptr<FakeModel> model = {},
                                   TokenText text = {}) {
  if (!model) model = std::make_shared<FakeModel>();
  auto e = Engine::Create(model, o, GenerationDefaults{}, std::move(text));
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(*e);
}

TEST(EngineTest, BatchOf32EqualsEachPromptAlone) {
  auto prompts = RandomPrompts(32, 1, 3, 60);
  auto engine = MakeEngine(SmallOptions());
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(RunTogether(*engine, {p}, 10)[0]);
  ExpectMatchesOracle(prompts, alone, 10);
  auto together = RunTogether(*engine, prompts, 10);
  EXPECT_EQ(together, alone);
  EXPECT_EQ(WaitIdle(*engine).kv_blocks_used, 0);
}

TEST(EngineTest, ChunkedPrefillAtSevenTokensPerStepGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 2, 3, 60);
  EngineOptions o = SmallOptions();
  o.max_num_batched_tokens = 7;
  auto engine = MakeEngine(o);
  ExpectMatchesOracle(prompts, RunTogether(*engine, prompts, 8), 8);
  EXPECT_EQ(WaitIdle(*engine).kv_blocks_used, 0);
}

TEST(EngineTest, ForcedPrefixCacheHitGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 3, 20, 60);
  auto engine = MakeEngine(SmallOptions());
  auto first = RunTogether(*engine, prompts, 6);
  const EngineStats before = WaitIdle(*engine);
  auto second = RunTogether(*engine, prompts, 6);
  const EngineStats after = WaitIdle(*engine);
  EXPECT_GT(after.prefix_cache_hits - before.prefix_cache_hits, 32 * 16);
  EXPECT_EQ(first, second);
  ExpectMatchesOracle(prompts, second, 6);
}

TEST(EngineTest, PreemptionUnderASmallKvBudgetGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 4, 10, 40);
  for (bool prefix_caching : {true, false}) {
    EngineOptions o = SmallOptions();
    o.enable_prefix_caching = prefix_caching;
    o.kv_cache_memory_bytes = 40 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
    auto engine = MakeEngine(o);
    auto got = RunTogether(*engine, prompts, 24);
    ExpectMatchesOracle(prompts, got, 24);
    const EngineStats s = WaitIdle(*engine);
    EXPECT_GT(s.num_preemptions, 0);
    EXPECT_EQ(s.kv_blocks_used, 0);
  }
}

TEST(EngineTest, F16KvCacheGivesTheSameTokens) {
  auto prompts = RandomPrompts(8, 5, 5, 30);
  EngineOptions o = SmallOptions();
  o.kv_cache_dtype = DType::kF16;
  auto engine = MakeEngine(o);
  ExpectMatchesOracle(prompts, RunTogether(*engine, prompts, 5), 5);
}

TEST(EngineTest, SharedThousandTokenPrefixIsComputedOnce) {
  EngineOptions o = SmallOptions();
  o.block_size = 16;
  o.kv_cache_memory_bytes = 512 * KvCache::BlockBytes(FakeModel().config(), 16, DType::kF32);
  o.max_num_batched_tokens = 2048;
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(o, model);
  auto prefix = RandomPrompts(1, 6, 1000, 1000)[0];
  std::vector<int32_t> a = prefix, b = prefix;
  for (int i = 0; i < 30; ++i) a.push_back(i);
  for (int i = 0; i < 30; ++i) b.push_back(100 + i);
  RunTogether(*engine, {a}, 4);
  const EngineStats s1 = WaitIdle(*engine);
  const int64_t computed_before = model->num_forward_tokens.load();
  auto out_b = RunTogether(*engine, {b}, 4);
  const EngineStats s2 = WaitIdle(*engine);
  // 1,000 shared tokens = 62 full blocks of 16 (992 tokens) served from the cache.
  EXPECT_EQ(s2.prefix_cache_hits - s1.prefix_cache_hits, 992);
  const int64_t computed = model->num_forward_tokens.load() - computed_before;
  EXPECT_EQ(computed, static_cast<int64_t>(b.size()) - 992 + 3);  // suffix + 3 decode steps
  EXPECT_EQ(s2.computed_tokens - s1.computed_tokens, computed);
  EXPECT_EQ(out_b[0], FakeGreedy(b, FakeModel::kVocab, 4));
}

TEST(EngineTest, CacheSaltKeepsTenantsApart) {
  auto engine = MakeEngine(SmallOptions());
  auto p = RandomPrompts(1, 7, 40, 40)[0];
  GenerateRequest r1 = Greedy(p, 2);
  r1.cache_salt = "tenant-a";
  Collect(**engine->Submit(r1));
  const EngineStats s1 = WaitIdle(*engine);
  GenerateRequest r2 = Greedy(p, 2);
  r2.cache_salt = "tenant-b";
  Collect(**engine->Submit(r2));
  const EngineStats s2 = WaitIdle(*engine);
  EXPECT_EQ(s2.prefix_cache_hits, s1.prefix_cache_hits);
  GenerateRequest r3 = Greedy(p, 2);
  r3.cache_salt = "tenant-a";
  Collect(**engine->Submit(r3));
  EXPECT_GT(WaitIdle(*engine).prefix_cache_hits, s2.prefix_cache_hits);
}

TEST(EngineTest, NoBlockIsHeldAfterAbortAtEveryStage) {
  auto model = std::make_shared<FakeModel>();
  EngineOptions o = SmallOptions();
  o.max_num_batched_tokens = 7;
  auto engine = MakeEngine(o, model);
  auto prompts = RandomPrompts(3, 8, 30, 30);
  // Abort mid-prefill (step 1 of a 30-token prompt at 7 tokens per step), mid-decode (step 8)
  // and before admission (submitted and aborted in the same instant, from inside step 5).
  std::shared_ptr<RequestStream> before_admission;
  model->on_forward = [&](int64_t step, const ForwardBatch&) {
    if (step == 1) engine->Abort("prefill");
    if (step == 8) engine->Abort("decode");
    if (step == 5) {
      GenerateRequest r = Greedy(prompts[2], 5);
      r.request_id = "never";
      before_admission = *engine->Submit(r);
      engine->Abort("never");
    }
  };
  GenerateRequest a = Greedy(prompts[0], 50);
  a.request_id = "prefill";
  GenerateRequest b = Greedy(prompts[1], 50);
  b.request_id = "decode";
  auto sa = *engine->Submit(a);
  auto sb = *engine->Submit(b);
  auto ra = Collect(*sa);
  auto rb = Collect(*sb);
  EXPECT_EQ(ra[0].finish, FinishReason::kAbort);
  EXPECT_TRUE(ra[0].tokens.empty());
  EXPECT_EQ(rb[0].finish, FinishReason::kAbort);
  EXPECT_FALSE(rb[0].tokens.empty());
  for (int i = 0; i < 2000 && !before_admission; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(before_admission);
  auto rc = Collect(*before_admission);
  EXPECT_EQ(rc[0].finish, FinishReason::kAbort);
  const EngineStats s = WaitIdle(*engine);
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.finished_abort, 3);
  // Ids are free again after their request ended.
  EXPECT_TRUE(engine->Submit(Greedy(prompts[0], 1)).ok());
}

TEST(EngineTest, StopStringSplitAcrossTokensNeverLeaks) {
  auto model = std::make_shared<FakeModel>();
  const std::vector<int32_t> prompt = {1, 2, 3};
  // Tokens: 256 "Hel", 257 "lo </", 258 "st", 259 "op> after".
  model->script = {256, 257, 258, 259, 256};
  model->script_start = 3;
  auto engine =
      MakeEngine(SmallOptions(), model, testing::FakeTokenText({"Hel", "lo </", "st", "op> after"}));
  GenerateRequest r = Greedy(prompt, 20);
  r.stop.stop = {"</stop>"};
  auto res = Collect(**engine->Submit(r));
  EXPECT_EQ(res[0].finish, FinishReason::kStop);
  EXPECT_EQ(res[0].stop_reason, "</stop>");
  EXPECT_EQ(res[0].text, "Hello ");
  std::string streamed;
  for (const std::string& d : res[0].deltas) {
    streamed += d;
    EXPECT_EQ(streamed.find('<'), std::string::npos);
  }
  EXPECT_EQ(res[0].tokens, (std::vector<int32_t>{256, 257, 258, 259}));
  // include_stop_str_in_output keeps it; the text after it is still cut.
  r.stop.include_stop_str_in_output = true;
  res = Collect(**engine->Submit(r));
  EXPECT_EQ(res[0].text, "Hello </stop>");
}

TEST(EngineTest, EosStopTokensMinAndMaxTokens) {
  auto model = std::make_shared<FakeModel>();
  model->script = {'a', 'b', FakeModel::kEos, 'c', 300};
  model->script_start = 2;
  auto engine = MakeEngine(SmallOptions(), model, testing::FakeTokenText({}));
  GenerateRequest r = Greedy({7, 8}, 10);
  r.stop.ignore_eos = false;
  auto res = Collect(**engine->Submit(r));
  EXPECT_EQ(res[0].finish, FinishReason::kStop);
  EXPECT_EQ(res[0].tokens, (std::vector<int32_t>{'a', 'b', FakeModel::kEos}));
  EXPECT_EQ(res[0].text, "ab");
  EXPECT_EQ(res[0].usage->completion_tokens, 3);
  EXPECT_EQ(res[0].usage->prompt_tokens, 2);
  // min_tokens bans EOS until 4 tokens: the script's EOS is replaced by the runner-up.
  r.stop.min_tokens = 4;
  res = Collect(**engine->Submit(r));
  ASSERT_GE(res[0].tokens.size(), 4u);
  EXPECT_NE(res[0].tokens[2], FakeModel::kEos);
  // stop_token_ids.
  r.stop.min_tokens = 0;
  r.stop.ignore_eos = true;
  r.stop.stop_token_ids = {'c'};
  res = Collect(**engine->Submit(r));
  EXPECT_EQ(res[0].finish, FinishReason::kStop);
  EXPECT_EQ(res[0].stop_reason, std::to_string('c'));
  EXPECT_EQ(res[0].tokens.size(), 4u);
  // max_tokens.
  r.stop.stop_token_ids.clear();
  r.stop.max_tokens = 3;
  res = Collect(**engine->Submit(r));
  EXPECT_EQ(res[0].finish, FinishReason::kLength);
  EXPECT_EQ(res[0].tokens.size(), 3u);
}

TEST(EngineTest, NChoicesShareThePromptAndSeedsAreReproducible) {
  auto engine = MakeEngine(SmallOptions());
  auto p = RandomPrompts(1, 9, 40, 40)[0];
  GenerateRequest r = Greedy(p, 6);
  r.n = 3;
  auto res = Collect(**engine->Submit(r));
  ASSERT_EQ(res.size(), 3u);
  for (const Result& c : res) EXPECT_EQ(c.tokens, FakeGreedy(p, FakeModel::kVocab, 6));
  EXPECT_GE(WaitIdle(*engine).prefix_cache_hits, 2 * 36);  // choices 1, 2 reuse 9 blocks each
  // Sampling with a seed: same seed, same tokens; choices differ from each other.
  GenerateRequest s = r;
  s.sampling.temperature = 1.0f;
  s.sampling.seed = 77;
  auto s1 = Collect(**engine->Submit(s));
  auto s2 = Collect(**engine->Submit(s));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s1[i].tokens, s2[i].tokens);
  EXPECT_NE(s1[0].tokens, s1[1].tokens);
}

TEST(EngineTest, LogprobsComeWithEachToken) {
  auto engine = MakeEngine(SmallOptions());
  GenerateRequest r = Greedy({5, 6, 7}, 3);
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 2;
  auto res = Collect(**engine->Submit(r));
  ASSERT_EQ(res[0].logprobs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const TokenLogprobs& lp = res[0].logprobs[i];
    EXPECT_EQ(lp.chosen.token_id, res[0].tokens[i]);
    ASSERT_EQ(lp.top.size(), 2u);
    EXPECT_EQ(lp.top[0].token_id, lp.chosen.token_id);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(lp.top[0].logprob, lp.chosen.logprob);
    EXPECT_LT(lp.chosen.logprob, 0.0f);
  }
}

TEST(EngineTest, BadRequestsAreRefusedWithClearErrors) {
  EngineOptions o = SmallOptions();
  o.max_model_len = 100;
  o.kv_cache_memory_bytes = 10 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
  o.max_queue_len = 2;
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(o, model);
  EXPECT_EQ(engine->Submit(Greedy({}, 1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit(Greedy({9999}, 1)).status().code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> long_prompt(100, 1);
  EXPECT_EQ(engine->Submit(Greedy(long_prompt, 1)).status().code(),
            StatusCode::kInvalidArgument);
  // 30 + 20 tokens need 13 blocks of 4; the cache has 10.
  auto never = engine->Submit(Greedy(std::vector<int32_t>(30, 1), 20));
  EXPECT_EQ(never.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(never.status().message().find("KV"), std::string::npos);
  GenerateRequest bad = Greedy({1}, 1);
  bad.sampling.top_p = 2.0f;
  EXPECT_EQ(engine->Submit(bad).status().code(), StatusCode::kInvalidArgument);
  // A full queue answers at once: hold the engine inside a step while submitting.
  std::atomic<bool> release{false};
  std::atomic<bool> inside{false};
  model->on_forward = [&](int64_t, const ForwardBatch&) {
    inside = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  auto first = engine->Submit(Greedy({1, 2}, 2));
  ASSERT_TRUE(first.ok());
  while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto q1 = engine->Submit(Greedy({1, 2}, 2));
  auto q2 = engine->Submit(Greedy({1, 2}, 2));
  auto q3 = engine->Submit(Greedy({1, 2}, 2));
  EXPECT_TRUE(q1.ok());
  EXPECT_TRUE(q2.ok());
  EXPECT_EQ(q3.status().code(), StatusCode::kUnavailable);
  GenerateRequest dup = Greedy({1}, 1);
  dup.request_id = (*first)->request_id();
  EXPECT_EQ(engine->Submit(dup).status().code(), StatusCode::kInvalidArgument);
  release = true;
  Collect(**first);
  Collect(**q1);
  Collect(**q2);
  EXPECT_GE(engine->Stats().requests_rejected, 7);
}

TEST(EngineTest, DestroyingTheEngineAbortsLiveRequests) {
  auto engine = MakeEngine(SmallOptions());
  auto s = *engine->Submit(Greedy({1, 2, 3}, 3000));
  engine.reset();
  auto r = Collect(*s);
  EXPECT_EQ(r[0].finish, FinishReason::kAbort);
}

}  // namespace
}  // namespace tinyserve
