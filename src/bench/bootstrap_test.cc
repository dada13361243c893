#include "bench/bootstrap.h"

#include <gtest/gtest.h>

#include "bench/svg_chart.h"

namespace tinyserve::bench {
namespace {

TEST(BootstrapTest, PercentileRuleNeedsOneObservationBeyondIt) {
  EXPECT_FALSE(PercentileReportable(1, 0.5));
  EXPECT_TRUE(PercentileReportable(2, 0.5));
  EXPECT_FALSE(PercentileReportable(9, 0.9));
  EXPECT_TRUE(PercentileReportable(10, 0.9));
  EXPECT_FALSE(PercentileReportable(99, 0.99));
  EXPECT_TRUE(PercentileReportable(100, 0.99));
  EXPECT_EQ(MinSamplesForPercentile(0.5), 2);
  EXPECT_EQ(MinSamplesForPercentile(0.9), 10);
  EXPECT_EQ(MinSamplesForPercentile(0.99), 100);
}

TEST(BootstrapTest, WilsonMatchesTheClosedForm) {
  // Values from the Wilson score formula with z = 1.959964.
  Interval none = WilsonInterval(0, 10);
  EXPECT_NEAR(none.lo, 0.0, 1e-12);
  EXPECT_NEAR(none.hi, 0.27753, 1e-4);
  Interval half = WilsonInterval(5, 10);
  EXPECT_NEAR(half.lo, 0.23659, 1e-4);
  EXPECT_NEAR(half.hi, 0.76341, 1e-4);
  EXPECT_FALSE(WilsonInterval(0, 0).known());
}

std::vector<std::vector<double>> Singletons(int n) {
  std::vector<std::vector<double>> g;
  for (int i = 1; i <= n; ++i) g.push_back({static_cast<double>(i)});
  return g;
}

TEST(BootstrapTest, PercentileIntervalsAreSeededAndNarrowWithMoreData) {
  auto a = BootstrapPercentiles(Singletons(200), {0.5, 0.9}, 7, 500);
  auto b = BootstrapPercentiles(Singletons(200), {0.5, 0.9}, 7, 500);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].lo, b[0].lo);
  EXPECT_EQ(a[1].hi, b[1].hi);
  // The median of 1..200 is 100.5; its interval holds it and is a few tens wide.
  EXPECT_LT(a[0].lo, 100.5);
  EXPECT_GT(a[0].hi, 100.5);
  EXPECT_GT(a[0].hi - a[0].lo, 10);
  EXPECT_LT(a[0].hi - a[0].lo, 60);
  auto big = BootstrapPercentiles(Singletons(5000), {0.5}, 7, 300);
  // 25x the data: the interval relative to the range shrinks about 5x.
  EXPECT_LT((big[0].hi - big[0].lo) / 5000, (a[0].hi - a[0].lo) / 200 / 2.5);
  EXPECT_FALSE(BootstrapPercentiles({}, {0.5}, 7, 100)[0].known());
}

TEST(BootstrapTest, GroupsAreResampledWhole) {
  // Two requests: one with all gaps 1, one with all gaps 100. Any resample's median is 1, 100,
  // or (both drawn) between them; never from a mix within one request.
  std::vector<std::vector<double>> g = {std::vector<double>(50, 1.0),
                                        std::vector<double>(50, 100.0)};
  auto ci = BootstrapPercentiles(g, {0.5}, 3, 400);
  EXPECT_EQ(ci[0].lo, 1.0);
  EXPECT_EQ(ci[0].hi, 100.0);
}

TEST(BootstrapTest, RateOfSteadyWindowsHasNoSpread) {
  Interval steady = BootstrapRate(std::vector<double>(10, 3.0), 10.0, 1, 200);
  EXPECT_DOUBLE_EQ(steady.lo, 3.0);
  EXPECT_DOUBLE_EQ(steady.hi, 3.0);
  Interval bursty = BootstrapRate({0, 0, 0, 0, 0, 0, 0, 0, 0, 30}, 10.0, 1, 500);
  EXPECT_LT(bursty.lo, 3.0);
  EXPECT_GT(bursty.hi, 3.0);
}

LevelResult Level(int users, int ok, int failed, double e2e_s) {
  LevelResult r;
  r.level.users = users;
  r.window_end_s = 10;
  for (int i = 0; i < ok + failed; ++i) {
    RequestRecord q;
    q.start_s = i * 0.01;
    q.outcome.e2e_s = e2e_s;
    q.outcome.ttft_s = e2e_s / 2;
    if (i >= ok) q.outcome.cause = "timeout";
    r.records.push_back(q);
  }
  return r;
}

TEST(BootstrapTest, KneeIsCertainWhenLevelsAreClearCut) {
  std::vector<LevelResult> levels = {Level(1, 50, 0, 0.1), Level(2, 50, 0, 0.2),
                                     Level(4, 0, 50, 0.2)};
  KneeUncertainty u = BootstrapKnee(levels, Slo{1000, 5000}, 1, 9, 100);
  EXPECT_EQ(u.low, 1);
  EXPECT_EQ(u.high, 1);
  EXPECT_DOUBLE_EQ(u.share_at_estimate, 1.0);
}

TEST(BootstrapTest, KneeIsUncertainWhenOneRareFailureDecides) {
  // Level 2 has 1 failure in 100: a resample leaves it out about 37% of the time.
  std::vector<LevelResult> levels = {Level(1, 100, 0, 0.1), Level(2, 99, 1, 0.1),
                                     Level(4, 0, 20, 0.1)};
  KneeUncertainty u = BootstrapKnee(levels, Slo{}, 0, 9, 400);
  EXPECT_EQ(u.low, 0);
  EXPECT_EQ(u.high, 1);
  EXPECT_GT(u.share_at_estimate, 0.5);
  EXPECT_LT(u.share_at_estimate, 0.75);
}

LevelStats Stats(int users, double goodput, double ttft_p50, double waiting) {
  LevelStats s;
  s.users = users;
  s.goodput_rps = goodput;
  s.ttft_ms.n = 20;
  s.ttft_ms.p50 = ttft_p50;
  s.server.waiting_mean = waiting;
  return s;
}

TEST(SaturationTest, NeedsFlatGoodputAndGrowingQueue) {
  // Goodput still rising: not saturated, whatever the queue does.
  EXPECT_FALSE(OverSaturated(Stats(2, 1.0, 100, 0), Stats(4, 1.5, 400, 3)));
  // Flat goodput, queue grew.
  EXPECT_TRUE(OverSaturated(Stats(2, 1.0, 100, 0), Stats(4, 1.05, 110, 2)));
  // Flat goodput, TTFT doubled (no server gauges).
  EXPECT_TRUE(OverSaturated(Stats(2, 1.0, 100, -1), Stats(4, 1.0, 250, -1)));
  // A 50% rise inside overlapping intervals is noise: with the queue growing, saturated.
  LevelStats lo = Stats(2, 1.0, 100, 0), hi = Stats(4, 1.5, 100, 2);
  lo.goodput_ci = {0.6, 1.6};
  hi.goodput_ci = {1.2, 1.8};
  EXPECT_TRUE(OverSaturated(lo, hi));
  hi.goodput_ci = {1.65, 1.8};
  EXPECT_FALSE(OverSaturated(lo, hi));
  // Flat goodput but no queueing (e.g. think-time bound): not saturated.
  EXPECT_FALSE(OverSaturated(Stats(2, 1.0, 100, 0), Stats(4, 1.0, 110, 0.2)));
  // A TTFT rise measured on a handful of requests is noise (a quick-profile run once read
  // 47 -> 635 ms from 3 and 2 requests with the server's queue at 0): not saturated.
  LevelStats few_lo = Stats(1, 0.1, 47, 0), few_hi = Stats(2, 0.1, 635, 0);
  few_lo.ttft_ms.n = 3;
  few_hi.ttft_ms.n = 2;
  EXPECT_FALSE(OverSaturated(few_lo, few_hi));
  few_lo.ttft_ms.n = few_hi.ttft_ms.n = 10;
  EXPECT_TRUE(OverSaturated(few_lo, few_hi));
  // Open loop: the server completing less than 90% of the offered rate is what counts.
  LevelStats a = Stats(0, 4, 100, 0), b = Stats(0, 8, 300, 3);
  a.request_rate = 4;
  b.request_rate = 8;
  b.completed_rps = 7.5;
  EXPECT_FALSE(OverSaturated(a, b));
  b.completed_rps = 6;
  EXPECT_TRUE(OverSaturated(a, b));
  EXPECT_NE(SaturationSentence(Stats(2, 1.0, 100, 0), Stats(4, 1.05, 110, 2)).find("4 users"),
            std::string::npos);
}

TEST(SvgChartTest, AxisLabelsUseThousandsSeparatorsAndSeconds) {
  LineChart c{"t", "users", "latency", true, {{"a", {{1, 15000}, {2, 30000}}}}};
  c.y_ms = true;
  std::string svg = RenderSvg(c);
  EXPECT_EQ(svg.find("e+"), std::string::npos);
  EXPECT_NE(svg.find(">10 s<"), std::string::npos);
  LineChart plain{"t", "users", "tokens", false, {{"a", {{1, 15000}, {2, 30000}}}}};
  svg = RenderSvg(plain);
  EXPECT_EQ(svg.find("e+"), std::string::npos);
  EXPECT_NE(svg.find(">10,000<"), std::string::npos);
}

}  // namespace
}  // namespace tinyserve::bench
