#include "bench/bench_runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "bench/bootstrap.h"
#include "bench/rng.h"
#include "bench/server_sampler.h"

namespace tinyserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string MinutesAndSeconds(double s) {
  s = std::max(0.0, s);
  if (s < 60) return fmt::format("{:.0f}s", s);
  return fmt::format("{}m{:02.0f}s", static_cast<int>(s / 60), std::fmod(s, 60.0));
}

std::string LevelName(const LoadLevel& level) {
  return level.request_rate > 0 ? fmt::format("rate {:g}/s", level.request_rate)
                                : fmt::format("{} users", level.users);
}

class Runner {
 public:
  Runner(const Workload& workload, const BenchPlan& plan, BenchResults* results)
      : workload_(workload),
        plan_(plan),
        results_(results),
        t0_(Clock::now()),
        tty_(plan.progress != nullptr && isatty(fileno(plan.progress))) {}

  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

  // Sends the warm-up requests one after another (no think time) and notes how long they took.
  Status WarmUp() {
    if (plan_.warmup_requests <= 0) return OkStatus();
    LoadOptions options = plan_.load;
    options.think_min_s = options.think_max_s = 0;
    options.max_requests = plan_.warmup_requests;
    LoadLevel level{1, 0, options.client.timeout_s * plan_.warmup_requests + 1, 0};
    Print("warming up the server: {} requests one by one (not measured)\n", plan_.warmup_requests);
    TS_ASSIGN_OR_RETURN(LevelResult r, RunLevel(workload_, options, level, nullptr));
    std::string ttfts;
    int failed = 0;
    for (const RequestRecord& q : r.records) {
      failed += !q.outcome.ok();
      double t = q.outcome.ttft_s >= 0 ? q.outcome.ttft_s : q.outcome.e2e_s;
      ttfts += fmt::format("{}{:.0f}", ttfts.empty() ? "" : ", ", t * 1e3);
    }
    results_->warmup_summary = fmt::format(
        "{} requests one by one before the first level, {:.1f} s, TTFT {} ms{}", r.records.size(),
        r.wall_s, ttfts, failed ? fmt::format(" ({} failed)", failed) : std::string());
    Print("warm-up done: {}\n", results_->warmup_summary);
    return OkStatus();
  }

  // Runs one level and appends it to the results; returns its index. `eta_s` gives the seconds
  // expected after this level ends (for the progress line); `slot` names it ("2/4" or "3").
  StatusOr<size_t> RunOne(const LoadLevel& level, const std::string& slot, double eta_after_s) {
    const std::string label = LevelName(level);
    ServerSampler sampler(plan_.metrics_url, plan_.server_pid, plan_.sample_interval_s);
    sampler.Start();
    const double planned = level.warmup_s + level.duration_s;
    ProgressFn progress;
    if (plan_.progress != nullptr) {
      // On a terminal the line is rewritten in place; in a log it appears every ~10 s, and
      // once when nothing is left in flight (not on every callback after: that flooded logs).
      progress = [&, last_logged = -10.0,
                  last_in_flight = int64_t{-1}](const LevelProgress& p) mutable {
        const bool drained = p.in_flight == 0 && last_in_flight != 0;
        last_in_flight = p.in_flight;
        if (!tty_ && p.elapsed_s - last_logged < 10 && !drained) return;
        last_logged = p.elapsed_s;
        double eta = std::max(0.0, planned - p.elapsed_s) + eta_after_s;
        fmt::print(plan_.progress,
                   "{}[level {}] {:>12}  {:5.1f}/{:.0f} s  done {}  failed {}  "
                   "in flight {}  ETA {}{}",
                   tty_ ? "\r" : "", slot, label, p.elapsed_s, planned, p.completed, p.failed,
                   p.in_flight, MinutesAndSeconds(eta), tty_ ? "   " : "\n");
        std::fflush(plan_.progress);
      };
    }
    StatusOr<LevelResult> result = RunLevel(workload_, plan_.load, level, progress);
    std::vector<ServerSample> samples = sampler.Stop();
    if (!result.ok()) return result.status();
    // Keep only the samples from the measured window for the statistics.
    std::vector<ServerSample> window;
    for (const ServerSample& s : samples) {
      if (s.t_s >= result->window_start_s - 0.5 && s.t_s <= result->wall_s + 0.5) {
        window.push_back(s);
      }
    }
    LevelStats stats =
        ComputeLevelStats(*result, workload_, plan_.slo, window, plan_.load.client.timeout_s);
    // Seeded by the load, so a level's intervals do not depend on the order levels ran in.
    uint64_t stream = level.request_rate > 0 ? static_cast<uint64_t>(level.request_rate * 1000)
                                             : static_cast<uint64_t>(level.users) << 32;
    AddIntervals(*result, plan_.slo, DeriveSeed(plan_.load.seed, stream), &stats);
    Print(
        "{}[level {}] {:>12}  done: {:.2f} RPS, goodput {:.2f} (within the deadline {:.2f}), "
        "mean TTFT {:.0f} ms, mean E2E {:.0f} ms, failures {:.1f}%{}\n",
        tty_ ? "\r" : "", slot, label, stats.rps, stats.goodput_rps, stats.deadline_goodput_rps,
        stats.ttft_ms.mean, stats.e2e_ms.mean, stats.failure_rate * 100,
        LevelHolds(stats, plan_.slo) ? "" : " - misses the SLOs");
    last_wall_s_ = result->wall_s;
    results_->levels.push_back(std::move(*result));
    results_->server_samples.push_back(std::move(samples));
    results_->stats.push_back(std::move(stats));
    return results_->stats.size() - 1;
  }

  Status RunFixed() {
    double remaining = 0;
    for (const LoadLevel& l : plan_.levels) remaining += l.warmup_s + l.duration_s;
    for (size_t l = 0; l < plan_.levels.size(); ++l) {
      remaining -= plan_.levels[l].warmup_s + plan_.levels[l].duration_s;
      TS_RETURN_IF_ERROR(
          RunOne(plan_.levels[l], fmt::format("{}/{}", l + 1, plan_.levels.size()), remaining)
              .status());
    }
    return OkStatus();
  }

  Status RunSweep();
  void SortByLoad();

  template <typename... Args>
  void Print(fmt::format_string<Args...> f, Args&&... args) {
    if (plan_.progress == nullptr) return;
    fmt::print(plan_.progress, f, std::forward<Args>(args)...);
    std::fflush(plan_.progress);
  }

 private:
  const Workload& workload_;
  const BenchPlan& plan_;
  BenchResults* results_;
  const Clock::time_point t0_;
  const bool tty_;
  double last_wall_s_ = 0;
};

Status Runner::RunSweep() {
  const AutoSweep& sw = plan_.sweep;
  const LoadLevel shape = plan_.levels.empty() ? LoadLevel{} : plan_.levels[0];
  const double sweep_t0 = Elapsed();
  auto make = [&](double x) {
    LoadLevel l = shape;
    l.users = sw.open_loop ? 0 : static_cast<int>(std::lround(x));
    l.request_rate = sw.open_loop ? x : 0;
    return l;
  };
  // Whether one more level fits: its expected length is the last level's (or the plan's).
  auto fits = [&] {
    double expect = last_wall_s_ > 0 ? last_wall_s_ : shape.warmup_s + shape.duration_s;
    return Elapsed() - sweep_t0 + expect <= sw.budget_s;
  };
  auto eta = [&] { return std::max(0.0, sw.budget_s - (Elapsed() - sweep_t0)); };
  int n = 0;
  auto run = [&](double x) -> StatusOr<size_t> {
    ++n;
    double after = std::max(0.0, eta() - (shape.warmup_s + shape.duration_s));
    return RunOne(make(x), std::to_string(n), after);
  };
  TS_ASSIGN_OR_RETURN(SweepOutcome o, SweepLoads(sw, plan_.slo, results_->stats, run, fits));
  if (o.sat_below >= 0) {
    results_->saturation_note =
        SaturationSentence(results_->stats[o.sat_below], results_->stats[o.sat_above]);
    results_->saturation_level = o.sat_below;
  }
  auto list = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += fmt::format("{}{:g}", out.empty() ? "" : ", ", x);
    return out.empty() ? std::string("none") : out;
  };
  results_->sweep_summary =
      fmt::format("automatic ({}): raised {} until {}; refined {}; {:.0f} s of a {:.0f} s budget",
                  sw.open_loop ? "request rate, per s" : "users", list(o.raised), o.stop,
                  list(o.refined), Elapsed() - sweep_t0, sw.budget_s);
  return OkStatus();
}

void Runner::SortByLoad() {
  std::vector<size_t> order(results_->stats.size());
  std::iota(order.begin(), order.end(), 0);
  auto load = [&](size_t i) {
    const LevelStats& s = results_->stats[i];
    return s.request_rate > 0 ? s.request_rate : s.users;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return load(a) < load(b); });
  BenchResults sorted;
  const int saturation = results_->saturation_level;
  for (size_t i : order) {
    if (static_cast<int>(i) == saturation) {
      results_->saturation_level = static_cast<int>(sorted.stats.size());
    }
    sorted.levels.push_back(std::move(results_->levels[i]));
    sorted.server_samples.push_back(std::move(results_->server_samples[i]));
    sorted.stats.push_back(std::move(results_->stats[i]));
  }
  results_->levels = std::move(sorted.levels);
  results_->server_samples = std::move(sorted.server_samples);
  results_->stats = std::move(sorted.stats);
}

}  // namespace

Status RunBench(const Workload& workload, const BenchPlan& plan, BenchResults* results) {
  Runner runner(workload, plan, results);
  TS_RETURN_IF_ERROR(runner.WarmUp());
  TS_RETURN_IF_ERROR(plan.sweep.enabled ? runner.RunSweep() : runner.RunFixed());
  runner.SortByLoad();
  results->knee_uncertainty =
      BootstrapKnee(results->levels, plan.slo, FindKnee(results->stats, plan.slo),
                    DeriveSeed(plan.load.seed, 1000), 200);
  return OkStatus();
}

}  // namespace tinyserve::bench
