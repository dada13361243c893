#include "bench/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/bench_runner.h"
#include "bench/compare.h"
#include "bench/fake_openai_server.h"
#include "bench/html_report.h"
#include "bench/svg_chart.h"

namespace tinyserve::bench {
namespace {

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SvgChartTest, RendersEverySeriesEscapedAndClosed) {
  LineChart chart{"RPS <&>",
                  "users",
                  "req/s",
                  /*log2_x=*/true,
                  {{"a", {{1, 1}, {2, 3}, {4, 2}}}, {"b \"q\"", {{1, 0.5}}}, {"empty", {}}}};
  std::string svg = RenderSvg(chart);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("RPS &lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(svg.find("b &quot;q&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("<&>"), std::string::npos);
  size_t polylines = 0;
  for (size_t pos = 0; (pos = svg.find("<polyline", pos)) != std::string::npos; ++pos) ++polylines;
  EXPECT_EQ(polylines, 2u);
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeServerConfig config;
    config.num_tokens = 4;
    server_ = std::make_unique<FakeOpenAIServer>(config);
    server_->Start();
    StatusOr<Workload> w = ParseWorkload(R"({"name": "w", "tasks": [
        {"name": "summary", "samples": [{"id": "s0", "input": "a"}]},
        {"name": "code", "samples": [{"id": "c0", "input": "b"}, {"id": "c1", "input": "c"}]}]})",
                                         ".");
    ASSERT_TRUE(w.ok());
    workload_ = *w;
    BenchPlan plan;
    plan.load.client.base_url = server_->base_url();
    plan.load.client.model = "fake";
    plan.load.seed = 9;
    plan.levels = {LoadLevel{1, 0, 0.3, 0.05}, LoadLevel{2, 0, 0.3, 0.05}};
    plan.metrics_url = server_->base_url().substr(0, server_->base_url().size() - 3) + "/metrics";
    plan.sample_interval_s = 0.1;
    plan.slo = Slo{1000, 5000};
    plan.progress = nullptr;
    results_.info.model = "fake";
    results_.info.tinyserve_version = "test";
    results_.info.cpu_model = CpuModelName();
    results_.info.cores = NumCores();
    results_.info.detail_users = 2;
    results_.info.slo = plan.slo;
    ASSERT_TRUE(RunBench(workload_, plan, &results_).ok());
    dir_ = std::filesystem::temp_directory_path() /
           ("tinyserve_report_test_" + std::to_string(::getpid()));
    ASSERT_TRUE(WriteReport(results_, workload_, dir_.string()).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<FakeOpenAIServer> server_;
  Workload workload_;
  BenchResults results_;
  std::filesystem::path dir_;
};

TEST_F(ReportTest, ResultsJsonCarriesEveryLevelAndEveryRequest) {
  nlohmann::json j = nlohmann::json::parse(Slurp(dir_ / "results.json"));
  for (const char* key : {"tinyserve_version", "model", "cpu_model", "cores", "server_threads",
                          "seed", "timeout_s", "slo", "started_at", "command_line"}) {
    EXPECT_TRUE(j["info"].contains(key)) << key;
  }
  ASSERT_EQ(j["levels"].size(), 2u);
  EXPECT_TRUE(j["knee"].is_object());
  size_t total = 0;
  for (size_t l = 0; l < 2; ++l) {
    const nlohmann::json& level = j["levels"][l];
    for (const char* key :
         {"rps", "goodput_rps", "failure_rate", "failures_by_cause", "ttft_ms", "e2e_ms", "itl_ms",
          "tpot_ms", "mean_in_flight", "server", "tasks", "server_samples", "requests"}) {
      EXPECT_TRUE(level.contains(key)) << key;
    }
    for (const char* p : {"mean", "p50", "p90", "p99", "std"})
      EXPECT_TRUE(level["e2e_ms"].contains(p));
    EXPECT_EQ(level["requests"].size(), results_.levels[l].records.size());
    EXPECT_GT(level["requests"].size(), 0u);
    for (const nlohmann::json& r : level["requests"]) {
      for (const char* key : {"user", "seq", "task", "sample", "start_s", "end_s", "ok", "cause",
                              "ttft_ms", "e2e_ms", "itl_ms", "output_tokens"}) {
        ASSERT_TRUE(r.contains(key)) << key;
      }
      EXPECT_TRUE(r["ok"].get<bool>());
      EXPECT_EQ(r["output_tokens"], 4);
    }
    total += level["requests"].size();
    // The fake server's /metrics was scraped.
    EXPECT_DOUBLE_EQ(level["server"]["rss_max_bytes"], 123456789.0);
    EXPECT_DOUBLE_EQ(level["server"]["kv_usage_max"], 0.25);
  }
  std::string csv = Slurp(dir_ / "results.csv");
  EXPECT_EQ(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')), total + 1);
  EXPECT_EQ(csv.rfind("level,users,", 0), 0u);
}

TEST_F(ReportTest, MarkdownHasTheOriginalTablesKneeAndMachine) {
  std::string md = Slurp(dir_ / "report.md");
  EXPECT_NE(md.find("| users | RPS | mean TTFT (ms) | mean E2E (ms) | memory (GB) | failures |"),
            std::string::npos);
  EXPECT_NE(md.find("Per task at 2 users"), std::string::npos);
  EXPECT_NE(md.find("mean E2E ± std (ms)"), std::string::npos);
  EXPECT_NE(md.find("**Knee: 2 users**"), std::string::npos) << md;
  EXPECT_NE(md.find(CpuModelName()), std::string::npos);
  EXPECT_NE(md.find("| 0.12 |"), std::string::npos);  // Peak memory from /metrics, in GB.
  for (const char* svg :
       {"rps_vs_users.svg", "latency_vs_users.svg", "failures_vs_users.svg", "ttft_by_task.svg"}) {
    EXPECT_NE(md.find(svg), std::string::npos);
    std::string text = Slurp(dir_ / svg);
    EXPECT_EQ(text.rfind("<svg", 0), 0u) << svg;
  }
}

// The page's JSON, as the page's script reads it.
nlohmann::json PageData(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"ts-data\">";
  size_t begin = html.find(open);
  size_t end = html.find("</script>", begin);
  if (begin == std::string::npos || end == std::string::npos) return nullptr;
  begin += open.size();
  return nlohmann::json::parse(html.substr(begin, end - begin));
}

TEST_F(ReportTest, HtmlIsSelfContainedAndCarriesEveryLevel) {
  std::string html = Slurp(dir_ / "report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_NE(html.find(kReportPageJs), std::string::npos);
  nlohmann::json data = PageData(html);
  ASSERT_TRUE(data.is_object());
  EXPECT_EQ(data["kind"], "run");
  ASSERT_EQ(data["runs"].size(), 1u);
  const nlohmann::json& run = data["runs"][0];
  EXPECT_NE(run["knee_sentence"].get<std::string>().find("**Knee: 2 users**"), std::string::npos);
  ASSERT_EQ(run["levels"].size(), 2u);
  for (size_t l = 0; l < 2; ++l) {
    const nlohmann::json& level = run["levels"][l];
    EXPECT_FALSE(level.contains("requests"));
    EXPECT_EQ(level["timeline"].size(), results_.levels[l].records.size());
    size_t measured_ok = 0;
    for (const RequestRecord& q : results_.levels[l].records)
      measured_ok += !q.warmup && q.outcome.ok();
    size_t in_tasks = 0;
    for (const auto& [task, values] : level["ttft_by_task"].items()) {
      in_tasks += values.size();
      EXPECT_TRUE(std::is_sorted(values.begin(), values.end())) << task;
    }
    EXPECT_EQ(in_tasks, measured_ok);
    EXPECT_TRUE(level["rps_ci"].is_array());
  }
}

TEST(HtmlReportTest, ScriptClosingTagsInDataAreEscaped) {
  nlohmann::json run = {{"label", "</script><script>alert(1)</script>"},
                        {"levels", nlohmann::json::array()}};
  std::string html = RenderHtmlPage("t", "run", {run});
  EXPECT_EQ(html.find("</script><script>alert"), std::string::npos);
  EXPECT_EQ(PageData(html)["runs"][0]["label"], run["label"]);
}

TEST_F(ReportTest, CompareOverlaysRunsWithRatiosToTheFirst) {
  std::filesystem::path other = dir_.string() + "_other";
  std::filesystem::path out = dir_.string() + "_compare";
  ASSERT_TRUE(WriteReport(results_, workload_, other.string()).ok());
  Status st = WriteComparison({dir_.string(), other.string()}, {"one", "two"}, out.string());
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::string md = Slurp(out / "report.md");
  EXPECT_NE(md.find("| users | one | two |"), std::string::npos) << md;
  EXPECT_NE(md.find("(×1.00)"), std::string::npos) << md;  // The same results twice.
  nlohmann::json data = PageData(Slurp(out / "report.html"));
  EXPECT_EQ(data["kind"], "compare");
  ASSERT_EQ(data["runs"].size(), 2u);
  EXPECT_EQ(data["runs"][1]["label"], "two");
  EXPECT_FALSE(WriteComparison({dir_.string()}, {"a", "b"}, out.string()).ok());
  EXPECT_FALSE(WriteComparison({(dir_ / "missing").string()}, {}, out.string()).ok());
  std::filesystem::remove_all(other);
  std::filesystem::remove_all(out);
}

LevelStats Level(int users, double ttft_p99_ms, double rps, double lo, double hi) {
  LevelStats s;
  s.users = users;
  s.requests = s.ok = 3;
  s.ttft_ms.n = s.e2e_ms.n = 3;
  s.ttft_ms.p99 = ttft_p99_ms;
  s.e2e_ms.p99 = ttft_p99_ms + 1000;
  s.rps = rps;
  s.rps_ci = Interval{lo, hi};
  return s;
}

// When the lowest load already misses the SLOs there is no knee, and the headline must still say
// why (which SLO, by how much, from how many requests) and what the server carries.
TEST(KneeSentenceTest, SlosOutOfReachAtTheLowestLoadStillGiveTheCapacity) {
  BenchResults r;
  r.info.slo = Slo{3000, 0};
  r.stats = {Level(1, 3600, 0.25, 0.2, 0.3), Level(2, 4100, 0.5, 0.4, 0.6),
             Level(4, 9000, 0.52, 0.4, 0.6)};
  r.sweep_summary = "automatic (users): raised 1, 2, 4 until ...";
  r.saturation_level = 1;
  std::string s = KneeSentence(r);
  EXPECT_EQ(s.rfind("**SLOs not met at any load** (p99 TTFT <= 3000 ms)", 0), 0u) << s;
  EXPECT_NE(s.find("at the lowest load, 1 user: p99 TTFT 3.6 s (n=3) > 3.0 s."), std::string::npos)
      << s;
  EXPECT_NE(s.find("throughput saturates after 2 users at 0.50 req/s (95% CI 0.40 – 0.60)"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.find("Knee: none"), std::string::npos) << s;

  // No saturation found: the best level measured, and a sweep says it did not get there.
  r.saturation_level = -1;
  r.stats[0].failures = 1;
  r.stats[0].requests = 4;
  s = KneeSentence(r);
  EXPECT_NE(s.find("1 user: 1 of 4 requests failed, p99 TTFT 3.6 s (n=3) > 3.0 s."),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("the most throughput measured was 0.52 req/s (95% CI 0.40 – 0.60) at 4 "
                   "users; the sweep did not reach saturation."),
            std::string::npos)
      << s;
}

TEST(CompareTest, LabelsComeFromDirectoriesAndAreUnique) {
  StatusOr<std::vector<std::string>> labels =
      CompareLabels({"out/vllm/", "x/vllm", "llamacpp"}, {});
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(*labels, (std::vector<std::string>{"vllm", "vllm (2)", "llamacpp"}));
  EXPECT_FALSE(CompareLabels({"a", "b"}, {"only one"}).ok());
}

}  // namespace
}  // namespace tinyserve::bench

namespace tinyserve::bench {
namespace {

// A server that can never meet the SLOs (TTFT 40 ms against a 5 ms target) but never saturates
// either: the automatic sweep must still raise the load to its cap instead of stopping at the
// first level, so the report shows the capacity even when the SLOs are out of reach.
TEST(AutoSweepTest, KeepsRaisingWhenTheLowestLoadAlreadyMissesTheSlos) {
  FakeServerConfig config;
  config.num_tokens = 2;
  config.first_token_delay_ms = 40;
  FakeOpenAIServer server(config);
  server.Start();
  StatusOr<Workload> w = ParseWorkload(
      R"({"name": "w", "tasks": [{"name": "code", "samples": [{"id": "c0", "input": "b"}]}]})",
      ".");
  ASSERT_TRUE(w.ok());
  BenchPlan plan;
  plan.load.client.base_url = server.base_url();
  plan.load.client.model = "fake";
  plan.levels = {LoadLevel{1, 0, 0.3, 0.05}};
  plan.sweep = AutoSweep{/*enabled=*/true, /*open_loop=*/false, /*start=*/1, /*max=*/4,
                         /*budget_s=*/60};
  plan.slo = Slo{5, 5000};
  plan.progress = nullptr;
  BenchResults results;
  results.info.slo = plan.slo;
  ASSERT_TRUE(RunBench(*w, plan, &results).ok());
  std::vector<int> users;
  for (const LevelStats& s : results.stats) users.push_back(s.users);
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<int>{1, 2, 4}));
  EXPECT_NE(results.sweep_summary.find("the cap of 4 was reached"), std::string::npos)
      << results.sweep_summary;
  EXPECT_NE(results.sweep_summary.find("lowest load already missed the SLOs"), std::string::npos)
      << results.sweep_summary;
  std::string knee = KneeSentence(results);
  EXPECT_EQ(knee.rfind("**SLOs not met at any load**", 0), 0u) << knee;
  EXPECT_NE(knee.find("the sweep did not reach saturation"), std::string::npos) << knee;
}

}  // namespace
}  // namespace tinyserve::bench
