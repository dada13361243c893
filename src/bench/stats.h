// Statistics of a load level: latency distributions (mean, std, p50/p90/p99), throughput,
// goodput under SLOs, failures by cause, per-task breakdown, and server-side samples; and the
// knee of a run. Pure functions over recorded results; safe from any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/load_generator.h"
#include "bench/server_sampler.h"
#include "bench/workload.h"
#include "util/status.h"

namespace tinyserve::bench {

// A 95% confidence interval; NaN bounds when it could not be computed.
struct Interval {
  double lo = std::nan(""), hi = std::nan("");
  bool known() const { return std::isfinite(lo) && std::isfinite(hi); }
};

struct Distribution {
  int64_t n = 0;
  double mean = 0, std = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;
  Interval p50_ci, p90_ci, p99_ci;  // Filled by AddIntervals (bootstrap.h).
};
// Percentiles interpolate linearly between order statistics (NumPy's default); the standard
// deviation is the population one. An empty input gives n = 0 and zeros.
Distribution Summarize(std::vector<double> values);

// Service-level objectives per request; 0 means no limit on that measure.
struct Slo {
  double ttft_ms = 0;
  double e2e_ms = 0;
};
// Parses "ttft=500,e2e=5000" (either part may be left out).
[[nodiscard]] StatusOr<Slo> ParseSlo(const std::string& text);
std::string FormatSlo(const Slo& slo);

struct TaskStats {
  std::string name;
  int64_t requests = 0;
  int64_t failures = 0;
  Distribution ttft_ms, e2e_ms;
};

struct ServerStats {
  int64_t samples = 0;
  double rss_max_bytes = -1;  // -1: not reported.
  double kv_usage_mean = -1, kv_usage_max = -1;
  double waiting_mean = -1, waiting_max = -1;
  double running_mean = -1;
  double preemptions = -1;  // Counter increase over the level.
  // Mean wait before the first step of requests that started during the level, as the
  // server predicted it at admission and as it was (tinyserve's admission metrics).
  double predicted_wait_mean_s = -1, actual_wait_mean_s = -1;
};
ServerStats SummarizeServer(const std::vector<ServerSample>& samples);

struct LevelStats {
  int users = 0;
  double request_rate = 0;
  double duration_s = 0;
  int64_t requests = 0;  // Measured: started inside the window.
  int64_t ok = 0;
  int64_t failures = 0;
  double failure_rate = 0;
  std::map<std::string, int64_t> failures_by_cause;
  // Failures split three ways: refusals (503/429), timeouts, and every other error.
  int64_t refused = 0, timeouts = 0, errors = 0;
  Distribution refusal_ms;  // how fast refusals came back
  double rps = 0;           // Successful measured requests per second of window.
  double output_tokens_per_s = 0;
  double completed_rps = 0;   // Successful requests that ended inside the window (whenever they
                              // started), per second: the server's completion rate.
  double goodput_rps = 0;     // Successful requests that also met every SLO, per second.
  double slo_attainment = 0;  // Fraction of measured requests that were good.
  Interval rps_ci, goodput_ci, slo_attainment_ci;  // Filled by AddIntervals (bootstrap.h).
  Distribution ttft_ms, e2e_ms, itl_ms, tpot_ms;   // Over successful requests.
  // Successful requests that finished within the deadline the client declared (its timeout),
  // per second: the goodput of a deadline-aware server, whatever the SLOs.
  double deadline_goodput_rps = 0;
  double mean_in_flight = 0;
  int max_in_flight = 0;
  std::vector<TaskStats> tasks;  // One per workload task, in workload order.
  ServerStats server;
};

// `deadline_s`: the deadline the client declared (0: none; every success counts).
LevelStats ComputeLevelStats(const LevelResult& result, const Workload& workload, const Slo& slo,
                             const std::vector<ServerSample>& samples, double deadline_s = 0);

// A level holds when it had no failure and the p99 of TTFT and of E2E are within the SLOs.
bool LevelHolds(const LevelStats& level, const Slo& slo);
// GuideLLM-style over-saturation between two levels in rising load, while queueing grew (the
// server's waiting queue grew by more than half a request on average, or the median TTFT grew
// by more than half): closed loop, goodput rose by less than 10% (or within its confidence
// intervals, when both are known); open loop, the server completed less than 90% of the
// offered rate inside the window (RPS counts requests by start, so it follows the offered rate
// until requests time out).
bool OverSaturated(const LevelStats& lower, const LevelStats& higher);
// Says why: "**Saturates after 4 users**: from 4 users to 8 users goodput went 1.20 -> 1.24 RPS
// (+3%) while ...".
std::string SaturationSentence(const LevelStats& lower, const LevelStats& higher);

// The knee: the index of the last level of the leading run of levels that hold (levels are in
// rising load), or -1 when the first already fails.
int FindKnee(const std::vector<LevelStats>& levels, const Slo& slo);

}  // namespace tinyserve::bench
