// Runs a whole bench: the levels in order (rising load), each with the server sampled, a live
// progress line per level, and the statistics. The CLI calls it once from the main thread.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/load_generator.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "bench/workload.h"
#include "util/status.h"

namespace tinyserve::bench {

struct BenchPlan {
  LoadOptions load;
  std::vector<LoadLevel> levels;
  std::string metrics_url;  // Empty: do not scrape.
  int server_pid = 0;       // A local server to read /proc from; 0 for none.
  double sample_interval_s = 1.0;
  Slo slo;
  FILE* progress = stderr;  // Progress lines go here; nullptr for silence.
};

// Runs every level and fills results.levels, server_samples and stats (results.info is the
// caller's). Fails only on invalid options.
[[nodiscard]] Status RunBench(const Workload& workload, const BenchPlan& plan,
                              BenchResults* results);

}  // namespace tinyserve::bench
