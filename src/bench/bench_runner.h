// Runs a whole bench: an optional server warm-up, then the levels in order (rising load) or an
// automatic sweep that raises the load until the server saturates and refines between the last
// good and first bad level within a time budget; each level with the server sampled, a live
// progress line with an ETA, the statistics and their confidence intervals. The CLI calls it
// once from the main thread.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/auto_sweep.h"
#include "bench/load_generator.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "bench/workload.h"
#include "util/status.h"

namespace tinyserve::bench {

struct BenchPlan {
  LoadOptions load;
  std::vector<LoadLevel> levels;  // Fixed levels; with sweep.enabled only levels[0]'s
                                  // duration and warm-up are used.
  AutoSweep sweep;
  int warmup_requests = 0;  // Sent one by one before the first level, unmeasured.
  std::string metrics_url;  // Empty: do not scrape.
  int server_pid = 0;       // A local server to read /proc from; 0 for none.
  double sample_interval_s = 1.0;
  Slo slo;
  FILE* progress = stderr;  // Progress lines go here; nullptr for silence.
};

// Runs the warm-up and every level and fills results.levels, server_samples, stats (in rising
// load), knee_uncertainty and the sweep and warm-up summaries (results.info is the caller's).
// Fails only on invalid options.
[[nodiscard]] Status RunBench(const Workload& workload, const BenchPlan& plan,
                              BenchResults* results);

}  // namespace tinyserve::bench
