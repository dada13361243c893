// The automatic sweep's choice of load levels (`--users auto` / `--request-rate auto`), apart
// from running them so that it can be tested on scripted levels: doubling from `start` until a
// level is bad (fails its SLOs or is over-saturated, see OverSaturated), then bisecting
// (geometrically) between the last good and the first bad level; and which pair of levels shows
// the saturation the report names.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "util/status.h"

namespace tinyserve::bench {

struct AutoSweep {
  bool enabled = false;
  bool open_loop = false;  // Sweep the request rate instead of the users.
  double start = 1;        // First users (or requests/s).
  double max = 256;        // Highest users (or requests/s) tried.
  double budget_s = 600;   // Total seconds for the levels.
};

struct SweepOutcome {
  std::vector<double> raised, refined;  // The loads run while raising, then while refining.
  std::string stop;                     // Why the raising stopped.
  // False when the lowest load already missed the SLOs: levels were then judged by saturation
  // only (a 2,000-token prompt's TTFT alone can exceed the SLOs on a small CPU).
  bool slo_gate = true;
  // Indices into the stats of the pair of levels (lower, higher load) that shows saturation:
  // the final good / bad pair where it does, else the latest pair that did; -1 when none did.
  int sat_below = -1, sat_above = -1;
};

// Runs the sweep's levels through `run_level` (it runs a level at the given load, appends its
// statistics to `stats` and returns their index). `fits` says whether one more level fits the
// time budget; it is not asked before the first level, which always runs.
[[nodiscard]] StatusOr<SweepOutcome> SweepLoads(
    const AutoSweep& sweep, const Slo& slo, const std::vector<LevelStats>& stats,
    const std::function<StatusOr<size_t>(double load)>& run_level,
    const std::function<bool()>& fits);

}  // namespace tinyserve::bench
