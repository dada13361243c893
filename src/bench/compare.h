// `bench compare`: reads the results.json of several bench serve runs (tinyserve, llama.cpp,
// vLLM, ... each benchmarked with `bench serve --base-url`) and writes one report.html that
// overlays them on every chart, and a report.md with their tables side by side and ratios to
// the first run. Pure apart from the files; safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace tinyserve::bench {

// Labels for the runs: `labels` when given (one per run), else each directory's name; repeated
// names get " (2)", " (3)", ...
[[nodiscard]] StatusOr<std::vector<std::string>> CompareLabels(
    const std::vector<std::string>& run_dirs, const std::vector<std::string>& labels);

// The markdown comparison: each run's facts and knee, then one table per measure (RPS, goodput,
// SLO attainment, TTFT/E2E percentiles, tokens/s, failures, memory) with a column per run.
std::string RenderComparisonMarkdown(const std::vector<std::string>& labels,
                                     const std::vector<nlohmann::json>& results);

// Reads RUN_DIR/results.json of every run and writes report.html and report.md into
// `output_dir` (created if missing). Fails on a missing or malformed results.json.
[[nodiscard]] Status WriteComparison(const std::vector<std::string>& run_dirs,
                                     const std::vector<std::string>& labels,
                                     const std::string& output_dir);

}  // namespace tinyserve::bench
