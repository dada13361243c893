#include "bench/stats.h"

#include <gtest/gtest.h>

namespace tinyserve::bench {
namespace {

TEST(StatsTest, PercentilesInterpolateLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) = [3, 7.6, 9.76].
  Distribution d = Summarize({10, 1, 4, 2, 3});
  EXPECT_EQ(d.n, 5);
  EXPECT_DOUBLE_EQ(d.mean, 4);
  EXPECT_DOUBLE_EQ(d.p50, 3);
  EXPECT_NEAR(d.p90, 7.6, 1e-12);
  EXPECT_NEAR(d.p99, 9.76, 1e-12);
  EXPECT_NEAR(d.std, std::sqrt(10.0), 1e-12);  // Population: mean of squared deviations = 10.
  EXPECT_EQ(Summarize({}).n, 0);
  EXPECT_DOUBLE_EQ(Summarize({7}).p99, 7);
}

TEST(StatsTest, SloParsing) {
  StatusOr<Slo> slo = ParseSlo("ttft=500,e2e=5000");
  ASSERT_TRUE(slo.ok());
  EXPECT_DOUBLE_EQ(slo->ttft_ms, 500);
  EXPECT_DOUBLE_EQ(slo->e2e_ms, 5000);
  EXPECT_DOUBLE_EQ(ParseSlo("e2e=100")->ttft_ms, 0);
  EXPECT_FALSE(ParseSlo("tpot=3").ok());
  EXPECT_FALSE(ParseSlo("ttft=fast").ok());
  EXPECT_EQ(FormatSlo(Slo{}), "none");
}

RequestRecord Record(int task, bool ok, double ttft_s, double e2e_s, int tokens,
                     bool warmup = false) {
  RequestRecord r;
  r.task_idx = task;
  r.warmup = warmup;
  r.outcome.ttft_s = ttft_s;
  r.outcome.e2e_s = e2e_s;
  r.outcome.output_tokens = tokens;
  if (!ok) r.outcome.cause = "timeout";
  return r;
}

TEST(StatsTest, LevelStatsCountGoodputFailuresAndTasks) {
  Workload w;
  w.tasks.resize(2);
  w.tasks[0].name = "a";
  w.tasks[1].name = "b";
  LevelResult r;
  r.level.users = 4;
  r.window_start_s = 1;
  r.window_end_s = 3;  // A 2 s window.
  r.records = {Record(0, true, 0.1, 1.0, 11), Record(0, true, 0.5, 2.0, 21),
               Record(1, true, 0.2, 0.4, 5), Record(1, false, -1, 30, 0),
               Record(0, true, 9, 9, 9, /*warmup=*/true)};
  Slo slo{/*ttft_ms=*/300, /*e2e_ms=*/1500};
  LevelStats s = ComputeLevelStats(r, w, slo, {});
  EXPECT_EQ(s.requests, 4);
  EXPECT_EQ(s.ok, 3);
  EXPECT_EQ(s.failures_by_cause.at("timeout"), 1);
  EXPECT_DOUBLE_EQ(s.failure_rate, 0.25);
  EXPECT_DOUBLE_EQ(s.rps, 1.5);
  EXPECT_DOUBLE_EQ(s.output_tokens_per_s, 37 / 2.0);
  EXPECT_DOUBLE_EQ(s.goodput_rps, 1.0);  // Records 1 and 3 meet both SLOs.
  // No deadline declared: every success counts; a 1.5 s deadline leaves out record 2 (2.0 s).
  EXPECT_DOUBLE_EQ(s.deadline_goodput_rps, 1.5);
  EXPECT_DOUBLE_EQ(ComputeLevelStats(r, w, slo, {}, /*deadline_s=*/1.5).deadline_goodput_rps, 1.0);
  EXPECT_DOUBLE_EQ(s.slo_attainment, 0.5);
  EXPECT_NEAR(s.tpot_ms.mean, ((900.0 / 10) + (1500.0 / 20) + (200.0 / 4)) / 3, 1e-9);
  EXPECT_EQ(s.tasks[0].requests, 2);
  EXPECT_EQ(s.tasks[1].failures, 1);
  EXPECT_NEAR(s.tasks[0].e2e_ms.mean, 1500, 1e-9);
  EXPECT_NEAR(s.tasks[0].e2e_ms.std, 500, 1e-9);
  EXPECT_FALSE(LevelHolds(s, slo));
}

TEST(StatsTest, KneeIsTheLastLevelOfTheLeadingRunThatHolds) {
  Slo slo{1000, 0};
  auto level = [](int users, int64_t failures, double p99_ttft) {
    LevelStats s;
    s.users = users;
    s.ok = 10;
    s.failures = failures;
    s.ttft_ms.p99 = p99_ttft;
    return s;
  };
  EXPECT_EQ(FindKnee({level(1, 0, 100), level(4, 0, 900), level(8, 0, 1100)}, slo), 1);
  EXPECT_EQ(FindKnee({level(1, 0, 100), level(4, 1, 100), level(8, 0, 100)}, slo), 0);
  EXPECT_EQ(FindKnee({level(1, 2, 100)}, slo), -1);
}

TEST(StatsTest, ServerSummaryTakesPeaksMeansAndCounterIncrease) {
  std::vector<ServerSample> samples(3);
  samples[0] = {0, 1e9, 0.1, 1, 0, 5};
  samples[1] = {1, 2e9, 0.3, 2, 4, 7};
  samples[2] = {2, -1, 0.2, 3, 2, 9};
  ServerStats s = SummarizeServer(samples);
  EXPECT_DOUBLE_EQ(s.rss_max_bytes, 2e9);
  EXPECT_NEAR(s.kv_usage_mean, 0.2, 1e-12);
  EXPECT_DOUBLE_EQ(s.kv_usage_max, 0.3);
  EXPECT_DOUBLE_EQ(s.waiting_max, 4);
  EXPECT_DOUBLE_EQ(s.preemptions, 4);
  EXPECT_DOUBLE_EQ(SummarizeServer({}).rss_max_bytes, -1);
}

}  // namespace
}  // namespace tinyserve::bench
