#include "bench/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "bench/bootstrap.h"
#include "bench/html_report.h"
#include "bench/svg_chart.h"

namespace tinyserve::bench {
namespace {

using nlohmann::json;

double LoadOf(const json& level) {
  double rate = level.value("request_rate", 0.0);
  return rate > 0 ? rate : level.value("users", 0.0);
}

std::string LoadText(double load, bool open_loop) {
  return open_loop ? fmt::format("{:g} req/s", load) : fmt::format("{:g}", load);
}

std::string Grouped(double v, int decimals) { return FormatGrouped(v, decimals); }

struct Measure {
  const char* name;
  // The value at a level, or NaN when the level has none (or too few requests for it).
  std::function<double(const json&)> get;
  std::function<std::string(double)> format;
};

double Percentile(const json& level, const char* dist, const char* key, double q) {
  const json& d = level.value(dist, json::object());
  int64_t n = d.value("n", int64_t{0});
  if (n == 0 || !PercentileReportable(n, q)) return std::nan("");
  return d.value(key, std::nan(""));
}

std::vector<Measure> Measures() {
  auto plain = [](int decimals) { return [decimals](double v) { return Grouped(v, decimals); }; };
  auto percent = [](double v) { return fmt::format("{:.1f}%", v * 100); };
  auto millis = [](double v) { return Grouped(v, 0) + " ms"; };
  return {
      {"RPS", [](const json& l) { return l.value("rps", 0.0); }, plain(2)},
      {"goodput RPS", [](const json& l) { return l.value("goodput_rps", 0.0); }, plain(2)},
      {"SLO attainment", [](const json& l) { return l.value("slo_attainment", 0.0); }, percent},
      {"TTFT p50", [](const json& l) { return Percentile(l, "ttft_ms", "p50", 0.5); }, millis},
      {"TTFT p99", [](const json& l) { return Percentile(l, "ttft_ms", "p99", 0.99); }, millis},
      {"E2E p50", [](const json& l) { return Percentile(l, "e2e_ms", "p50", 0.5); }, millis},
      {"E2E p99", [](const json& l) { return Percentile(l, "e2e_ms", "p99", 0.99); }, millis},
      {"ITL p50", [](const json& l) { return Percentile(l, "itl_ms", "p50", 0.5); }, millis},
      {"output tokens/s", [](const json& l) { return l.value("output_tokens_per_s", 0.0); },
       plain(1)},
      {"failures", [](const json& l) { return l.value("failure_rate", 0.0); }, percent},
      {"peak memory (GB)",
       [](const json& l) {
         double b = l.value("server", json::object()).value("rss_max_bytes", -1.0);
         return b < 0 ? std::nan("") : b / 1e9;
       },
       plain(2)},
  };
}

Status ReadJson(const std::filesystem::path& path, json* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return NotFoundError("{} not found (is it a `bench serve` output directory?)", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  *out = json::parse(ss.str(), nullptr, false);
  if (out->is_discarded() || !out->is_object() || !(*out)["levels"].is_array() ||
      !(*out)["info"].is_object()) {
    return InvalidArgumentError("{} is not a bench serve results file", path.string());
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<std::string>> CompareLabels(const std::vector<std::string>& run_dirs,
                                                 const std::vector<std::string>& labels) {
  if (!labels.empty() && labels.size() != run_dirs.size()) {
    return InvalidArgumentError("--label given {} times for {} runs; give one per run or none",
                                labels.size(), run_dirs.size());
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < run_dirs.size(); ++i) {
    std::string name =
        labels.empty() ? std::filesystem::path(run_dirs[i]).lexically_normal().filename().string()
                       : labels[i];
    if (name.empty() || name == ".") {
      name = std::filesystem::absolute(run_dirs[i]).lexically_normal().parent_path().filename();
    }
    std::string unique = name;
    for (int k = 2; std::find(out.begin(), out.end(), unique) != out.end(); ++k) {
      unique = fmt::format("{} ({})", name, k);
    }
    out.push_back(unique);
  }
  return out;
}

std::string RenderComparisonMarkdown(const std::vector<std::string>& labels,
                                     const std::vector<json>& results) {
  std::string md = "# tinyserve bench compare\n\n";
  bool open_loop = false;
  std::set<double> loads;
  for (size_t r = 0; r < results.size(); ++r) {
    const json& info = results[r]["info"];
    md += fmt::format("- **{}**: model `{}` at `{}` · {} · {} cores · started {}\n  {}\n",
                      labels[r], info.value("model", "?"), info.value("base_url", "?"),
                      info.value("cpu_model", "?"), info.value("cores", 0),
                      info.value("started_at", "?"), results[r].value("knee_sentence", ""));
    for (const json& level : results[r]["levels"]) {
      loads.insert(LoadOf(level));
      open_loop = open_loop || level.value("request_rate", 0.0) > 0;
    }
  }
  md +=
      "\nEach table: a column per run at each load; `(×R)` is the ratio to the first run; "
      "`not run` means the run had no such level, `too few` too few requests for the "
      "percentile. The charts are in `report.html`.\n";
  for (const Measure& m : Measures()) {
    md += fmt::format("\n## {}\n\n| {} |", m.name, open_loop ? "rate" : "users");
    for (const std::string& label : labels) md += fmt::format(" {} |", label);
    md += "\n|---|";
    for (size_t r = 0; r < labels.size(); ++r) md += "---|";
    md += "\n";
    for (double load : loads) {
      md += fmt::format("| {} |", LoadText(load, open_loop));
      double first = std::nan("");
      for (size_t r = 0; r < results.size(); ++r) {
        const json* found = nullptr;
        for (const json& level : results[r]["levels"]) {
          if (LoadOf(level) == load) found = &level;
        }
        if (found == nullptr) {
          md += " not run |";
          continue;
        }
        double v = m.get(*found);
        if (r == 0) first = v;
        if (!std::isfinite(v)) {
          md += " too few |";
          continue;
        }
        md += ' ';
        md += m.format(v);
        if (r > 0 && std::isfinite(first) && first != 0) md += fmt::format(" (×{:.2f})", v / first);
        md += " |";
      }
      md += "\n";
    }
  }
  return md;
}

Status WriteComparison(const std::vector<std::string>& run_dirs,
                       const std::vector<std::string>& labels_in, const std::string& output_dir) {
  if (run_dirs.empty()) return InvalidArgumentError("give at least one run directory");
  TS_ASSIGN_OR_RETURN(std::vector<std::string> labels, CompareLabels(run_dirs, labels_in));
  std::vector<json> results(run_dirs.size());
  std::vector<json> runs;
  for (size_t i = 0; i < run_dirs.size(); ++i) {
    TS_RETURN_IF_ERROR(ReadJson(std::filesystem::path(run_dirs[i]) / "results.json", &results[i]));
    runs.push_back(HtmlRunData(results[i], labels[i]));
  }
  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec) return InternalError("cannot create {}: {}", output_dir, ec.message());
  std::string title = "Capacity comparison: ";
  for (size_t i = 0; i < labels.size(); ++i) title += (i ? " vs " : "") + labels[i];
  for (const auto& [name, text] :
       {std::pair<std::string, std::string>{"report.html", RenderHtmlPage(title, "compare", runs)},
        {"report.md", RenderComparisonMarkdown(labels, results)}}) {
    std::ofstream out(std::filesystem::path(output_dir) / name, std::ios::binary);
    out << text;
    out.close();
    if (!out) return InternalError("cannot write {}/{}", output_dir, name);
  }
  return OkStatus();
}

}  // namespace tinyserve::bench
