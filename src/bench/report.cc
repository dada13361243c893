#include "bench/report.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/html_report.h"
#include "bench/svg_chart.h"

namespace tinyserve::bench {
namespace {

using nlohmann::json;

// "1,850": the original table's thousands separators.
std::string Thousands(double v) {
  std::string digits = fmt::format("{:.0f}", v);
  bool negative = !digits.empty() && digits[0] == '-';
  if (negative) digits.erase(0, 1);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

std::string LoadLabel(const LevelStats& s) {
  return s.request_rate > 0 ? fmt::format("{:g} req/s", s.request_rate) : std::to_string(s.users);
}
double LoadX(const LevelStats& s) { return s.request_rate > 0 ? s.request_rate : s.users; }
bool OpenLoop(const BenchResults& r) { return !r.stats.empty() && r.stats[0].request_rate > 0; }

std::string Memory(const ServerStats& s) {
  return s.rss_max_bytes < 0 ? "n/a" : fmt::format("{:.2f}", s.rss_max_bytes / 1e9);
}
// "850 ms", "3.6 s": as the charts' axes, ms switching to s past 2 s.
std::string Duration(double ms) {
  return ms < 2000 ? Thousands(ms) + " ms" : fmt::format("{:.1f} s", ms / 1000);
}
std::string Percent(double fraction) { return fmt::format("{:.1f}%", fraction * 100); }
std::string OrNa(double v, const char* f = "{:.2f}") {
  return v < 0 ? "n/a" : fmt::format(fmt::runtime(f), v);
}

// "1,234 [1,100 – 1,400]", or "too few (n=12)" when the level is below the percentile rule.
std::string PctCell(const Distribution& d, double q, double v, const Interval& ci) {
  if (d.n == 0) return "-";
  if (!PercentileReportable(d.n, q)) return fmt::format("too few (n={})", d.n);
  std::string out = Thousands(v);
  if (ci.known()) out += fmt::format(" [{} – {}]", Thousands(ci.lo), Thousands(ci.hi));
  return out;
}
std::string CiCell(double v, const Interval& ci, const char* f) {
  std::string out = fmt::format(fmt::runtime(f), v);
  if (ci.known()) {
    out += fmt::format(" [{} – {}]", fmt::format(fmt::runtime(f), ci.lo),
                       fmt::format(fmt::runtime(f), ci.hi));
  }
  return out;
}

std::string LoadWithUnit(const LevelStats& s) {
  return LoadLabel(s) + (s.request_rate > 0 ? "" : s.users == 1 ? " user" : " users");
}

// The lowest load already missed the SLOs (a long prompt's TTFT alone can exceed them on a small
// CPU), so there is no knee; a capacity planner still needs why, and what the server can carry:
// where throughput saturates (automatic sweeps), else the most it carried.
std::string NoKneeSentence(const BenchResults& r) {
  const LevelStats& low = r.stats[0];
  const Slo& slo = r.info.slo;
  // The p99 the SLO check used; with few requests it is nearly the maximum, so say how many.
  auto p99 = [](const Distribution& d) {
    return Duration(d.p99) + (PercentileReportable(d.n, 0.99) ? "" : fmt::format(" (n={})", d.n));
  };
  std::vector<std::string> misses;
  if (low.failures > 0)
    misses.push_back(fmt::format("{} of {} requests failed", low.failures, low.requests));
  if (slo.ttft_ms > 0 && low.ttft_ms.p99 > slo.ttft_ms) {
    misses.push_back(fmt::format("p99 TTFT {} > {}", p99(low.ttft_ms), Duration(slo.ttft_ms)));
  }
  if (slo.e2e_ms > 0 && low.e2e_ms.p99 > slo.e2e_ms) {
    misses.push_back(fmt::format("p99 E2E {} > {}", p99(low.e2e_ms), Duration(slo.e2e_ms)));
  }
  if (misses.empty()) misses.push_back("no request succeeded");
  std::string why;
  for (const std::string& m : misses) why += (why.empty() ? "" : ", ") + m;
  auto rate = [](const LevelStats& s) {
    std::string out = fmt::format("{:.2f} req/s", s.rps);
    if (s.rps_ci.known()) out += fmt::format(" (95% CI {:.2f} – {:.2f})", s.rps_ci.lo, s.rps_ci.hi);
    return out;
  };
  std::string capacity;
  if (r.saturation_level >= 0) {
    const LevelStats& s = r.stats[r.saturation_level];
    capacity = fmt::format("throughput saturates after {} at {}; more load only queues",
                           LoadWithUnit(s), rate(s));
  } else {
    size_t best = 0;
    for (size_t i = 1; i < r.stats.size(); ++i) {
      if (r.stats[i].rps > r.stats[best].rps) best = i;
    }
    capacity = fmt::format("the most throughput measured was {} at {}{}", rate(r.stats[best]),
                           LoadWithUnit(r.stats[best]),
                           r.sweep_summary.empty() ? "" : "; the sweep did not reach saturation");
  }
  return fmt::format(
      "**SLOs not met at any load** (p99 {}) - at the lowest load, {}: {}. "
      "Capacity: {}.",
      FormatSlo(slo), LoadWithUnit(low), why, capacity);
}

}  // namespace

std::string KneeSentence(const BenchResults& r) {
  int knee = FindKnee(r.stats, r.info.slo);
  std::string slo = FormatSlo(r.info.slo);
  if (knee < 0 && !r.stats.empty() && r.stats[0].requests == 0) {
    return fmt::format(
        "**Knee: none** - at the lowest load ({}) no request was measured: none "
        "started in the measured window, or all took longer than the level. The "
        "server is slower than --timeout {:g} s allows: raise --duration and "
        "--timeout.",
        LoadLabel(r.stats[0]), r.info.timeout_s);
  }
  if (knee < 0 && !r.stats.empty()) return NoKneeSentence(r);
  if (knee < 0) return "**Knee: none** - no level was run.";
  const LevelStats& k = r.stats[knee];
  std::string next;
  if (knee + 1 < static_cast<int>(r.stats.size())) {
    const LevelStats& n = r.stats[knee + 1];
    next =
        fmt::format(" At {} it breaks: {} failures, p99 TTFT {} ms, p99 E2E {} ms.", LoadLabel(n),
                    Percent(n.failure_rate), Thousands(n.ttft_ms.p99), Thousands(n.e2e_ms.p99));
  } else if (!r.saturation_note.empty()) {
    next =
        " It held the SLOs at every level tested, but the sweep found where more load only "
        "queues (below).";
  } else {
    next = " It held at every level tested: raise the load to find where it breaks.";
  }
  return fmt::format(
      "**Knee: {}{}** - the most load at which every request succeeded and the "
      "SLOs held (p99 {}), with {:.2f} RPS.{}",
      LoadLabel(k), k.request_rate > 0 ? "" : " users", slo, k.rps, next);
}

std::string KneeUncertaintySentence(const BenchResults& r) {
  const KneeUncertainty& u = r.knee_uncertainty;
  if (u.resamples == 0 || r.stats.empty()) return "";
  auto name = [&](int i) {
    if (i < 0) return std::string("none");
    return LoadLabel(r.stats[i]) + (r.stats[i].request_rate > 0 ? "" : " users");
  };
  std::string range = u.low == u.high ? name(u.low) : name(u.low) + " to " + name(u.high);
  return fmt::format(
      "Knee uncertainty: found again on {} bootstrap resamples of the requests, the "
      "knee is the same in {:.0f}% of them; 95% range: {}.",
      u.resamples, u.share_at_estimate * 100, range);
}

namespace {

std::string ConcurrencyTable(const BenchResults& r) {
  std::string md = fmt::format(
      "| {} | RPS | mean TTFT (ms) | mean E2E (ms) | memory (GB) | failures |\n"
      "|---|---|---|---|---|---|\n",
      OpenLoop(r) ? "rate" : "users");
  for (const LevelStats& s : r.stats) {
    md += fmt::format("| {} | {:.2f} | {} | {} | {} | {} |\n", LoadLabel(s), s.rps,
                      Thousands(s.ttft_ms.mean), Thousands(s.e2e_ms.mean), Memory(s.server),
                      Percent(s.failure_rate));
  }
  return md;
}

std::string TaskTable(const BenchResults& r, const Workload& w, int level_idx) {
  const LevelStats& s = r.stats[level_idx];
  std::string md =
      "| task | requests | mean E2E ± std (ms) | mean TTFT ± std (ms) | p90 E2E (ms) | failures |\n"
      "|---|---|---|---|---|---|\n";
  for (const TaskStats& t : s.tasks) {
    if (t.e2e_ms.n == 0) {  // No successful request: no latency to show.
      md +=
          fmt::format("| {} | {} | - | - | - | {} |\n", t.name, t.requests,
                      t.requests > 0 ? Percent(static_cast<double>(t.failures) / t.requests) : "-");
      continue;
    }
    md += fmt::format("| {} | {} | {} ± {} | {} ± {} | {} | {} |\n", t.name, t.requests,
                      Thousands(t.e2e_ms.mean), Thousands(t.e2e_ms.std), Thousands(t.ttft_ms.mean),
                      Thousands(t.ttft_ms.std), Thousands(t.e2e_ms.p90),
                      t.requests > 0 ? Percent(static_cast<double>(t.failures) / t.requests) : "-");
  }
  return md;
}

std::string DetailHeading(const BenchResults& r, int level_idx) {
  const LevelStats& s = r.stats[level_idx];
  std::string note;
  if (s.request_rate <= 0 && s.users != r.info.detail_users) {
    note = fmt::format(" (no level with {} users; nearest)", r.info.detail_users);
  }
  return fmt::format("Per task at {}{}{}", LoadLabel(s), s.request_rate > 0 ? "" : " users", note);
}

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return InternalError("cannot write {}", path.string());
  return OkStatus();
}

}  // namespace

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t start = line.find_first_not_of(' ', colon + 1);
        return start == std::string::npos ? "unknown" : line.substr(start);
      }
    }
  }
  return "unknown";
}

int NumCores() { return static_cast<int>(std::thread::hardware_concurrency()); }

std::string UtcNow() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int DetailLevelIndex(const BenchResults& results, int users) {
  int best = 0;
  for (size_t i = 0; i < results.stats.size(); ++i) {
    if (std::abs(results.stats[i].users - users) < std::abs(results.stats[best].users - users)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

std::string RenderConsoleTables(const BenchResults& r, const Workload& w) {
  if (r.stats.empty()) return "no levels were run\n";
  int detail = DetailLevelIndex(r, r.info.detail_users);
  return fmt::format("{}\n{}\n\n{}:\n\n{}", ConcurrencyTable(r), KneeSentence(r),
                     DetailHeading(r, detail), TaskTable(r, w, detail));
}

std::string RenderMarkdown(const BenchResults& r, const Workload& w) {
  const RunInfo& i = r.info;
  std::string md = "# tinyserve bench serve: capacity report\n\n";
  md += fmt::format(
      "- tinyserve {} · model `{}` · {} server at `{}` · endpoint `{}`\n"
      "- machine: {}, {} cores · server threads: {}\n"
      "- profile `{}` · workload `{}` (",
      i.tinyserve_version, i.model, i.embedded_server ? "embedded" : "external", i.base_url,
      i.endpoint, i.cpu_model, i.cores,
      i.server_threads > 0 ? std::to_string(i.server_threads) : "unknown", i.profile, i.workload);
  for (size_t t = 0; t < w.tasks.size(); ++t) {
    md += fmt::format("{}{} ×{:g}, max_tokens {}", t ? "; " : "", w.tasks[t].name,
                      w.tasks[t].weight, w.tasks[t].max_tokens);
  }
  md += fmt::format(
      ")\n- per level: warmup {:g} s, measured {:g} s · think time {:g}-{:g} s · timeout {:g} s · "
      "seed {}\n- SLO: {} · started {}\n- command: `{}`\n\n",
      i.warmup_s, i.duration_s, i.think_min_s, i.think_max_s, i.timeout_s, i.seed, FormatSlo(i.slo),
      i.started_at, i.command_line);
  if (r.stats.empty()) return md + "No levels were run.\n";

  md += "## Capacity\n\n" + ConcurrencyTable(r) + "\n" + KneeSentence(r) + "\n\n";
  if (std::string u = KneeUncertaintySentence(r); !u.empty()) md += u + "\n\n";
  if (!r.saturation_note.empty()) md += r.saturation_note + "\n\n";
  md +=
      "RPS counts successful requests that started in the measured window, per second of it; "
      "memory is the server's peak resident set; failures are the share of measured requests "
      "that failed (any cause).\n\n";
  int detail = DetailLevelIndex(r, i.detail_users);
  md += "## " + DetailHeading(r, detail) + "\n\n" + TaskTable(r, w, detail) + "\n";

  md += fmt::format(
      "## Latency percentiles (ms) and rates, with 95% confidence intervals\n\n"
      "| {} | requests | RPS | goodput RPS | SLO met | TTFT p50 | TTFT p90 | TTFT p99 | E2E p50 | "
      "E2E p90 | E2E p99 | ITL p50 | ITL p99 | TPOT mean | output tok/s | in flight mean / max |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      OpenLoop(r) ? "rate" : "users");
  for (const LevelStats& s : r.stats) {
    Interval slo_pct{s.slo_attainment_ci.lo * 100, s.slo_attainment_ci.hi * 100};
    md += fmt::format(
        "| {} | {} | {} | {} | {}% | {} | {} | {} | {} | {} | {} | {} | {} | {:.1f} | {:.1f} | "
        "{:.2f} / {} |\n",
        LoadLabel(s), s.requests, CiCell(s.rps, s.rps_ci, "{:.2f}"),
        CiCell(s.goodput_rps, s.goodput_ci, "{:.2f}"),
        CiCell(s.slo_attainment * 100, slo_pct, "{:.1f}"),
        PctCell(s.ttft_ms, 0.5, s.ttft_ms.p50, s.ttft_ms.p50_ci),
        PctCell(s.ttft_ms, 0.9, s.ttft_ms.p90, s.ttft_ms.p90_ci),
        PctCell(s.ttft_ms, 0.99, s.ttft_ms.p99, s.ttft_ms.p99_ci),
        PctCell(s.e2e_ms, 0.5, s.e2e_ms.p50, s.e2e_ms.p50_ci),
        PctCell(s.e2e_ms, 0.9, s.e2e_ms.p90, s.e2e_ms.p90_ci),
        PctCell(s.e2e_ms, 0.99, s.e2e_ms.p99, s.e2e_ms.p99_ci),
        PctCell(s.itl_ms, 0.5, s.itl_ms.p50, s.itl_ms.p50_ci),
        PctCell(s.itl_ms, 0.99, s.itl_ms.p99, s.itl_ms.p99_ci), s.tpot_ms.mean,
        s.output_tokens_per_s, s.mean_in_flight, s.max_in_flight);
  }
  md +=
      "\nIntervals: percentiles by bootstrap over requests, RPS and goodput by bootstrap over 10 "
      "time windows of the level, SLO attainment by Wilson score. A percentile q is printed only "
      "when the level has at least 1/(1-q) successful requests (p50: 2, p90: 10, p99: 100); "
      "below that it says \"too few\".\n";
  md += fmt::format(
      "\n## Server (sampled during each level)\n\n"
      "| {} | samples | peak memory (GB) | KV cache use mean / max | running mean | "
      "waiting mean / max | preemptions | wait predicted / actual (s) |\n"
      "|---|---|---|---|---|---|---|---|\n",
      OpenLoop(r) ? "rate" : "users");
  for (const LevelStats& s : r.stats) {
    const ServerStats& v = s.server;
    md += fmt::format("| {} | {} | {} | {} / {} | {} | {} / {} | {} | {} / {} |\n", LoadLabel(s),
                      v.samples, Memory(v), v.kv_usage_mean < 0 ? "n/a" : Percent(v.kv_usage_mean),
                      v.kv_usage_max < 0 ? "n/a" : Percent(v.kv_usage_max), OrNa(v.running_mean),
                      OrNa(v.waiting_mean), OrNa(v.waiting_max, "{:.0f}"),
                      OrNa(v.preemptions, "{:.0f}"), OrNa(v.predicted_wait_mean_s, "{:.2f}"),
                      OrNa(v.actual_wait_mean_s, "{:.2f}"));
  }
  md += "\n## Failures by cause\n\n";
  bool any = false;
  for (const LevelStats& s : r.stats) {
    if (s.failures == 0) continue;
    any = true;
    md += fmt::format(
        "- {}: {} of {} failed (refused {}, answered in p99 {:.0f} ms; timeouts {}; "
        "errors {}; goodput within the deadline {:.2f} RPS):",
        LoadLabel(s), s.failures, s.requests, s.refused, s.refusal_ms.p99, s.timeouts, s.errors,
        s.deadline_goodput_rps);
    for (const auto& [cause, n] : s.failures_by_cause) md += fmt::format(" {} {},", cause, n);
    md.pop_back();
    md += "\n";
  }
  if (!any) md += "No request failed.\n";
  md +=
      "\n## Charts\n\n![RPS and goodput](rps_vs_users.svg)\n![Latency percentiles]"
      "(latency_vs_users.svg)\n![Failure rate](failures_vs_users.svg)\n![TTFT distribution "
      "per task](ttft_by_task.svg)\n";
  return md;
}

Status WriteReport(const BenchResults& r, const Workload& w, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InternalError("cannot create {}: {}", dir, ec.message());
  std::filesystem::path d(dir);
  TS_RETURN_IF_ERROR(WriteFile(d / "report.md", RenderMarkdown(r, w)));
  TS_RETURN_IF_ERROR(WriteFile(d / "results.csv", ResultsCsv(r, w)));
  json results = ResultsJson(r, w);
  TS_RETURN_IF_ERROR(WriteFile(d / "results.json", results.dump(1)));
  TS_RETURN_IF_ERROR(WriteFile(
      d / "report.html",
      RenderHtmlPage(fmt::format("Capacity report: {} ({})", r.info.model, r.info.started_at),
                     "run", {HtmlRunData(results, r.info.model)})));

  const bool open_loop = OpenLoop(r);
  const std::string x_label = open_loop ? "offered load (requests/s)" : "concurrent users";
  LineChart rps{"Throughput", x_label, "requests/s", !open_loop, {{"RPS", {}}, {"goodput", {}}}};
  LineChart latency{
      "Latency percentiles",
      x_label,
      "latency",
      !open_loop,
      {{"TTFT p50", {}}, {"TTFT p99", {}}, {"E2E p50", {}}, {"E2E p90", {}}, {"E2E p99", {}}}};
  latency.y_ms = true;
  LineChart failures{"Failure rate", x_label, "% of requests", !open_loop, {{"failures", {}}}};
  for (const LevelStats& s : r.stats) {
    double x = LoadX(s);
    rps.series[0].points.emplace_back(x, s.rps);
    rps.series[1].points.emplace_back(x, s.goodput_rps);
    latency.series[0].points.emplace_back(x, s.ttft_ms.p50);
    latency.series[1].points.emplace_back(x, s.ttft_ms.p99);
    latency.series[2].points.emplace_back(x, s.e2e_ms.p50);
    latency.series[3].points.emplace_back(x, s.e2e_ms.p90);
    latency.series[4].points.emplace_back(x, s.e2e_ms.p99);
    failures.series[0].points.emplace_back(x, s.failure_rate * 100);
  }
  // TTFT distribution per task as an empirical CDF, at the detail level.
  LineChart ttft{"TTFT distribution per task", "TTFT", "% of requests at or below", false, {}};
  ttft.x_ms = true;
  if (!r.levels.empty()) {
    int detail = DetailLevelIndex(r, r.info.detail_users);
    ttft.title += " at " + LoadLabel(r.stats[detail]) + (open_loop ? "" : " users");
    for (size_t t = 0; t < w.tasks.size(); ++t) {
      std::vector<double> values;
      for (const RequestRecord& q : r.levels[detail].records) {
        if (!q.warmup && q.task_idx == static_cast<int>(t) && q.outcome.ok()) {
          values.push_back((q.outcome.ttft_s >= 0 ? q.outcome.ttft_s : q.outcome.e2e_s) * 1e3);
        }
      }
      std::sort(values.begin(), values.end());
      ChartSeries series{w.tasks[t].name, {}};
      for (size_t k = 0; k < values.size(); ++k) {
        series.points.emplace_back(values[k], 100.0 * (k + 1) / values.size());
      }
      ttft.series.push_back(std::move(series));
    }
  }
  TS_RETURN_IF_ERROR(WriteFile(d / "rps_vs_users.svg", RenderSvg(rps)));
  TS_RETURN_IF_ERROR(WriteFile(d / "latency_vs_users.svg", RenderSvg(latency)));
  TS_RETURN_IF_ERROR(WriteFile(d / "failures_vs_users.svg", RenderSvg(failures)));
  TS_RETURN_IF_ERROR(WriteFile(d / "ttft_by_task.svg", RenderSvg(ttft)));
  return OkStatus();
}

}  // namespace tinyserve::bench
