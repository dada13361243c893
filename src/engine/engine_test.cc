// The serving loop around the core (the core's behaviour is pinned by engine_core_test): the
// thread, the queue, Submit / Abort from other threads and the outboxes. Waits are blocking
// reads of streams and latches, never sleeps.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <latch>
#include <random>
#include <semaphore>
#include <thread>

#include "engine/kv_cache.h"
#include "engine/testing/fake_model.h"

namespace tinyserve {
namespace {

using testing::FakeGreedy;
using testing::FakeModel;
using testing::GreedyRequest;

EngineOptions SmallOptions() {
  EngineOptions o;
  o.max_num_batched_tokens = 256;
  o.block_size = 4;
  o.kv_cache_dtype = DType::kF32;
  o.kv_cache_memory_bytes = 4096 * KvCache::BlockBytes(FakeModel().config(), 4, DType::kF32);
  o.threads = 1;
  return o;
}

std::unique_ptr<Engine> MakeEngine(const EngineOptions& o, std::shared_ptr<FakeModel> model = {}) {
  if (!model) model = std::make_shared<FakeModel>();
  auto e = Engine::Create(model, o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(*e);
}

// Blocks until the stream ends; the tokens of choice 0 and its finish reason.
std::pair<std::vector<int32_t>, FinishReason> ReadAll(RequestStream& s) {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  while (auto e = s.Next()) {
    tokens.insert(tokens.end(), e->token_ids.begin(), e->token_ids.end());
    if (e->finish_reason != FinishReason::kNone) finish = e->finish_reason;
  }
  return {tokens, finish};
}

TEST(EngineTest, RequestsFromManyThreadsGetTheirOwnGreedyTokens) {
  auto engine = MakeEngine(SmallOptions());
  constexpr int kThreads = 4, kEach = 6;
  std::vector<std::vector<int32_t>> prompts(kThreads * kEach);
  std::mt19937_64 rng(1);
  for (auto& p : prompts) {
    p.resize(3 + rng() % 40);
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % 500);
  }
  std::vector<std::vector<int32_t>> got(prompts.size());
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::shared_ptr<RequestStream>> streams;
      streams.reserve(kEach);
      for (int i = 0; i < kEach; ++i)
        streams.push_back(*engine->Submit(GreedyRequest(prompts[t * kEach + i], 8)));
      for (int i = 0; i < kEach; ++i) got[t * kEach + i] = ReadAll(*streams[i]).first;
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i], FakeGreedy(prompts[i], FakeModel::kVocab, 8)) << "prompt " << i;
  }
}

TEST(EngineTest, StreamsOfOneCallShareAnOutbox) {
  auto engine = MakeEngine(SmallOptions());
  auto outbox = std::make_shared<Outbox>();
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4, 5}, {6}};
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int32_t p = 0; p < 3; ++p) {
    GenerateRequest r = GreedyRequest(prompts[p], 4 + p);
    r.n = p == 2 ? 2 : 1;
    streams.push_back(*engine->Submit(r, outbox, /*tag=*/p));
  }
  std::vector<std::vector<int32_t>> tokens(4);  // [prompt 0, prompt 1, prompt 2 choice 0, 1]
  int finished = 0;
  while (auto item = outbox->Next()) {
    ASSERT_GE(item->tag, 0);
    ASSERT_LT(item->tag, 3);
    auto& t = tokens[item->tag + item->event.index];
    t.insert(t.end(), item->event.token_ids.begin(), item->event.token_ids.end());
    if (item->event.finish_reason != FinishReason::kNone) ++finished;
  }
  EXPECT_TRUE(outbox->done());
  EXPECT_EQ(finished, 4);
  for (int32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(tokens[p], FakeGreedy(prompts[p], FakeModel::kVocab, 4 + p)) << p;
  }
  EXPECT_EQ(tokens[3], tokens[2]);
}

// A server answers /metrics from Stats(): a client that has read the end of its response and
// asks at once must find the request counted. Requests of different lengths finish in different
// steps while others still run (the step goes on past each final event), and the reader checks
// the counts the moment each final event arrives.
TEST(EngineTest, AFinishedRequestIsCountedWhenItsFinalEventIsRead) {
  auto engine = MakeEngine(SmallOptions());
  auto outbox = std::make_shared<Outbox>();
  constexpr int kRequests = 32;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(engine->Submit(GreedyRequest({1 + i, 2, 3}, 1 + i % 8), outbox, i).ok());
  }
  int64_t finished = 0, tokens = 0;
  while (auto item = outbox->Next()) {
    tokens += static_cast<int64_t>(item->event.token_ids.size());
    if (item->event.finish_reason == FinishReason::kNone) continue;
    ++finished;
    const EngineStats s = engine->Stats();
    ASSERT_GE(s.finished_length, finished) << "request " << item->tag;
    ASSERT_GE(s.generation_tokens, tokens) << "request " << item->tag;
  }
  EXPECT_EQ(finished, kRequests);
}

TEST(EngineTest, SubmitChecksAndAFullQueueAnswerAtOnce) {
  EngineOptions o = SmallOptions();
  o.max_queue_len = 2;
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(o, model);
  EXPECT_EQ(engine->Submit(GreedyRequest({}, 1)).status().code(), StatusCode::kInvalidArgument);
  // Hold the loop inside its first step while submitting.
  std::latch inside(1);
  std::binary_semaphore release(0);
  model->on_forward = [&](int64_t step, const ForwardBatch&) {
    if (step != 0) return;
    inside.count_down();
    release.acquire();
  };
  auto first = engine->Submit(GreedyRequest({1, 2}, 2));
  ASSERT_TRUE(first.ok());
  inside.wait();
  auto q1 = engine->Submit(GreedyRequest({1, 2}, 2));
  auto q2 = engine->Submit(GreedyRequest({1, 2}, 2));
  auto q3 = engine->Submit(GreedyRequest({1, 2}, 2));
  EXPECT_TRUE(q1.ok());
  EXPECT_TRUE(q2.ok());
  EXPECT_EQ(q3.status().code(), StatusCode::kUnavailable);
  GenerateRequest dup = GreedyRequest({1}, 1);
  dup.request_id = (*first)->request_id();
  EXPECT_EQ(engine->Submit(dup).status().code(), StatusCode::kInvalidArgument);
  release.release();
  EXPECT_EQ(ReadAll(**first).second, FinishReason::kLength);
  EXPECT_EQ(ReadAll(**q1).second, FinishReason::kLength);
  EXPECT_EQ(ReadAll(**q2).second, FinishReason::kLength);
  EXPECT_EQ(engine->Stats().requests_rejected, 3);
  // The id is free again once its request ended.
  GenerateRequest again = GreedyRequest({1}, 1);
  again.request_id = (*first)->request_id();
  auto s = engine->Submit(again);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ReadAll(**s);
}

TEST(EngineTest, AbortFromAnotherThreadEndsTheRequest) {
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(SmallOptions(), model);
  // Step 3 holds the engine thread until the abort is queued, so the request cannot run to its
  // end first however the threads are scheduled.
  std::latch decoding(1), aborted(1);
  model->on_forward = [&](int64_t step, const ForwardBatch&) {
    if (step != 3) return;
    decoding.count_down();
    aborted.wait();
  };
  GenerateRequest r = GreedyRequest({1, 2, 3}, 3000);
  r.request_id = "long";
  auto s = *engine->Submit(r);
  decoding.wait();
  engine->Abort("long");
  aborted.count_down();
  const auto [tokens, finish] = ReadAll(*s);
  EXPECT_EQ(finish, FinishReason::kAbort);
  EXPECT_LT(tokens.size(), 3000u);
}

TEST(EngineTest, DestroyingTheEngineAbortsLiveRequests) {
  auto engine = MakeEngine(SmallOptions());
  auto s = *engine->Submit(GreedyRequest({1, 2, 3}, 3000));
  engine.reset();
  EXPECT_EQ(ReadAll(*s).second, FinishReason::kAbort);
}

}  // namespace
}  // namespace tinyserve
