#include "bench/bench_runner.h"

#include <unistd.h>

#include "bench/server_sampler.h"

namespace tinyserve::bench {

Status RunBench(const Workload& workload, const BenchPlan& plan, BenchResults* results) {
  const bool tty = plan.progress != nullptr && isatty(fileno(plan.progress));
  for (size_t l = 0; l < plan.levels.size(); ++l) {
    const LoadLevel& level = plan.levels[l];
    std::string label = level.request_rate > 0 ? fmt::format("rate {:g}/s", level.request_rate)
                                               : fmt::format("{} users", level.users);
    ServerSampler sampler(plan.metrics_url, plan.server_pid, plan.sample_interval_s);
    sampler.Start();
    const double planned = level.warmup_s + level.duration_s;
    ProgressFn progress;
    if (plan.progress != nullptr) {
      // On a terminal the line is rewritten in place; in a log it appears every ~10 s.
      progress = [&, last_logged = -10.0](const LevelProgress& p) mutable {
        if (!tty && p.elapsed_s - last_logged < 10 && p.in_flight > 0) return;
        last_logged = p.elapsed_s;
        fmt::print(plan.progress, "{}[level {}/{}] {:>12}  {:5.1f}/{:.0f} s  done {}  failed {}  "
                   "in flight {}{}", tty ? "\r" : "", l + 1, plan.levels.size(), label,
                   p.elapsed_s, planned, p.completed, p.failed, p.in_flight, tty ? "   " : "\n");
        std::fflush(plan.progress);
      };
    }
    StatusOr<LevelResult> result = RunLevel(workload, plan.load, level, progress);
    std::vector<ServerSample> samples = sampler.Stop();
    if (!result.ok()) return result.status();
    // Keep only the samples from the measured window for the statistics.
    std::vector<ServerSample> window;
    for (const ServerSample& s : samples) {
      if (s.t_s >= result->window_start_s - 0.5 && s.t_s <= result->wall_s + 0.5) {
        window.push_back(s);
      }
    }
    LevelStats stats = ComputeLevelStats(*result, workload, plan.slo, window);
    if (plan.progress != nullptr) {
      fmt::print(plan.progress,
                 "{}[level {}/{}] {:>12}  done: {:.2f} RPS, mean TTFT {:.0f} ms, mean E2E {:.0f} "
                 "ms, failures {:.1f}%\n", tty ? "\r" : "", l + 1, plan.levels.size(), label,
                 stats.rps, stats.ttft_ms.mean, stats.e2e_ms.mean, stats.failure_rate * 100);
    }
    results->levels.push_back(std::move(*result));
    results->server_samples.push_back(std::move(samples));
    results->stats.push_back(std::move(stats));
  }
  return OkStatus();
}

}  // namespace tinyserve::bench
