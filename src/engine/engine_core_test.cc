#include "engine/engine_core.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "engine/kv_cache.h"
#include "engine/testing/fake_model.h"
#include "engine/testing/step.h"

namespace tinyserve {
namespace {

using testing::FakeGreedy;
using testing::FakeModel;
using testing::GreedyRequest;

struct Result {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  std::string stop_reason;
  std::optional<ChoiceUsage> usage;
  std::vector<TokenLogprobs> logprobs;
  std::vector<std::string> deltas;
  Status error;
};

// Reads what a stream holds now; one Result per choice.
std::vector<Result> Drain(RequestStream& stream) {
  std::vector<Result> out(stream.n());
  while (auto e = stream.TryNext()) {
    Result& r = out[e->index];
    r.tokens.insert(r.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    r.text += e->text;
    if (!e->text.empty()) r.deltas.push_back(e->text);
    r.logprobs.insert(r.logprobs.end(), e->logprobs.begin(), e->logprobs.end());
    if (e->finish_reason != FinishReason::kNone) {
      r.finish = e->finish_reason;
      r.stop_reason = e->stop_reason;
      r.usage = e->usage;
      r.error = e->error;
    }
  }
  return out;
}

// Steps the core until idle and reads the stream to its end.
std::vector<Result> Collect(EngineCore& core, RequestStream& stream) {
  testing::RunUntilIdle(core);
  std::vector<Result> out = Drain(stream);
  EXPECT_TRUE(stream.done());
  return out;
}

EngineOptions SmallCoreOptions() {
  EngineOptions o;
  o.max_num_seqs = 64;
  o.max_num_batched_tokens = 256;
  o.block_size = 4;
  o.kv_cache_dtype = DType::kF32;
  o.kv_cache_memory_bytes = 4096 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
  o.threads = 1;
  return o;
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

// Submits all prompts at once and returns each one's greedy tokens.
std::vector<std::vector<int32_t>> RunTogether(EngineCore& core,
                                              const std::vector<std::vector<int32_t>>& prompts,
                                              int32_t max_tokens) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) {
    auto s = core.AddRequest(GreedyRequest(p, max_tokens));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    streams.push_back(*s);
  }
  testing::RunUntilIdle(core);
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    auto r = Drain(*s);
    EXPECT_TRUE(s->done());
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

std::unique_ptr<EngineCore> MakeCore(const EngineOptions& o, std::shared_ptr<FakeModel> model = {},
                                     TokenText text = {}) {
  if (!model) model = std::make_shared<FakeModel>();
  auto e = EngineCore::Create(model, o, GenerationDefaults{}, std::move(text));
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(*e);
}

TEST(EngineCoreTest, BatchOf32EqualsEachPromptAlone) {
  auto prompts = RandomPrompts(32, 1, 3, 60);
  auto core = MakeCore(SmallCoreOptions());
  std::vector<std::vector<int32_t>> alone;
  alone.reserve(prompts.size());
  for (const auto& p : prompts) alone.push_back(RunTogether(*core, {p}, 10)[0]);
  ExpectMatchesOracle(prompts, alone, 10);
  auto together = RunTogether(*core, prompts, 10);
  EXPECT_EQ(together, alone);
  EXPECT_EQ(core->Stats().kv_blocks_used, 0);
}

// The serving loop publishes the stats /metrics answers from in callbacks.before_events: every
// event a client can read was posted after a snapshot counting its request, running while it
// streams tokens and finished at its final event (a client that has read a token and asks at once
// finds it counted; a test killing a server behind nginx relies on it).
TEST(EngineCoreTest, EventsArePostedAfterStatsThatCountTheirRequest) {
  auto core = MakeCore(SmallCoreOptions());
  std::optional<EngineStats> published;
  EngineCore::Callbacks callbacks;
  callbacks.before_events = [&] { published = core->Stats(); };
  core->set_callbacks(std::move(callbacks));
  auto stream = *core->AddRequest(GreedyRequest({1, 2, 3}, 5));
  int64_t tokens = 0;
  while (core->has_work()) {
    published.reset();
    ASSERT_TRUE(core->Step());
    const Result r = Drain(*stream)[0];
    if (r.tokens.empty()) continue;
    tokens += static_cast<int64_t>(r.tokens.size());
    ASSERT_TRUE(published.has_value()) << "tokens posted with no stats published, token " << tokens;
    if (r.finish == FinishReason::kNone) {
      EXPECT_EQ(published->num_running, 1) << "token " << tokens;
    } else {
      EXPECT_EQ(published->requests_finished, 1) << "final event";
    }
  }
  EXPECT_EQ(tokens, 5);
}

TEST(EngineCoreTest, ChunkedPrefillAtSevenTokensPerStepGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 2, 3, 60);
  EngineOptions o = SmallCoreOptions();
  o.max_num_batched_tokens = 7;
  auto core = MakeCore(o);
  ExpectMatchesOracle(prompts, RunTogether(*core, prompts, 8), 8);
  EXPECT_EQ(core->Stats().kv_blocks_used, 0);
}

TEST(EngineCoreTest, ForcedPrefixCacheHitGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 3, 20, 60);
  auto core = MakeCore(SmallCoreOptions());
  auto first = RunTogether(*core, prompts, 6);
  const EngineStats before = core->Stats();
  auto second = RunTogether(*core, prompts, 6);
  const EngineStats after = core->Stats();
  EXPECT_GT(after.prefix_cache_hits - before.prefix_cache_hits, 32 * 16);
  EXPECT_EQ(first, second);
  ExpectMatchesOracle(prompts, second, 6);
}

TEST(EngineCoreTest, PreemptionUnderASmallKvBudgetGivesTheSameTokens) {
  auto prompts = RandomPrompts(32, 4, 10, 40);
  for (bool prefix_caching : {true, false}) {
    EngineOptions o = SmallCoreOptions();
    o.enable_prefix_caching = prefix_caching;
    o.kv_cache_memory_bytes = 40 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
    auto core = MakeCore(o);
    auto got = RunTogether(*core, prompts, 24);
    ExpectMatchesOracle(prompts, got, 24);
    const EngineStats s = core->Stats();
    EXPECT_GT(s.num_preemptions, 0);
    EXPECT_EQ(s.kv_blocks_used, 0);
  }
}

TEST(EngineCoreTest, F16KvCacheGivesTheSameTokens) {
  auto prompts = RandomPrompts(8, 5, 5, 30);
  EngineOptions o = SmallCoreOptions();
  o.kv_cache_dtype = DType::kF16;
  auto core = MakeCore(o);
  ExpectMatchesOracle(prompts, RunTogether(*core, prompts, 5), 5);
}

TEST(EngineCoreTest, SharedThousandTokenPrefixIsComputedOnce) {
  EngineOptions o = SmallCoreOptions();
  o.block_size = 16;
  o.kv_cache_memory_bytes = 512 * KvCache::BlockBytes(FakeModel().config(), 16, DType::kF32);
  o.max_num_batched_tokens = 2048;
  auto model = std::make_shared<FakeModel>();
  auto core = MakeCore(o, model);
  auto prefix = RandomPrompts(1, 6, 1000, 1000)[0];
  std::vector<int32_t> a = prefix, b = prefix;
  for (int i = 0; i < 30; ++i) a.push_back(i);
  for (int i = 0; i < 30; ++i) b.push_back(100 + i);
  RunTogether(*core, {a}, 4);
  const EngineStats s1 = core->Stats();
  const int64_t computed_before = model->num_forward_tokens.load();
  auto out_b = RunTogether(*core, {b}, 4);
  const EngineStats s2 = core->Stats();
  // 1,000 shared tokens = 62 full blocks of 16 (992 tokens) served from the cache.
  EXPECT_EQ(s2.prefix_cache_hits - s1.prefix_cache_hits, 992);
  const int64_t computed = model->num_forward_tokens.load() - computed_before;
  EXPECT_EQ(computed, static_cast<int64_t>(b.size()) - 992 + 3);  // suffix + 3 decode steps
  EXPECT_EQ(s2.computed_tokens - s1.computed_tokens, computed);
  EXPECT_EQ(out_b[0], FakeGreedy(b, FakeModel::kVocab, 4));
}

TEST(EngineCoreTest, CacheSaltKeepsTenantsApart) {
  auto core = MakeCore(SmallCoreOptions());
  auto p = RandomPrompts(1, 7, 40, 40)[0];
  GenerateRequest r1 = GreedyRequest(p, 2);
  r1.cache_salt = "tenant-a";
  Collect(*core, **core->AddRequest(r1));
  const EngineStats s1 = core->Stats();
  GenerateRequest r2 = GreedyRequest(p, 2);
  r2.cache_salt = "tenant-b";
  Collect(*core, **core->AddRequest(r2));
  const EngineStats s2 = core->Stats();
  EXPECT_EQ(s2.prefix_cache_hits, s1.prefix_cache_hits);
  GenerateRequest r3 = GreedyRequest(p, 2);
  r3.cache_salt = "tenant-a";
  Collect(*core, **core->AddRequest(r3));
  EXPECT_GT(core->Stats().prefix_cache_hits, s2.prefix_cache_hits);
}

TEST(EngineCoreTest, NoBlockIsHeldAfterAbortAtEveryStage) {
  EngineOptions o = SmallCoreOptions();
  o.max_num_batched_tokens = 7;
  auto core = MakeCore(o);
  auto prompts = RandomPrompts(3, 8, 30, 30);
  GenerateRequest a = GreedyRequest(prompts[0], 50);
  a.request_id = "prefill";
  GenerateRequest b = GreedyRequest(prompts[1], 50);
  b.request_id = "decode";
  auto sa = *core->AddRequest(a);
  auto sb = *core->AddRequest(b);
  // Mid-prefill: after 2 steps of 7 tokens the first 30-token prompt is half computed.
  testing::StepTimes(*core, 2);
  EXPECT_GT(core->Stats().kv_blocks_used, 0);
  core->AbortRequest("prefill");
  // Before admission: added and aborted between two steps.
  GenerateRequest c = GreedyRequest(prompts[2], 5);
  c.request_id = "never";
  auto sc = *core->AddRequest(c);
  core->AbortRequest("never");
  // Mid-decode: the second prompt is computed after 5 more steps, then decodes.
  testing::StepTimes(*core, 7);
  core->AbortRequest("decode");
  EXPECT_FALSE(core->has_work());
  auto ra = Drain(*sa), rb = Drain(*sb), rc = Drain(*sc);
  EXPECT_EQ(ra[0].finish, FinishReason::kAbort);
  EXPECT_TRUE(ra[0].tokens.empty());
  EXPECT_EQ(rb[0].finish, FinishReason::kAbort);
  EXPECT_FALSE(rb[0].tokens.empty());
  EXPECT_EQ(rc[0].finish, FinishReason::kAbort);
  EXPECT_TRUE(sa->done() && sb->done() && sc->done());
  const EngineStats s = core->Stats();
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.finished_abort, 3);
  // Ids are free again after their request ended; a live id is refused.
  EXPECT_TRUE(core->AddRequest(a).ok());
  EXPECT_EQ(core->AddRequest(a).status().code(), StatusCode::kInvalidArgument);
}

TEST(EngineCoreTest, StopStringSplitAcrossTokensNeverLeaks) {
  auto model = std::make_shared<FakeModel>();
  const std::vector<int32_t> prompt = {1, 2, 3};
  // Tokens: 256 "Hel", 257 "lo </", 258 "st", 259 "op> after".
  model->script = {256, 257, 258, 259, 256};
  model->script_start = 3;
  auto core = MakeCore(SmallCoreOptions(), model,
                       testing::FakeTokenText({"Hel", "lo </", "st", "op> after"}));
  GenerateRequest r = GreedyRequest(prompt, 20);
  r.stop.stop = {"</stop>"};
  auto res = Collect(*core, **core->AddRequest(r));
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
  res = Collect(*core, **core->AddRequest(r));
  EXPECT_EQ(res[0].text, "Hello </stop>");
}

TEST(EngineCoreTest, EosStopTokensMinAndMaxTokens) {
  auto model = std::make_shared<FakeModel>();
  model->script = {'a', 'b', FakeModel::kEos, 'c', 300};
  model->script_start = 2;
  auto core = MakeCore(SmallCoreOptions(), model, testing::FakeTokenText({}));
  GenerateRequest r = GreedyRequest({7, 8}, 10);
  r.stop.ignore_eos = false;
  auto res = Collect(*core, **core->AddRequest(r));
  EXPECT_EQ(res[0].finish, FinishReason::kStop);
  EXPECT_EQ(res[0].tokens, (std::vector<int32_t>{'a', 'b', FakeModel::kEos}));
  EXPECT_EQ(res[0].text, "ab");
  EXPECT_EQ(res[0].usage->completion_tokens, 3);
  EXPECT_EQ(res[0].usage->prompt_tokens, 2);
  // min_tokens bans EOS until 4 tokens: the script's EOS is replaced by the runner-up.
  r.stop.min_tokens = 4;
  res = Collect(*core, **core->AddRequest(r));
  ASSERT_GE(res[0].tokens.size(), 4u);
  EXPECT_NE(res[0].tokens[2], FakeModel::kEos);
  // stop_token_ids.
  r.stop.min_tokens = 0;
  r.stop.ignore_eos = true;
  r.stop.stop_token_ids = {'c'};
  res = Collect(*core, **core->AddRequest(r));
  EXPECT_EQ(res[0].finish, FinishReason::kStop);
  EXPECT_EQ(res[0].stop_reason, std::to_string('c'));
  EXPECT_EQ(res[0].tokens.size(), 4u);
  // max_tokens.
  r.stop.stop_token_ids.clear();
  r.stop.max_tokens = 3;
  res = Collect(*core, **core->AddRequest(r));
  EXPECT_EQ(res[0].finish, FinishReason::kLength);
  EXPECT_EQ(res[0].tokens.size(), 3u);
}

TEST(EngineCoreTest, NChoicesShareThePromptAndSeedsAreReproducible) {
  auto core = MakeCore(SmallCoreOptions());
  auto p = RandomPrompts(1, 9, 40, 40)[0];
  GenerateRequest r = GreedyRequest(p, 6);
  r.n = 3;
  auto res = Collect(*core, **core->AddRequest(r));
  ASSERT_EQ(res.size(), 3u);
  for (const Result& c : res) EXPECT_EQ(c.tokens, FakeGreedy(p, FakeModel::kVocab, 6));
  EXPECT_GE(core->Stats().prefix_cache_hits, 2 * 36);  // choices 1, 2 reuse 9 blocks each
  // Sampling with a seed: same seed, same tokens; choices differ from each other.
  GenerateRequest s = r;
  s.sampling.temperature = 1.0f;
  s.sampling.seed = 77;
  auto s1 = Collect(*core, **core->AddRequest(s));
  auto s2 = Collect(*core, **core->AddRequest(s));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s1[i].tokens, s2[i].tokens);
  EXPECT_NE(s1[0].tokens, s1[1].tokens);
}

TEST(EngineCoreTest, LogprobsComeWithEachToken) {
  auto core = MakeCore(SmallCoreOptions());
  GenerateRequest r = GreedyRequest({5, 6, 7}, 3);
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 2;
  auto res = Collect(*core, **core->AddRequest(r));
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

TEST(EngineCoreTest, BadRequestsAreRefusedWithClearErrors) {
  EngineOptions o = SmallCoreOptions();
  o.max_model_len = 100;
  o.kv_cache_memory_bytes = 10 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
  auto core = MakeCore(o);
  EXPECT_EQ(core->AddRequest(GreedyRequest({}, 1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(core->AddRequest(GreedyRequest({9999}, 1)).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<int32_t> long_prompt(100, 1);
  EXPECT_EQ(core->AddRequest(GreedyRequest(long_prompt, 1)).status().code(),
            StatusCode::kInvalidArgument);
  // 30 + 20 tokens need 13 blocks of 4; the cache has 10.
  auto never = core->AddRequest(GreedyRequest(std::vector<int32_t>(30, 1), 20));
  EXPECT_EQ(never.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(never.status().message().find("KV"), std::string::npos);
  GenerateRequest bad = GreedyRequest({1}, 1);
  bad.sampling.top_p = 2.0f;
  EXPECT_EQ(core->AddRequest(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(core->has_work());
}

TEST(EngineCoreTest, DestroyingTheCoreAbortsLiveRequests) {
  auto core = MakeCore(SmallCoreOptions());
  auto s = *core->AddRequest(GreedyRequest({1, 2, 3}, 3000));
  testing::StepTimes(*core, 3);
  core.reset();
  auto r = Drain(*s);
  EXPECT_EQ(r[0].finish, FinishReason::kAbort);
  EXPECT_EQ(r[0].tokens.size(), 3u);
  EXPECT_TRUE(s->done());
}

// An outbox that nobody reads past its limit (a server's client that stopped reading its stream)
// stops the requests posting there: every choice ends with abort and its blocks are freed, while
// a request whose reader keeps up runs to its length.
TEST(EngineCoreTest, AnUnreadOutboxPastItsLimitAbortsItsRequests) {
  auto core = MakeCore(SmallCoreOptions());
  constexpr int64_t kLimit = 5;
  auto unread = std::make_shared<Outbox>(kLimit);
  GenerateRequest two = GreedyRequest({1, 2, 3}, 100);
  two.n = 2;
  auto stalled = *core->AddRequest(two, unread);
  auto read = *core->AddRequest(GreedyRequest({4, 5}, 40), std::make_shared<Outbox>(kLimit));
  std::vector<int32_t> read_tokens;
  while (core->has_work()) {
    ASSERT_TRUE(core->Step());
    const std::vector<Result> r = Drain(*read);  // the reader that keeps up
    read_tokens.insert(read_tokens.end(), r[0].tokens.begin(), r[0].tokens.end());
  }
  const std::vector<Result> r = Drain(*stalled);
  for (const Result& choice : r) {
    EXPECT_EQ(choice.finish, FinishReason::kAbort);
    EXPECT_EQ(choice.error.code(), StatusCode::kResourceExhausted);
    // Stopped once more than kLimit events waited: far short of max_tokens.
    EXPECT_LE(choice.tokens.size(), static_cast<size_t>(kLimit));
  }
  EXPECT_TRUE(stalled->done());
  EXPECT_EQ(read_tokens, FakeGreedy({4, 5}, FakeModel::kVocab, 40));
  EXPECT_EQ(core->Stats().kv_blocks_used, 0);
}

TEST(EngineCoreTest, ForwardFailureEndsTheBatchWithErrorsAndFreesBlocks) {
  auto model = std::make_shared<FakeModel>();
  auto core = MakeCore(SmallCoreOptions(), model);
  auto ok = *core->AddRequest(GreedyRequest({1, 2, 3}, 2));
  testing::RunUntilIdle(*core);
  model->fail_at_step = model->num_steps.load();
  auto failed = *core->AddRequest(GreedyRequest({4, 5, 6}, 2));
  testing::RunUntilIdle(*core);
  auto r = Drain(*failed);
  EXPECT_EQ(r[0].finish, FinishReason::kError);
  EXPECT_EQ(r[0].error.code(), StatusCode::kInternal);
  EXPECT_EQ(core->Stats().kv_blocks_used, 0);
  EXPECT_EQ(Drain(*ok)[0].finish, FinishReason::kLength);
}

}  // namespace
}  // namespace tinyserve
