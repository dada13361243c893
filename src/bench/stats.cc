#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace tinyserve::bench {
namespace {

double Percentile(const std::vector<double>& sorted, double q) {
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

}  // namespace

Distribution Summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.n = static_cast<int64_t>(values.size());
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / values.size();
  double sq = 0;
  for (double v : values) sq += (v - d.mean) * (v - d.mean);
  d.std = std::sqrt(sq / values.size());
  d.min = values.front();
  d.max = values.back();
  d.p50 = Percentile(values, 0.50);
  d.p90 = Percentile(values, 0.90);
  d.p99 = Percentile(values, 0.99);
  return d;
}

StatusOr<Slo> ParseSlo(const std::string& text) {
  Slo slo;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    char* end = nullptr;
    double ms = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || ms < 0) {
      return InvalidArgumentError("--slo: \"{}\" is not KEY=MILLISECONDS", item);
    }
    if (key == "ttft") {
      slo.ttft_ms = ms;
    } else if (key == "e2e") {
      slo.e2e_ms = ms;
    } else {
      return InvalidArgumentError("--slo: unknown measure \"{}\" (ttft or e2e)", key);
    }
  }
  return slo;
}

std::string FormatSlo(const Slo& slo) {
  std::string out;
  if (slo.ttft_ms > 0) out += fmt::format("TTFT <= {:g} ms", slo.ttft_ms);
  if (slo.e2e_ms > 0) out += fmt::format("{}E2E <= {:g} ms", out.empty() ? "" : ", ", slo.e2e_ms);
  return out.empty() ? "none" : out;
}

ServerStats SummarizeServer(const std::vector<ServerSample>& samples) {
  ServerStats s;
  s.samples = static_cast<int64_t>(samples.size());
  auto over = [&](double ServerSample::*field, double* mean, double* max) {
    double sum = 0;
    int64_t n = 0;
    for (const ServerSample& x : samples) {
      if (x.*field < 0) continue;
      sum += x.*field;
      ++n;
      if (max != nullptr) *max = std::max(*max, x.*field);
    }
    if (mean != nullptr && n > 0) *mean = sum / n;
  };
  over(&ServerSample::rss_bytes, nullptr, &s.rss_max_bytes);
  over(&ServerSample::kv_usage, &s.kv_usage_mean, &s.kv_usage_max);
  over(&ServerSample::waiting, &s.waiting_mean, &s.waiting_max);
  over(&ServerSample::running, &s.running_mean, nullptr);
  double first = -1, last = -1;
  for (const ServerSample& x : samples) {
    if (x.preemptions_total < 0) continue;
    if (first < 0) first = x.preemptions_total;
    last = x.preemptions_total;
  }
  if (first >= 0) s.preemptions = last - first;
  const ServerSample* a = nullptr;  // first and last samples with the admission metrics
  const ServerSample* b = nullptr;
  for (const ServerSample& x : samples) {
    if (x.wait_count < 0) continue;
    if (a == nullptr) a = &x;
    b = &x;
  }
  if (a != nullptr && b->wait_count > a->wait_count) {
    const double n = b->wait_count - a->wait_count;
    s.predicted_wait_mean_s = (b->predicted_wait_sum_s - a->predicted_wait_sum_s) / n;
    s.actual_wait_mean_s = (b->actual_wait_sum_s - a->actual_wait_sum_s) / n;
  }
  return s;
}

LevelStats ComputeLevelStats(const LevelResult& result, const Workload& workload, const Slo& slo,
                             const std::vector<ServerSample>& samples, double deadline_s) {
  LevelStats s;
  s.users = result.level.users;
  s.request_rate = result.level.request_rate;
  s.duration_s = result.window_end_s - result.window_start_s;
  s.mean_in_flight = result.mean_in_flight;
  s.max_in_flight = result.max_in_flight;
  std::vector<double> ttft, e2e, itl, tpot, refusal;
  std::vector<std::vector<double>> task_ttft(workload.tasks.size()),
      task_e2e(workload.tasks.size());
  s.tasks.resize(workload.tasks.size());
  for (size_t i = 0; i < workload.tasks.size(); ++i) s.tasks[i].name = workload.tasks[i].name;
  int64_t good = 0, in_deadline = 0;
  double tokens = 0;
  for (const RequestRecord& r : result.records) {
    // Completions inside the window, whenever the request started (warm-up ones included).
    if (r.outcome.ok() && r.end_s >= result.window_start_s && r.end_s <= result.window_end_s) {
      s.completed_rps += 1;
    }
    if (r.warmup) continue;
    ++s.requests;
    TaskStats& task = s.tasks[r.task_idx];
    ++task.requests;
    const RequestOutcome& o = r.outcome;
    if (!o.ok()) {
      ++s.failures;
      ++task.failures;
      ++s.failures_by_cause[o.cause];
      if (IsRefusal(o.cause)) {
        ++s.refused;
        refusal.push_back(o.e2e_s * 1e3);
      } else if (o.cause == kCauseTimeout) {
        ++s.timeouts;
      } else {
        ++s.errors;
      }
      continue;
    }
    ++s.ok;
    tokens += o.output_tokens;
    double ttft_ms = (o.ttft_s >= 0 ? o.ttft_s : o.e2e_s) * 1e3;
    double e2e_ms = o.e2e_s * 1e3;
    ttft.push_back(ttft_ms);
    e2e.push_back(e2e_ms);
    task_ttft[r.task_idx].push_back(ttft_ms);
    task_e2e[r.task_idx].push_back(e2e_ms);
    for (double g : o.itl_s) itl.push_back(g * 1e3);
    if (o.output_tokens > 1 && o.ttft_s >= 0) {
      tpot.push_back((o.e2e_s - o.ttft_s) * 1e3 / (o.output_tokens - 1));
    }
    bool meets =
        (slo.ttft_ms <= 0 || ttft_ms <= slo.ttft_ms) && (slo.e2e_ms <= 0 || e2e_ms <= slo.e2e_ms);
    good += meets;
    in_deadline += deadline_s <= 0 || o.e2e_s <= deadline_s;
  }
  s.failure_rate = s.requests > 0 ? static_cast<double>(s.failures) / s.requests : 0;
  s.rps = s.ok / s.duration_s;
  s.completed_rps /= s.duration_s;
  s.output_tokens_per_s = tokens / s.duration_s;
  s.goodput_rps = good / s.duration_s;
  s.deadline_goodput_rps = in_deadline / s.duration_s;
  s.slo_attainment = s.requests > 0 ? static_cast<double>(good) / s.requests : 0;
  s.ttft_ms = Summarize(std::move(ttft));
  s.e2e_ms = Summarize(std::move(e2e));
  s.itl_ms = Summarize(std::move(itl));
  s.tpot_ms = Summarize(std::move(tpot));
  s.refusal_ms = Summarize(std::move(refusal));
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    s.tasks[i].ttft_ms = Summarize(std::move(task_ttft[i]));
    s.tasks[i].e2e_ms = Summarize(std::move(task_e2e[i]));
  }
  s.server = SummarizeServer(samples);
  return s;
}

bool LevelHolds(const LevelStats& level, const Slo& slo) {
  if (level.failures > 0 || level.ok == 0) return false;
  if (slo.ttft_ms > 0 && level.ttft_ms.p99 > slo.ttft_ms) return false;
  if (slo.e2e_ms > 0 && level.e2e_ms.p99 > slo.e2e_ms) return false;
  return true;
}

namespace {

bool QueueGrew(const LevelStats& lower, const LevelStats& higher) {
  const ServerStats &a = lower.server, &b = higher.server;
  if (a.waiting_mean >= 0 && b.waiting_mean >= 0 && b.waiting_mean > a.waiting_mean + 0.5) {
    return true;
  }
  // Median TTFT counts only from enough requests on both sides: a quick-profile level of 2-3
  // requests once read 47 -> 635 ms as queueing while the server's queue stayed at 0.
  constexpr int kMinTtftSamples = 10;
  return lower.ttft_ms.n >= kMinTtftSamples && higher.ttft_ms.n >= kMinTtftSamples &&
         higher.ttft_ms.p50 > 1.5 * lower.ttft_ms.p50;
}

std::string LoadName(const LevelStats& s) {
  return s.request_rate > 0 ? fmt::format("{:g} req/s", s.request_rate)
                            : fmt::format("{} user{}", s.users, s.users == 1 ? "" : "s");
}

}  // namespace

bool OverSaturated(const LevelStats& lower, const LevelStats& higher) {
  // A rise inside the noise (the intervals overlap) is no rise: short levels count few requests.
  bool overlap = lower.goodput_ci.known() && higher.goodput_ci.known() &&
                 higher.goodput_ci.lo <= lower.goodput_ci.hi;
  bool rose = higher.goodput_rps >= 1.1 * lower.goodput_rps && !overlap;
  if (higher.request_rate > 0) rose = higher.completed_rps >= 0.9 * higher.request_rate;
  return !rose && QueueGrew(lower, higher);
}

std::string SaturationSentence(const LevelStats& lower, const LevelStats& higher) {
  std::string queue;
  if (lower.server.waiting_mean >= 0 && higher.server.waiting_mean >= 0) {
    queue = fmt::format("the server's waiting queue went {:.1f} -> {:.1f} on average and ",
                        lower.server.waiting_mean, higher.server.waiting_mean);
  }
  if (higher.request_rate > 0) {
    return fmt::format(
        "**Saturates after {}**: at {} the server completed only {:.2f} requests/s "
        "inside the window while {}median TTFT went {:.0f} -> {:.0f} ms: more load "
        "only queues.",
        LoadName(lower), LoadName(higher), higher.completed_rps, queue, lower.ttft_ms.p50,
        higher.ttft_ms.p50);
  }
  double gain = lower.goodput_rps > 0 ? (higher.goodput_rps / lower.goodput_rps - 1) * 100 : 0;
  return fmt::format(
      "**Saturates after {}**: from {} to {} goodput went {:.2f} -> {:.2f} RPS ({:+.0f}%) "
      "while {}median TTFT went {:.0f} -> {:.0f} ms: more load only queues.",
      LoadName(lower), LoadName(lower), LoadName(higher), lower.goodput_rps, higher.goodput_rps,
      gain, queue, lower.ttft_ms.p50, higher.ttft_ms.p50);
}

int FindKnee(const std::vector<LevelStats>& levels, const Slo& slo) {
  int knee = -1;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (!LevelHolds(levels[i], slo)) break;
    knee = static_cast<int>(i);
  }
  return knee;
}

}  // namespace tinyserve::bench
