// The bench report: report.html (html_report.h), report.md (the original's concurrency table, the
// per-task table, percentile, server and failure tables, the knee), results.json (every request's
// timings and outcome), results.csv (one row per request) and SVG charts. Called once by the CLI at
// the end of a run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bootstrap.h"
#include "bench/load_generator.h"
#include "bench/server_sampler.h"
#include "bench/stats.h"
#include "bench/workload.h"
#include "util/status.h"

namespace tinyserve::bench {

// What the run was: everything a reader needs to reproduce or compare it.
struct RunInfo {
  std::string tinyserve_version;
  std::string model;
  std::string base_url;
  bool embedded_server = false;
  std::string endpoint;  // "chat" or "completions"
  std::string profile;
  std::string workload;
  std::string cpu_model;
  int cores = 0;
  int server_threads = 0;  // 0: unknown (an external server).
  uint64_t seed = 0;
  double think_min_s = 0, think_max_s = 0;
  double timeout_s = 0;
  double warmup_s = 0;
  double duration_s = 0;
  int detail_users = 16;
  std::string started_at;  // UTC, ISO 8601.
  std::string command_line;
  Slo slo;
};

struct BenchResults {
  RunInfo info;
  std::vector<LevelResult> levels;
  std::vector<std::vector<ServerSample>> server_samples;  // One vector per level.
  std::vector<LevelStats> stats;                          // One per level.
  KneeUncertainty knee_uncertainty;                       // resamples == 0: not computed.
  std::string sweep_summary;    // Automatic sweeps: what was run and why it stopped.
  std::string saturation_note;  // Automatic sweeps: where goodput stopped rising, if it did.
  int saturation_level = -1;    // Index in `stats` of the last level before that; -1: none.
  std::string warmup_summary;   // The server warm-up before the first level, if any.
};

// The machine: CPU model from /proc/cpuinfo ("unknown" if absent) and online cores.
std::string CpuModelName();
int NumCores();
// Current UTC time as "2026-01-31T12:00:00Z".
std::string UtcNow();

// Index of the level whose user count is `users`, else the level with the nearest count.
int DetailLevelIndex(const BenchResults& results, int users);

// The knee verdict (markdown, "**Knee: 4 users** - ...") and its bootstrap uncertainty.
std::string KneeSentence(const BenchResults& results);
std::string KneeUncertaintySentence(const BenchResults& results);

std::string RenderMarkdown(const BenchResults& results, const Workload& workload);
// The console summary: the concurrency table, knee, and per-task table.
std::string RenderConsoleTables(const BenchResults& results, const Workload& workload);
nlohmann::json ResultsJson(const BenchResults& results, const Workload& workload);
std::string ResultsCsv(const BenchResults& results, const Workload& workload);
// Writes report.md, report.html, results.json, results.csv, rps_vs_users.svg, latency_vs_users.svg,
// failures_vs_users.svg and ttft_by_task.svg into `dir` (created if missing).
[[nodiscard]] Status WriteReport(const BenchResults& results, const Workload& workload,
                                 const std::string& dir);

}  // namespace tinyserve::bench
