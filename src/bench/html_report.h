// report.html: one self-contained page (inline CSS, JSON data and script; no network) with the
// run facts, tables and interactive SVG charts, for one run or several overlaid (bench compare).
// The page's script is src/bench/report_page.js, embedded into the binary at build time.
// Pure functions; safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tinyserve::bench {

// The page's data for one run, from its results.json: everything but the per-request list,
// which becomes a compact timeline per level ([start_s, ttft_ms, e2e_ms, ok, warmup]) and each
// task's sorted TTFTs. `label` names the run in a comparison.
nlohmann::json HtmlRunData(const nlohmann::json& results, const std::string& label);

// The whole page. `kind` is "run" or "compare"; `runs` are HtmlRunData objects.
std::string RenderHtmlPage(const std::string& title, const std::string& kind,
                           const std::vector<nlohmann::json>& runs);

// The embedded page script (report_page.js).
extern const char* const kReportPageJs;

}  // namespace tinyserve::bench
