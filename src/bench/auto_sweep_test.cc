#include "bench/auto_sweep.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace tinyserve::bench {
namespace {

// A scripted server: the statistics each load gives, and the sweep run against them.
struct Script {
  // Goodput and mean waiting queue per load; p99 E2E (against Slo{0, 1000}) from `slow_from` on.
  std::map<double, std::pair<double, double>> levels;
  double slow_from = 1e9;
  int budget_levels = 100;  // fits() says no once this many levels ran.

  std::vector<LevelStats> stats;
  std::vector<double> loads;  // In the order they ran.

  StatusOr<SweepOutcome> Run(const AutoSweep& sweep) {
    auto run = [&](double x) -> StatusOr<size_t> {
      auto it = levels.find(x);
      if (it == levels.end()) {
        ADD_FAILURE() << "the sweep ran an unscripted load " << x;
        return InvalidArgumentError("unscripted load");
      }
      LevelStats s;
      s.users = sweep.open_loop ? 0 : static_cast<int>(x);
      s.request_rate = sweep.open_loop ? x : 0;
      s.ok = 100;
      s.goodput_rps = s.completed_rps = it->second.first;
      s.server.waiting_mean = it->second.second;
      s.e2e_ms.p99 = x >= slow_from ? 5000 : 500;
      stats.push_back(s);
      loads.push_back(x);
      return stats.size() - 1;
    };
    auto fits = [&] { return static_cast<int>(loads.size()) < budget_levels; };
    return SweepLoads(sweep, Slo{0, 1000}, stats, run, fits);
  }
  double Load(int index) const { return index < 0 ? -1 : loads[index]; }
};

AutoSweep Users(double max = 256) {
  AutoSweep s;
  s.enabled = true;
  s.max = max;
  return s;
}

TEST(SweepLoadsTest, RaisesUntilSaturationThenBisectsToNeighbouringLevels) {
  // Goodput grows with the users up to 8, then stays flat while the queue grows.
  Script script;
  for (double x : {1, 2, 4, 8, 9, 11, 16})
    script.levels[x] = {std::min(x, 8.0), std::max(0.0, x - 8)};
  StatusOr<SweepOutcome> o = script.Run(Users());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4, 8, 16}));
  EXPECT_EQ(o->refined, (std::vector<double>{11, 9}));  // round(sqrt(8 x 16)), then sqrt(8 x 11)
  EXPECT_EQ(o->stop, "goodput stopped rising while queueing grew");
  EXPECT_TRUE(o->slo_gate);
  EXPECT_EQ(script.Load(o->sat_below), 8);
  EXPECT_EQ(script.Load(o->sat_above), 9);
}

TEST(SweepLoadsTest, KeepsTheRaisingsSaturationWhenARefinedLevelOnlyMissesTheSlos) {
  // Goodput collapses at 16 (saturation against 8), while 11 still gains goodput but misses the
  // latency SLO: the final pair (10, 11) shows no saturation, so the report names 8 -> 16.
  Script script;
  script.slow_from = 11;
  for (double x : {1, 2, 4, 8, 9, 10, 11}) script.levels[x] = {x, x == 11 ? 2.0 : 0.0};
  script.levels[16] = {8.2, 8};
  StatusOr<SweepOutcome> o = script.Run(Users());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4, 8, 16}));
  EXPECT_EQ(o->refined, (std::vector<double>{11, 9, 10}));
  EXPECT_EQ(script.Load(o->sat_below), 8);
  EXPECT_EQ(script.Load(o->sat_above), 16);
}

TEST(SweepLoadsTest, SloMissWithoutSaturationNamesNoSaturation) {
  Script script;
  script.slow_from = 6;
  for (double x : {1, 2, 4, 5, 6, 8}) script.levels[x] = {x, 0};
  StatusOr<SweepOutcome> o = script.Run(Users());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(o->refined, (std::vector<double>{6, 5}));
  EXPECT_EQ(o->stop, "a level missed the SLOs");
  EXPECT_EQ(o->sat_below, -1);
  EXPECT_EQ(o->sat_above, -1);
}

TEST(SweepLoadsTest, LowestLoadMissingTheSlosJudgesBySaturationOnly) {
  Script script;
  script.slow_from = 0;  // Every level misses the latency SLO.
  for (double x : {1, 2, 4, 3}) script.levels[x] = {std::min(x, 2.0), std::max(0.0, x - 2)};
  StatusOr<SweepOutcome> o = script.Run(Users());
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->slo_gate);
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4}));
  EXPECT_EQ(o->refined, (std::vector<double>{3}));
  EXPECT_EQ(script.Load(o->sat_below), 2);
  EXPECT_EQ(script.Load(o->sat_above), 3);
  EXPECT_NE(o->stop.find("only saturation stopped it"), std::string::npos);
}

TEST(SweepLoadsTest, StopsAtTheCapAndAtTheBudget) {
  Script capped;
  for (double x : {1, 2, 4, 6}) capped.levels[x] = {x, 0};
  StatusOr<SweepOutcome> o = capped.Run(Users(6));
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4, 6}));  // The last step is clamped to 6.
  EXPECT_TRUE(o->refined.empty());
  EXPECT_EQ(o->stop, "the cap of 6 was reached without saturating");

  Script short_budget;
  short_budget.budget_levels = 2;
  for (double x : {1, 2, 4}) short_budget.levels[x] = {x, 0};
  o = short_budget.Run(Users());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2}));
  EXPECT_EQ(o->stop, "the time budget ran out while raising the load");

  // The first level always runs, even when nothing fits.
  Script no_budget;
  no_budget.budget_levels = 0;
  no_budget.levels[1] = {1, 0};
  o = no_budget.Run(Users());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->raised, (std::vector<double>{1}));
}

TEST(SweepLoadsTest, OpenLoopBisectsTheRateGeometricallyToWithinTwentyPercent) {
  // The server completes at most 3 requests/s: from 4/s on it falls behind the offered rate.
  Script script;
  AutoSweep sweep = Users();
  sweep.open_loop = true;
  const double mid1 = std::sqrt(2.0 * 4.0), mid2 = std::sqrt(mid1 * 4.0);
  for (double x : {1.0, 2.0, 4.0, mid1, mid2}) script.levels[x] = {std::min(x, 3.0), x > 3 ? 4 : 0};
  StatusOr<SweepOutcome> o = script.Run(sweep);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->raised, (std::vector<double>{1, 2, 4}));
  // 2 .. 4 -> 2.83 (keeps up) -> 3.36 (falls behind); 3.36 / 2.83 < 1.2 ends it.
  EXPECT_EQ(o->refined, (std::vector<double>{mid1, mid2}));
  EXPECT_EQ(script.Load(o->sat_below), mid1);
  EXPECT_EQ(script.Load(o->sat_above), mid2);
}

}  // namespace
}  // namespace tinyserve::bench
