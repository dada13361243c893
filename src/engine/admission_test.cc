#include "engine/admission.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "engine/scheduler.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;

// A fake clock: seconds since an arbitrary origin.
Clock::time_point T(double s) {
  return Clock::time_point{} + std::chrono::hours(1) +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The fake model's known speed: 10 ms per step, 2 ms per decode, 1 ms per prefill token.
double Known(int32_t decodes, int32_t prefill) { return 0.010 + 0.002 * decodes + 0.001 * prefill; }

void Calibrate(AdmissionController& ac) {
  const int32_t steps[][2] = {{1, 0}, {8, 0}, {0, 512}, {4, 100}, {16, 0}, {2, 700}};
  for (const auto& s : steps) ac.OnStep({s[0], s[1], Known(s[0], s[1])}, {}, T(0));
}

WorkRequest Work(std::string client, int32_t prompt, int32_t max_tokens, double deadline_s,
                 double now_s = 0) {
  WorkRequest w;
  w.client = std::move(client);
  w.prompt_lens = {prompt};
  w.max_tokens = max_tokens;
  w.deadline = T(now_s + deadline_s);
  return w;
}

AdmissionOptions Options(int32_t max_num_seqs) {
  AdmissionOptions o;
  o.max_num_seqs = max_num_seqs;
  o.max_num_batched_tokens = 1024;
  o.max_step_s = 0.2;
  return o;
}

// Idle engine, 1000-token prompt, 100 tokens out: one 1000-token step, then 100 decode steps.
constexpr double kAlone = 0.010 + 1.0 + 100 * 0.012;

TEST(Admission, PredictsAnIdleEngineFromTheMeasuredSpeed) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  AdmissionDecision d = ac.Admit(Work("a", 1000, 100, 60), T(0));
  ASSERT_TRUE(d.admitted());
  EXPECT_GT(d.ticket, 0);
  EXPECT_DOUBLE_EQ(d.predicted_wait_s, 0);
  EXPECT_NEAR(d.predicted_finish_s, kAlone, 1e-6);
  AdmissionStats s = ac.Stats();
  EXPECT_EQ(s.admitted, 1);
  EXPECT_NEAR(s.prefill_tokens_per_s, 512 / Known(0, 512), 1e-3);
}

TEST(Admission, RefusesWhatCannotFinishBeforeItsDeadlineWithTheSlack) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  // 10% slack: admitted only when kAlone <= 0.9 * time left.
  AdmissionDecision refused = ac.Admit(Work("a", 1000, 100, kAlone / 0.9 - 0.01), T(0));
  EXPECT_EQ(refused.verdict, AdmissionVerdict::kRefuseDeadline);
  EXPECT_GE(refused.retry_after_s, 1.0);
  EXPECT_TRUE(ac.Admit(Work("a", 1000, 100, kAlone / 0.9 + 0.01), T(0)).admitted());
  EXPECT_EQ(ac.Stats().refused_deadline, 1);
}

TEST(Admission, AnIdleEngineWithStaleEstimatesAsksForACalibrationInsteadOfAProbe) {
  AdmissionController ac(Options(64));
  Calibrate(ac);  // at T(0)
  // Estimates say 2.21 s, the deadline allows 1 s: refused while the estimates are fresh...
  AdmissionDecision fresh = ac.Admit(Work("a", 1000, 100, 1, /*now_s=*/5), T(5));
  EXPECT_FALSE(fresh.admitted());
  EXPECT_FALSE(fresh.recalibrate);
  // ...and after 10 s without a step too (no client request is admitted against the
  // prediction: such probes timed out when the machine was slow), but now the refusal asks
  // for a calibration batch, once per stale period.
  AdmissionDecision stale = ac.Admit(Work("a", 1000, 100, 1, /*now_s=*/11), T(11));
  EXPECT_FALSE(stale.admitted());
  EXPECT_TRUE(stale.recalibrate);
  EXPECT_EQ(stale.retry_after_s, 2);
  EXPECT_FALSE(ac.Admit(Work("a", 1000, 100, 1, /*now_s=*/12), T(12)).recalibrate);
  // The old estimate holds until the calibration's steps determine a new one: here the
  // machine became 4x faster.
  EXPECT_FALSE(ac.Admit(Work("a", 1000, 100, 1.5, /*now_s=*/12), T(12)).admitted());
  ac.OnStep({0, 320, Known(0, 320) / 4}, {}, T(12.1));
  for (int d = 5; d >= 2; --d)
    for (int i = 0; i < 8; ++i) ac.OnStep({d, 0, Known(d, 0) / 4}, {}, T(12.2));
  EXPECT_TRUE(ac.Admit(Work("a", 1000, 100, 1.5, /*now_s=*/12.2), T(12.2)).admitted());
  EXPECT_TRUE(ac.TakeShed(T(12.2)).empty());
}

TEST(Admission, QueueDelayLimitAndRetryAfterFromThePredictedWait) {
  AdmissionController ac(Options(/*max_num_seqs=*/1));  // one at a time: waits add up
  Calibrate(ac);
  ASSERT_TRUE(ac.Admit(Work("a", 1000, 100, 60), T(0)).admitted());
  WorkRequest w = Work("b", 1000, 100, 60);
  w.max_queue_delay_s = 1.0;
  AdmissionDecision d = ac.Admit(w, T(0));
  EXPECT_EQ(d.verdict, AdmissionVerdict::kRefuseQueueDelay);
  EXPECT_NEAR(d.predicted_wait_s, kAlone, 1e-6);
  EXPECT_NEAR(d.retry_after_s, kAlone, 1e-6);
  w.max_queue_delay_s = 3.0;
  d = ac.Admit(w, T(0));
  ASSERT_TRUE(d.admitted());
  EXPECT_NEAR(d.predicted_finish_s, 2 * kAlone, 1e-6);
  EXPECT_EQ(ac.Stats().refused_queue_delay, 1);
}

TEST(Admission, BeforeAnyMeasurementOnlyAnIdleQueueIsPromised) {
  AdmissionController ac(Options(64));
  EXPECT_TRUE(ac.Admit(Work("a", 1000, 100, 60), T(0)).admitted());
  AdmissionDecision d = ac.Admit(Work("b", 10, 10, 60), T(0));
  EXPECT_EQ(d.verdict, AdmissionVerdict::kRefuseDeadline);
  EXPECT_EQ(d.retry_after_s, 1.0);
  EXPECT_EQ(ac.PrefillTokenLimit(8), INT32_MAX);  // no budget without a measured speed
}

TEST(Admission, AClientOverItsShareGets429AndOthersStillGetIn) {
  AdmissionController ac(Options(/*max_num_seqs=*/1));
  Calibrate(ac);
  std::vector<int64_t> hog;
  for (int i = 0; i < 4; ++i) {  // finishes at 1x .. 4x kAlone (8.84 s) <= 0.9 * 10 s
    AdmissionDecision d = ac.Admit(Work("hog", 1000, 100, 10), T(0));
    ASSERT_TRUE(d.admitted()) << i;
    hog.push_back(d.ticket);
  }
  // Its fifth would miss only because of its own queue: 429, not 503.
  EXPECT_EQ(ac.Admit(Work("hog", 1000, 100, 10), T(0)).verdict,
            AdmissionVerdict::kRefuseClientShare);
  // Another client is served right after the hog's first request, ahead of its backlog.
  AdmissionDecision light = ac.Admit(Work("light", 1000, 100, 10), T(0));
  ASSERT_TRUE(light.admitted());
  EXPECT_NEAR(light.predicted_finish_s, 2 * kAlone, 1e-6);
  EXPECT_LT(*ac.OrderKey(light.ticket), *ac.OrderKey(hog[1]));
  // The hog's last request now finishes at 5x kAlone > 10 s: shed before it runs.
  EXPECT_EQ(ac.TakeShed(T(0)), std::vector<int64_t>{hog[3]});
  EXPECT_FALSE(ac.OrderKey(hog[3]).has_value());
  AdmissionStats s = ac.Stats();
  EXPECT_EQ(s.refused_client_share, 1);
  EXPECT_EQ(s.shed, 1);
  EXPECT_EQ(s.num_clients, 2);
}

TEST(Admission, WorkOfOtherClientsAheadGives503) {
  AdmissionController ac(Options(/*max_num_seqs=*/1));
  Calibrate(ac);
  for (const char* c : {"a", "b", "c", "d"})
    ASSERT_TRUE(ac.Admit(Work(c, 1000, 100, 10), T(0)).admitted()) << c;
  EXPECT_EQ(ac.Admit(Work("e", 1000, 100, 10), T(0)).verdict, AdmissionVerdict::kRefuseDeadline);
}

TEST(Admission, AnonymousRequestsAreNotOneClientOverItsShare) {
  // Requests without `user` or API key come from anyone: a backlog of them is the server's
  // load, not one client's share (503, where a named client gets 429).
  AdmissionController ac(Options(/*max_num_seqs=*/1));
  Calibrate(ac);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ac.Admit(Work("", 1000, 100, 10), T(0)).admitted()) << i;
  EXPECT_EQ(ac.Admit(Work("", 1000, 100, 10), T(0)).verdict, AdmissionVerdict::kRefuseDeadline);
  EXPECT_EQ(ac.Stats().refused_client_share, 0);
}

TEST(Admission, NewWorkMayNotPushEarlierWorkPastItsDeadline) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  // A's finish alone is kAlone; tight deadline just above it (with slack at admission).
  ASSERT_TRUE(ac.Admit(Work("a", 1000, 100, kAlone / 0.9 + 0.01), T(0)).admitted());
  // B has all the time in the world, but batching it would slow A's decodes past A's deadline.
  EXPECT_EQ(ac.Admit(Work("b", 1000, 100, 600), T(0)).verdict, AdmissionVerdict::kRefuseDeadline);
}

// Work already predicted past its slack (here: the machine slowed after it was admitted) needs
// every seat: nothing joins the batch until it is out of danger, even a request that would
// finish in time itself (admitting such requests is how every running request timed out).
TEST(Admission, NothingJoinsWhileAdmittedWorkIsPredictedLate) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  AdmissionDecision a = ac.Admit(Work("a", 1000, 100, 10), T(0));
  ASSERT_TRUE(a.admitted());
  const AdmissionController::Progress started[] = {{a.ticket, 1000, 1}};
  ac.OnStep({0, 1000, Known(0, 1000)}, started, T(1.01));
  EXPECT_TRUE(ac.Admit(Work("b", 10, 10, 600, 1.01), T(1.01)).admitted());
  ac.Cancel(ac.Admit(Work("c", 10, 10, 600, 1.01), T(1.01)).ticket);
  // Four times slower from here: A's 99 decodes (~4.8 s) end past 10 - 0.1 * 10 s.
  for (int i = 0; i < 300; ++i) {
    const int32_t d = 1 + i % 8, p = (i % 3) * 200;
    ac.OnStep({d, p, 4 * Known(d, p)}, {}, T(4.5));
  }
  EXPECT_EQ(ac.Admit(Work("c", 10, 10, 600, 4.5), T(4.5)).verdict,
            AdmissionVerdict::kRefuseDeadline);
}

// The slack follows how admitted work ends: a finish within 2% of its time of the deadline
// widens it by a step (so fewer requests share the batch), finishes with room narrow it back.
TEST(Admission, SlackWidensAfterANearMissAndNarrowsBack) {
  AdmissionOptions o = Options(64);
  AdmissionController ac(o);
  Calibrate(ac);
  auto run = [&](double finish_at) {
    AdmissionDecision d = ac.Admit(Work("a", 100, 10, 10), T(0));
    EXPECT_TRUE(d.admitted());
    const AdmissionController::Progress started[] = {{d.ticket, 100, 1}};
    ac.OnStep({0, 100, Known(0, 100)}, started, T(0.11));
    ac.OnChoiceFinished(d.ticket, 10, /*natural=*/true, T(finish_at));
  };
  run(9.85);  // 0.15 s left < 2% of 10 s
  EXPECT_DOUBLE_EQ(ac.Stats().deadline_slack, o.deadline_slack + o.slack_step);
  EXPECT_EQ(ac.Stats().late_finishes, 1);
  // A request needing 87% of its time fitted the old slack, not the wider one.
  const double need = 0.010 + 0.5 + 100 * 0.012;  // 500-token prompt, 100 tokens
  EXPECT_EQ(ac.Admit(Work("b", 500, 100, need / 0.87), T(0)).verdict,
            AdmissionVerdict::kRefuseDeadline);
  run(12);  // late (an abort at the deadline ends the same way)
  EXPECT_DOUBLE_EQ(ac.Stats().deadline_slack, o.deadline_slack + 2 * o.slack_step);
  for (int i = 0; i < 9; ++i) run(1);  // a fifth of a step each
  EXPECT_NEAR(ac.Stats().deadline_slack, o.deadline_slack + 0.2 * o.slack_step, 1e-9);
  run(1);
  run(1);  // never below the configured slack
  EXPECT_NEAR(ac.Stats().deadline_slack, o.deadline_slack, 1e-9);
  EXPECT_TRUE(ac.Admit(Work("b", 500, 100, need / 0.87), T(0)).admitted());
  EXPECT_EQ(ac.Stats().late_finishes, 2);
}

TEST(Admission, ShedsQueuedWorkWhenTheEngineSlowsButNeverStartedWork) {
  AdmissionController ac(Options(/*max_num_seqs=*/1));
  Calibrate(ac);
  AdmissionDecision a = ac.Admit(Work("a", 1000, 100, 10), T(0));
  AdmissionDecision b = ac.Admit(Work("b", 1000, 100, 10), T(0));
  ASSERT_TRUE(a.admitted() && b.admitted());
  EXPECT_TRUE(ac.TakeShed(T(0)).empty());
  const AdmissionController::Progress started[] = {{a.ticket, 1000, 1}};
  // The machine becomes 3x slower (e.g. another tenant): every recent step says so.
  ac.OnStep({0, 1000, 3 * Known(0, 1000)}, started, T(3.03));
  for (int i = 0; i < 300; ++i) {
    const int32_t d = 1 + i % 8, p = (i % 3) * 200;
    ac.OnStep({d, p, 3 * Known(d, p)}, {}, T(3.03));
  }
  EXPECT_EQ(ac.TakeShed(T(3.03)), std::vector<int64_t>{b.ticket});
  EXPECT_TRUE(ac.OrderKey(a.ticket).has_value());
  AdmissionStats s = ac.Stats();
  EXPECT_EQ(s.num_waits, 1);  // A started at 0 s (its step took 3.03 s), as predicted
  EXPECT_NEAR(s.actual_wait_sum_s, 0, 1e-6);
}

TEST(Admission, MultiPromptAndNCountAsTheirRealWork) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  WorkRequest big = Work("x", 500, 100, 600);
  big.prompt_lens = {500, 500};
  big.n = 3;  // six sequences decoding
  AdmissionDecision b = ac.Admit(big, T(0));
  ASSERT_TRUE(b.admitted());
  EXPECT_GT(b.predicted_finish_s, kAlone + 0.5);
  ASSERT_TRUE(ac.Admit(Work("y", 1000, 100, 600), T(0)).admitted());
  // Each client's next request is ordered after its own work: x's weighs more.
  const int64_t next_x = *ac.OrderKey(ac.Admit(Work("x", 10, 1, 600), T(0)).ticket);
  const int64_t next_y = *ac.OrderKey(ac.Admit(Work("y", 10, 1, 600), T(0)).ticket);
  EXPECT_GT(next_x, next_y);
}

TEST(Admission, LearnsHowMuchOfMaxTokensRequestsUse) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  for (int i = 0; i < 200; ++i) {
    AdmissionDecision d = ac.Admit(Work("a", 10, 100, 600), T(0));
    ASSERT_TRUE(d.admitted());
    ac.OnChoiceFinished(d.ticket, 25, /*natural=*/true, T(0));  // stopped at a quarter
  }
  EXPECT_EQ(ac.Stats().num_tickets, 0);
  AdmissionDecision d = ac.Admit(Work("a", 1000, 100, 600), T(0));
  EXPECT_LT(d.predicted_finish_s, 1.01 + 30 * 0.012);
  // Aborted choices (e.g. a client that left) teach nothing.
  for (int i = 0; i < 200; ++i) ac.OnChoiceFinished(d.ticket, 1, /*natural=*/false, T(0));
  AdmissionDecision e = ac.Admit(Work("a", 1000, 100, 600), T(0));
  EXPECT_NEAR(e.predicted_finish_s, d.predicted_finish_s, 1e-9);
}

TEST(Admission, StepBudgetSizesPrefillChunks) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  EXPECT_EQ(ac.PrefillTokenLimit(0), INT32_MAX);  // nothing decodes: full speed
  EXPECT_EQ(ac.PrefillTokenLimit(10), 170);       // (0.2 - 0.01 - 0.02) / 0.001
  EXPECT_EQ(ac.PrefillTokenLimit(100), 32);       // decodes alone exceed: the minimum chunk
  AdmissionOptions off = Options(64);
  off.max_step_s = 0;
  AdmissionController unlimited(off);
  Calibrate(unlimited);
  EXPECT_EQ(unlimited.PrefillTokenLimit(10), INT32_MAX);
}

// Steps with decodes and a small prefill chunk take 1.5x what the machine's pure prefill steps
// say those tokens cost (small chunks deep in long prompts cost more per token): one line
// cannot fit both, so budgeted steps keep running over their prediction, and the chunks shrink
// by the measured overrun so that such steps keep the budget.
TEST(Admission, ChunksShrinkWhenBudgetedStepsRunOverThePrediction) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  const int32_t before = ac.PrefillTokenLimit(10);  // (0.2 - 0.01 - 0.02) / 0.001 = 170
  EXPECT_EQ(before, 170);
  for (int i = 0; i < 100; ++i) {
    ac.OnStep({0, 1024, Known(0, 1024)}, {}, T(0));
    ac.OnStep({10, 100, Known(10, 0) + 1.5 * 0.001 * 100}, {}, T(0));
  }
  const AdmissionStats s = ac.Stats();
  EXPECT_GT(s.budget_overrun, 1.1);
  EXPECT_LT(s.budget_overrun, 1.5);
  EXPECT_LT(ac.PrefillTokenLimit(10), before / s.budget_overrun + 1);
  EXPECT_EQ(ac.PrefillTokenLimit(0), INT32_MAX);  // nothing decodes: full speed
}

TEST(Admission, CancelForgetsTheTicket) {
  AdmissionController ac(Options(64));
  Calibrate(ac);
  AdmissionDecision d = ac.Admit(Work("a", 100, 10, 60), T(0));
  ac.Cancel(d.ticket);
  EXPECT_FALSE(ac.OrderKey(d.ticket).has_value());
  EXPECT_EQ(ac.Stats().num_clients, 0);
}

// An engine of known speed under overload, on a fake clock: the real scheduler (with the step
// budget) runs the admitted work, each step takes Known(decodes, prefill) seconds, and clients
// of two kinds arrive faster than it can serve. What was admitted must finish in time.
// The real Scheduler and BlockManager driven on a fake clock by the model of known speed
// (Known), with admission deciding every arrival and shedding every step, as EngineCore does.
struct ReplayConfig {
  bool prefix_caching = false;
  bool predict_cache_hits = true;  // with prefix_caching: arrivals carry their prompt blocks
  // Every `shared_every`-th arrival repeats one of `num_documents` long prompts (the seed's
  // summaries of a few articles); the others are short and distinct. 0: all kPrompt long.
  int shared_every = 0;
  int num_documents = 4;
  int32_t document_len = 1024;
  double every_s = 0.1;  // between arrivals
  // From `slower_from_s` on, every step takes `slower_factor` times the known time (another
  // tenant took part of the machine).
  double slower_from_s = 1e9, slower_factor = 1;
  // Every `short_every`-th request stops (naturally) after a quarter of its max_tokens, the
  // others draw all of them (a chat mix: some answers end early). 0: all draw max_tokens.
  int short_every = 0;
};
struct ReplayResult {
  int64_t arrivals = 0, admitted = 0, finished = 0, late = 0, shed = 0, idle_full_chunks = 0;
  int64_t late_admitted_after = 0;  // late requests admitted after the slowdown's first deadline
  double worst_decode_step = 0, capacity_rps = 0, duration_s = 60;
  AdmissionStats stats;
  double predicted_wait() const { return stats.predicted_wait_sum_s / stats.num_waits; }
  double actual_wait() const { return stats.actual_wait_sum_s / stats.num_waits; }
};

ReplayResult Replay(const ReplayConfig& config, AdmissionOptions o) {
  // As EngineCore sets it: half the cache's blocks.
  if (config.prefix_caching) o.prefix_cache_blocks = 4096 / 2;
  AdmissionController ac(o);
  BlockManager blocks(/*num_blocks=*/4096, /*block_size=*/16, config.prefix_caching);
  Scheduler scheduler({o.max_num_seqs, o.max_num_batched_tokens}, &blocks);
  scheduler.SetPrefillTokenLimit([&](int32_t d) { return ac.PrefillTokenLimit(d); });
  struct Live {
    std::unique_ptr<Sequence> seq;
    double deadline;
    double admitted_at = 0;
    bool started = false;
    int32_t length = 0;  // tokens it draws before it stops
  };
  std::map<int64_t, Live> live;  // by ticket
  const double kDeadline = 5;
  const int32_t kPrompt = 300, kMaxTokens = 40;
  ReplayResult r;
  double t = 0, next_arrival = 0;
  int64_t seq_id = 0;
  while (t < r.duration_s) {
    for (; next_arrival <= t; next_arrival += config.every_s) {
      ++r.arrivals;
      const bool shared = config.shared_every > 0 && r.arrivals % config.shared_every == 0;
      const int32_t prompt = shared ? config.document_len : kPrompt;
      const int64_t doc =
          shared ? (r.arrivals / config.shared_every) % config.num_documents : 1000 + r.arrivals;
      std::vector<int32_t> tokens;
      tokens.reserve(prompt);
      for (int32_t i = 0; i < prompt; ++i) tokens.push_back(int32_t(doc * 2000 + i));
      WorkRequest work = Work(r.arrivals % 2 ? "a" : "b", prompt, kMaxTokens, kDeadline, t);
      if (config.prefix_caching && config.predict_cache_hits)
        work.prompt_blocks = PromptBlockHashes(tokens, "");
      AdmissionDecision d = ac.Admit(work, T(t));
      if (!d.admitted()) continue;
      ++r.admitted;
      auto seq = std::make_unique<Sequence>();
      seq->seq_id = seq_id++;
      seq->arrival = *ac.OrderKey(d.ticket);
      seq->token_ids = tokens;
      seq->num_prompt_tokens = prompt;
      scheduler.AddWaiting(seq.get());
      const bool short_answer = config.short_every > 0 && r.arrivals % config.short_every == 0;
      live[d.ticket] = {std::move(seq), t + kDeadline, t, false,
                        short_answer ? kMaxTokens / 4 : kMaxTokens};
    }
    for (int64_t ticket : ac.TakeShed(T(t))) {
      Live& l = live.at(ticket);
      EXPECT_FALSE(l.started) << "shed after it started";
      scheduler.Finish(l.seq.get());
      live.erase(ticket);
      ++r.shed;
    }
    SchedulerOutput out = scheduler.Schedule();
    if (out.empty()) {
      t = next_arrival;
      continue;
    }
    StepObservation step;
    std::vector<AdmissionController::Progress> progress;
    std::map<const Sequence*, int64_t> ticket_of;
    for (auto& [ticket, l] : live) ticket_of[l.seq.get()] = ticket;
    for (const ScheduledSequence& s : out.scheduled) {
      const bool decode = s.num_new_tokens == 1 && s.sample;
      (decode ? step.num_decodes : step.num_prefill_tokens) += s.num_new_tokens;
      progress.push_back(AdmissionController::ProgressOf(ticket_of.at(s.seq), s, true));
      s.seq->scheduled_once = true;
      live.at(ticket_of.at(s.seq)).started = true;
    }
    step.seconds = Known(step.num_decodes, step.num_prefill_tokens) *
                   (t >= config.slower_from_s ? config.slower_factor : 1);
    // The budget holds once a prefill step has been measured (the very first steps cannot).
    if (step.num_decodes > 0 && t > 1)
      r.worst_decode_step = std::max(r.worst_decode_step, step.seconds);
    if (step.num_decodes == 0 && step.num_prefill_tokens == o.max_num_batched_tokens)
      ++r.idle_full_chunks;
    t += step.seconds;
    scheduler.OnStepComputed(out);
    ac.OnStep(step, progress, T(t));
    for (const ScheduledSequence& s : out.scheduled) {
      if (!s.sample) continue;
      s.seq->token_ids.push_back(7);
      const int64_t ticket = ticket_of.at(s.seq);
      const int32_t length = live.at(ticket).length;
      if (s.seq->num_generated() < length) continue;
      ++r.finished;
      if (t > live.at(ticket).deadline) {
        ++r.late;
        r.late_admitted_after += live.at(ticket).admitted_at > config.slower_from_s + kDeadline;
      }
      scheduler.Finish(s.seq);
      ac.OnChoiceFinished(ticket, length, /*natural=*/true, T(t));
      live.erase(ticket);
    }
  }
  // Capacity bound without caching: a request costs its prefill tokens, its decodes, and its
  // share of the per-step overhead with max_num_seqs sequences batched.
  r.capacity_rps = 1 / (kPrompt * 0.001 + kMaxTokens * (0.002 + 0.010 / o.max_num_seqs));
  r.stats = ac.Stats();
  std::printf(
      "arrivals %ld admitted %ld finished %ld (late %ld) shed %ld; wait predicted %.3f actual "
      "%.3f; slack %.2f\n",
      long(r.arrivals), long(r.admitted), long(r.finished), long(r.late), long(r.shed),
      r.predicted_wait(), r.actual_wait(), r.stats.deadline_slack);
  return r;
}

AdmissionOptions ReplayOptions() {
  AdmissionOptions o;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 256;
  o.max_step_s = 0.1;
  return o;
}

TEST(Admission, UnderOverloadAdmittedWorkMeetsItsDeadlinesAndStepsKeepTheBudget) {
  const AdmissionOptions o = ReplayOptions();
  const ReplayResult r = Replay({}, o);  // ~2.3 requests/s of capacity, 10/s arrive
  EXPECT_EQ(r.late, 0) << "finished after the deadline";
  EXPECT_LT(r.admitted, r.arrivals);
  EXPECT_GT(r.finished, 0.8 * r.duration_s * r.capacity_rps) << "admission kept the engine idle";
  EXPECT_LE(r.worst_decode_step, o.max_step_s + 1e-9);
  EXPECT_GT(r.idle_full_chunks, 0);  // the first prompt ran at full chunk size
  // Only the first mixed steps, before any prefill was measured, may pass the budget.
  EXPECT_GT(r.stats.budgeted_steps, 100);
  EXPECT_LE(r.stats.budgeted_steps_over, 2);
  EXPECT_EQ(r.stats.shed, r.shed);
  EXPECT_EQ(r.stats.admitted, r.admitted);
  ASSERT_GT(r.stats.num_waits, 0);
  // The replay is coarser than the scheduler (whole groups, one prompt at a time), so allow
  // a quarter of a second between predicted and measured mean waits.
  EXPECT_NEAR(r.predicted_wait(), r.actual_wait(), 0.25);
}

TEST(Admission, PromptBlockHashesCoverThePrefixAndTheSalt) {
  std::vector<int32_t> a(40), b(40);
  for (int i = 0; i < 40; ++i) a[i] = b[i] = i;
  b[20] = 999;  // differs in the second block
  const auto ha = PromptBlockHashes(a, ""), hb = PromptBlockHashes(b, "");
  ASSERT_EQ(ha.size(), 2u);  // the partial third block is never cached
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(PromptBlockHashes(a, "tenant-1")[0], ha[0]);
}

// A computed prompt's blocks are remembered (up to prefix_cache_blocks, least recent out
// first) and discount the prefill of later prompts that start with them.
TEST(Admission, ComputedPromptsDiscountLaterOnesUpToTheCacheSize) {
  AdmissionOptions o = Options(64);
  o.prefix_cache_blocks = 64;
  AdmissionController ac(o);
  Calibrate(ac);
  auto work = [](int32_t doc) {
    std::vector<int32_t> tokens(1008);
    for (int i = 0; i < 1008; ++i) tokens[i] = doc * 5000 + i;
    WorkRequest w = Work("a", 1008, 1, 600);
    w.prompt_blocks = PromptBlockHashes(tokens, "");
    return w;
  };
  auto compute = [&](int32_t doc) {  // admitted, its prompt computed, finished
    AdmissionDecision d = ac.Admit(work(doc), T(0));
    const AdmissionController::Progress done[] = {{d.ticket, 1008, 1}};
    ac.OnStep({0, 1008, Known(0, 1008)}, done, T(0));
    ac.OnChoiceFinished(d.ticket, 1, /*natural=*/true, T(0));
    return d.predicted_finish_s;
  };
  const double uncached = compute(1);
  // A prefill step, then the (one) decode step the predictor always counts.
  EXPECT_NEAR(uncached, Known(0, 1008) + Known(1, 0), 1e-6);
  EXPECT_NEAR(compute(1), Known(0, 1) + Known(1, 0), 1e-6);  // 63 blocks hit: the last token
  compute(2);  // 63 more blocks: document 1's leave the 64-block memory
  EXPECT_NEAR(compute(1), uncached, 1e-6);
}

// The seed's shape: a few long documents summarised again and again (the prefix cache holds
// them), short distinct prompts between. A started prompt's cached prefix counts as passed
// (ProgressOf); before, it stayed "to prefill" for the request's whole life, so every
// prediction behind it replayed that prefill again and waits came out 3-50x too long. A queued
// prompt's leading blocks that an earlier prompt has finished computing are predicted cached
// (remembered when computed, not when admitted: a twin still computing does not count).
TEST(Admission, PrefixCacheHitsAreNotPredictedAsPrefillWork) {
  ReplayConfig config;
  config.prefix_caching = true;
  config.shared_every = 2;
  const ReplayResult r = Replay(config, ReplayOptions());
  EXPECT_EQ(r.late, 0) << "finished after the deadline";
  EXPECT_LT(r.admitted, r.arrivals);
  // Half the arrivals cost a 300-token prefill, half ~one token once cached; the engine serves
  // more than the uncached bound because the cached half is cheap.
  EXPECT_GT(r.finished, r.duration_s * r.capacity_rps) << "refused work that would have fit";
  ASSERT_GT(r.stats.num_waits, 0);
  // Stated accuracy: the mean predicted wait within 1.5x of the measured one (plus 0.1 s for
  // waits shorter than a few steps).
  EXPECT_LE(r.predicted_wait(), 1.5 * r.actual_wait() + 0.1);
  EXPECT_GE(r.predicted_wait(), r.actual_wait() / 1.5 - 0.1);
  // Predicting queued prompts uncached refuses work that fits: ~20% fewer finished here.
  config.predict_cache_hits = false;
  const ReplayResult uncached = Replay(config, ReplayOptions());
  EXPECT_EQ(uncached.late, 0);
  EXPECT_GT(r.finished, 1.1 * uncached.finished);
}

// The machine turns 1.6x slower mid-run (what a shared box does): work admitted on the old
// speed may end late, the slack widens with each near miss, and work admitted once the fit
// has seen the new speed (after one deadline) ends in time.
TEST(Admission, AfterTheMachineSlowsTheSlackWidensAndLaterWorkEndsInTime) {
  ReplayConfig config;
  config.slower_from_s = 20;
  config.slower_factor = 1.6;
  const ReplayResult r = Replay(config, ReplayOptions());
  EXPECT_EQ(r.late_admitted_after, 0);
  EXPECT_LE(r.late, 8) << "more late than the batch in flight at the slowdown";
  EXPECT_GT(r.finished, 0.8 * r.duration_s * r.capacity_rps / 1.6 * 0.9);
}

// Half the answers stop at a quarter of max_tokens, so the mean output is 62.5% of it: judged
// on that mean, every request drawing all its tokens ran 60% longer in decode than predicted
// and some ended late (4 of 143 in this replay; the adaptive slack kept it from more).
// Deadlines, and sheds, are judged on the 90th percentile.
TEST(Admission, RequestsThatDrawAllTheirMaxTokensStillEndInTime) {
  ReplayConfig config;
  config.short_every = 2;
  const ReplayResult r = Replay(config, ReplayOptions());
  EXPECT_EQ(r.late, 0) << "finished after the deadline";
  EXPECT_GT(r.finished, 0.8 * r.duration_s * r.capacity_rps) << "admission kept the engine idle";
}

}  // namespace
}  // namespace tinyserve
