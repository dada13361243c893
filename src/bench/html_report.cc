#include "bench/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "bench/svg_chart.h"

namespace tinyserve::bench {
namespace {

using nlohmann::json;

// Per level at most this many requests go into the timeline (evenly thinned beyond it), so a
// long run's page stays a few MB.
constexpr size_t kMaxTimelinePoints = 4000;

constexpr const char* kCss = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
#main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
section{overflow-x:auto}table.facts td{text-align:left;white-space:normal;max-width:900px}.note{color:#555;font-size:12.5px;max-width:900px}
.verdict{background:#fff;border-left:4px solid #1f77b4;padding:2px 12px;margin:8px 0}
.chart{position:relative;display:inline-block;vertical-align:top;margin:6px 12px 12px 0;background:#fff;border:1px solid #e3e3e3}
.chart svg{display:block;font-size:12px}.ctitle{font-size:14px;font-weight:600}
.legend{padding:2px 8px 6px;max-width:740px}.legend .item{cursor:pointer;margin-right:14px;display:inline-block;user-select:none}
.legend .item.off{opacity:.35}.tip{position:absolute;display:none;background:rgba(20,20,20,.88);color:#fff;padding:4px 8px;
border-radius:4px;font-size:12px;pointer-events:none;max-width:420px;white-space:normal}
details{margin:8px 0;background:#fff;padding:4px 10px;border:1px solid #e3e3e3}summary{cursor:pointer;font-weight:600}
.runs .run{font-weight:600}.grid{display:flex;flex-wrap:wrap;gap:0 22px}.grid .cell{flex:0 0 auto}
table.compact td{font-size:13px}
)CSS";

// "<" never appears outside strings in JSON, so escaping every one keeps "</script>" out.
std::string ScriptSafe(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

json HtmlRunData(const json& results, const std::string& label) {
  json run;
  run["label"] = label;
  for (const char* key :
       {"info", "tasks", "knee", "knee_sentence", "knee_uncertainty", "sweep", "server_warmup"}) {
    run[key] = results.value(key, json(nullptr));
  }
  json levels = json::array();
  for (const json& level : results.value("levels", json::array())) {
    json out = json::object();
    for (auto it = level.begin(); it != level.end(); ++it) {
      if (it.key() != "requests") out[it.key()] = it.value();
    }
    const json& requests = level.value("requests", json::array());
    int64_t measured = 0;
    for (const json& q : requests) measured += !q.value("warmup", false);
    out["num_requests"] = measured;
    json timeline = json::array();
    size_t step =
        std::max<size_t>(1, (requests.size() + kMaxTimelinePoints - 1) / kMaxTimelinePoints);
    std::map<std::string, std::vector<double>> by_task;
    for (size_t i = 0; i < requests.size(); ++i) {
      const json& q = requests[i];
      bool ok = q.value("ok", false), warmup = q.value("warmup", false);
      const json& ttft = q.contains("ttft_ms") ? q["ttft_ms"] : json(nullptr);
      if (i % step == 0) {
        timeline.push_back(
            {q.value("start_s", 0.0), ttft, q.value("e2e_ms", 0.0), ok ? 1 : 0, warmup ? 1 : 0});
      }
      if (ok && !warmup) {
        by_task[q.value("task", "")].push_back(ttft.is_number() ? ttft.get<double>()
                                                                : q.value("e2e_ms", 0.0));
      }
    }
    json tasks = json::object();
    for (auto& [name, values] : by_task) {
      std::sort(values.begin(), values.end());
      tasks[name] = values;
    }
    out["timeline"] = timeline;
    out["ttft_by_task"] = tasks;
    levels.push_back(out);
  }
  run["levels"] = levels;
  return run;
}

std::string RenderHtmlPage(const std::string& title, const std::string& kind,
                           const std::vector<json>& runs) {
  json data = {{"kind", kind}, {"title", title}, {"runs", runs}};
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<div id=\"main\"><noscript>This "
      "report draws its tables and charts with JavaScript; report.md beside it has the tables."
      "</noscript></div>\n<script type=\"application/json\" id=\"ts-data\">{}</script>\n"
      "<script>\n{}</script>\n</body>\n</html>\n",
      XmlEscape(title), kCss, ScriptSafe(data.dump(-1, ' ', true)), kReportPageJs);
}

}  // namespace tinyserve::bench
