// The admission hooks of the engine: tickets from Engine::admission() follow a request through
// the engine, and queued work past its deadline is shed before it runs.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/engine_warmup.h"
#include "engine/kv_cache.h"
#include "engine/testing/fake_model.h"

namespace tinyserve {
namespace {

using testing::FakeModel;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Engine> MakeEngine(std::shared_ptr<FakeModel> model) {
  EngineOptions o;
  o.max_num_batched_tokens = 64;
  o.block_size = 4;
  o.kv_cache_dtype = DType::kF32;
  o.kv_cache_memory_bytes = 1024 * KvCache::BlockBytes(model->config(), 4, DType::kF32);
  o.threads = 1;
  auto engine = Engine::Create(std::move(model), o);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(*engine);
}

GenerateRequest Greedy(int32_t prompt_len, int32_t max_tokens) {
  GenerateRequest r;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_token_ids.push_back(i % 500);
  r.sampling.temperature = 0.0f;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

struct Outcome {
  int32_t tokens = 0;
  FinishReason finish = FinishReason::kNone;
  Status error;
};

Outcome DrainOutcome(RequestStream& stream) {
  Outcome o;
  while (auto e = stream.Next(std::chrono::seconds(20))) {
    o.tokens += static_cast<int32_t>(e->token_ids.size());
    if (e->finish_reason != FinishReason::kNone) {
      o.finish = e->finish_reason;
      o.error = e->error;
    }
  }
  return o;
}

TEST(EngineAdmission, WorkPastItsDeadlineIsShedBeforeItRuns) {
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(model);
  GenerateRequest late = Greedy(40, 8);
  WorkRequest w = WorkOfRequest(late, engine->limits().max_model_len);
  w.deadline = Clock::now() - std::chrono::milliseconds(1);
  late.admission_ticket = engine->admission().Register(w, Clock::now());
  auto stream = engine->Submit(std::move(late));
  ASSERT_TRUE(stream.ok());
  Outcome o = DrainOutcome(**stream);
  EXPECT_EQ(o.finish, FinishReason::kError);
  EXPECT_EQ(o.error.code(), StatusCode::kUnavailable) << o.error.ToString();
  EXPECT_EQ(o.tokens, 0);
  EXPECT_EQ(model->num_forward_tokens.load(), 0);  // no work was spent on it
  EXPECT_EQ(engine->admission().Stats().shed, 1);
}

TEST(EngineAdmission, OneTicketCoversEveryPromptAndChoiceOfACall) {
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(model);
  WorkRequest w;
  w.client = "user-1";
  w.prompt_lens = {30, 50};
  w.n = 2;
  w.max_tokens = 6;
  w.deadline = Clock::now() + std::chrono::hours(1);
  AdmissionDecision d = engine->admission().Admit(w, Clock::now());
  ASSERT_TRUE(d.admitted());
  // (Checked before submitting: the engine thread may finish the work before we look again.)
  EXPECT_EQ(engine->admission().Stats().num_tickets, 1);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int32_t len : w.prompt_lens) {
    GenerateRequest r = Greedy(len, 6);
    r.n = 2;
    r.admission_ticket = d.ticket;
    auto s = engine->Submit(std::move(r));
    ASSERT_TRUE(s.ok());
    streams.push_back(*s);
  }
  for (auto& s : streams) {
    Outcome o = DrainOutcome(*s);
    EXPECT_EQ(o.finish, FinishReason::kLength);
    EXPECT_EQ(o.tokens, 12);
  }
  // Every choice reported back before its final event: the ticket is gone, and the steps
  // taught the predictor.
  AdmissionStats s = engine->admission().Stats();
  EXPECT_EQ(s.num_tickets, 0);
  EXPECT_EQ(s.num_clients, 0);
  EXPECT_GT(s.prefill_tokens_per_s, 0);
  EXPECT_EQ(s.num_waits, 1);
}

// The calibration an idle engine with stale estimates asks for (AdmissionDecision::
// recalibrate): submitted without waiting, it runs beside client work and measures a prefill
// and decodes at several batch sizes. Its requests end before a longer one submitted after.
TEST(EngineAdmission, CalibrationRunsBesideClientWork) {
  auto model = std::make_shared<FakeModel>();
  auto engine = MakeEngine(model);
  StartCalibration(*engine);
  auto stream = engine->Submit(Greedy(4, 48));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  const Outcome o = DrainOutcome(**stream);
  EXPECT_EQ(o.finish, FinishReason::kLength);
  EXPECT_EQ(o.tokens, 48);
  const EngineStats s = engine->Stats();
  // Stats are published after each step: the client's own last step may not be in yet, the
  // calibration's (earlier) steps are.
  EXPECT_GE(s.finished_length, 5) << "one long and four short calibration requests";
  EXPECT_EQ(s.requests_rejected, 0);
  EXPECT_GT(engine->admission().Stats().prefill_tokens_per_s, 0);
}

}  // namespace
}  // namespace tinyserve
