#include "bench/load_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "bench/fake_openai_server.h"
#include "bench/stats.h"

namespace tinyserve::bench {
namespace {

Workload TextWorkload() {
  StatusOr<Workload> w = ParseWorkload(R"({
    "name": "t",
    "tasks": [
      {"name": "a", "weight": 2, "max_tokens": 8, "prompt": "A {input}",
       "samples": [{"id": "a0", "input": "x"}, {"id": "a1", "input": "y"}]},
      {"name": "b", "weight": 1, "max_tokens": 8, "prompt": "B {input}",
       "samples": [{"id": "b0", "input": "z"}, {"id": "b1", "input": "w"}, {"id": "b2", "input": "v"}]}
    ]})",
                                       ".");
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return *w;
}

LoadOptions Options(const FakeOpenAIServer& server, double timeout_s) {
  LoadOptions o;
  o.client.base_url = server.base_url();
  o.client.model = "fake";
  o.client.timeout_s = timeout_s;
  return o;
}

// Most requests ever in flight at once, from the records alone.
int MaxOverlap(const std::vector<RequestRecord>& records) {
  std::vector<std::pair<double, int>> events;
  for (const RequestRecord& r : records) {
    events.emplace_back(r.start_s, +1);
    events.emplace_back(r.end_s, -1);
  }
  std::sort(events.begin(), events.end());  // An end before a start at the same instant.
  int now = 0, most = 0;
  for (auto [t, d] : events) most = std::max(most, now += d);
  return most;
}

TEST(LoadGeneratorTest, ClosedLoopSatisfiesLittlesLaw) {
  FakeServerConfig config;
  config.num_tokens = 6;
  config.first_token_delay_ms = 4;
  config.token_delay_ms = 3;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  LoadOptions o = Options(server, 5);
  o.think_min_s = 0.01;
  o.think_max_s = 0.03;
  o.seed = 1;
  LoadLevel level{/*users=*/4, /*request_rate=*/0, /*duration_s=*/2.0, /*warmup_s=*/0.3};
  StatusOr<LevelResult> r = RunLevel(w, o, level, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LevelStats s = ComputeLevelStats(*r, w, Slo{}, {});
  ASSERT_EQ(s.failures, 0);
  ASSERT_GT(s.ok, 40);
  // L = lambda * W: the time-averaged count in flight against throughput times mean latency.
  double little = s.rps * s.e2e_ms.mean / 1e3;
  EXPECT_NEAR(r->mean_in_flight, little, 0.10 * r->mean_in_flight)
      << "mean in flight " << r->mean_in_flight << ", RPS " << s.rps << ", mean E2E "
      << s.e2e_ms.mean << " ms";
  // Think time keeps users idle part of the time, so fewer than 4 are in flight on average.
  EXPECT_LT(r->mean_in_flight, 4.0);
  EXPECT_LE(r->max_in_flight, 4);
  EXPECT_LE(MaxOverlap(r->records), 4);
  EXPECT_LE(server.max_in_flight(), 4);
}

TEST(LoadGeneratorTest, InFlightNeverExceedsUsersWithoutThinkTime) {
  FakeServerConfig config;
  config.num_tokens = 4;
  config.token_delay_ms = 2;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  LoadLevel level{/*users=*/3, 0, /*duration_s=*/0.8, /*warmup_s=*/0};
  StatusOr<LevelResult> r = RunLevel(w, Options(server, 5), level, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->records.size(), 20u);
  EXPECT_EQ(r->max_in_flight, 3);
  EXPECT_LE(MaxOverlap(r->records), 3);
  EXPECT_LE(server.max_in_flight(), 3);
  // A closed loop without think time keeps every user busy.
  EXPECT_GT(r->mean_in_flight, 2.5);
}

TEST(LoadGeneratorTest, StalledRequestsAreTimeoutsAndTheLevelEndsOnTime) {
  FakeServerConfig config;
  config.mode = FakeServerConfig::Mode::kStall;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  const double timeout = 0.3;
  LoadLevel level{/*users=*/2, 0, /*duration_s=*/1.0, /*warmup_s=*/0};
  auto t0 = std::chrono::steady_clock::now();
  StatusOr<LevelResult> r = RunLevel(w, Options(server, timeout), level, nullptr);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok());
  // A timed-out request frees its user for the next: two users, at least two rounds each in 1 s
  // of 0.3 s timeouts (four each unloaded).
  ASSERT_GE(r->records.size(), 4u);
  // The server holds a stalled answer for 5 s: a request the client did not give up on at its
  // timeout would last about that long. The margins (2 s) are for a loaded machine (sanitizer
  // builds, parallel tests), not for the client: they still tell 0.3 s from 5.
  constexpr double kSlack = 2.0;
  for (const RequestRecord& rec : r->records) {
    EXPECT_EQ(rec.outcome.cause, "timeout");
    EXPECT_GE(rec.outcome.e2e_s, timeout - 0.01);
    EXPECT_LT(rec.outcome.e2e_s, timeout + kSlack);
  }
  // Issuing stops at 1 s; the last requests end by 1 + timeout.
  EXPECT_LT(elapsed, level.duration_s + timeout + kSlack);
}

TEST(LoadGeneratorTest, InvalidJsonAndSchemaViolationsAreCountedByCause) {
  FakeServerConfig config;
  config.num_tokens = 3;
  config.answer = [](const nlohmann::json& body) -> std::string {
    std::string name = body["response_format"]["json_schema"]["name"];
    if (name.find("good") != std::string::npos) return R"({"n": 3, "tag": "x"})";
    if (name.find("broken") != std::string::npos) return R"({"n": 3, "tag": )";
    return R"({"n": 300, "tag": "x"})";  // Violates maximum.
  };
  FakeOpenAIServer server(config);
  server.Start();
  StatusOr<Workload> w = ParseWorkload(R"({"tasks": [{
      "name": "structured", "check": "json_schema", "prompt": "{input} {schema}",
      "samples": [
        {"id": "good", "input": "i", "schema": {"type": "object", "required": ["n", "tag"],
          "properties": {"n": {"type": "integer", "maximum": 10}, "tag": {"type": "string"}}}},
        {"id": "broken", "input": "i", "schema": {"type": "object"}},
        {"id": "violating", "input": "i", "schema": {"type": "object",
          "properties": {"n": {"type": "integer", "maximum": 10}}}}]}]})",
                                       ".");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  LoadLevel level{/*users=*/2, 0, /*duration_s=*/0.6, /*warmup_s=*/0};
  StatusOr<LevelResult> r = RunLevel(*w, Options(server, 5), level, nullptr);
  ASSERT_TRUE(r.ok());
  std::map<std::string, int> expected;
  for (const RequestRecord& rec : r->records) {
    const std::string& id = w->tasks[0].samples[rec.sample_idx].id;
    std::string want = id == "good" ? "" : id == "broken" ? "invalid_json" : "schema_violation";
    EXPECT_EQ(rec.outcome.cause, want) << id << ": " << rec.outcome.detail;
    if (!want.empty()) ++expected[want];
  }
  LevelStats s = ComputeLevelStats(*r, *w, Slo{}, {});
  EXPECT_GT(expected["invalid_json"], 0);
  EXPECT_GT(expected["schema_violation"], 0);
  EXPECT_EQ(s.failures_by_cause["invalid_json"], expected["invalid_json"]);
  EXPECT_EQ(s.failures_by_cause["schema_violation"], expected["schema_violation"]);
  EXPECT_EQ(s.tasks[0].failures, expected["invalid_json"] + expected["schema_violation"]);
  // The structured request carried the schema as response_format, strict.
  nlohmann::json body = server.bodies().front();
  EXPECT_EQ(body["response_format"]["type"], "json_schema");
  EXPECT_EQ(body["response_format"]["json_schema"]["strict"], true);
  EXPECT_TRUE(body["response_format"]["json_schema"]["schema"].is_object());
}

// (task, sample, think time) per user, in order.
std::map<int, std::vector<std::tuple<int, int, double>>> Sequences(const LevelResult& r) {
  std::map<int, std::vector<std::tuple<int, int, double>>> out;
  for (const RequestRecord& rec : r.records) {
    auto& v = out[rec.user];
    if (static_cast<int64_t>(v.size()) <= rec.seq) v.resize(rec.seq + 1);
    v[rec.seq] = {rec.task_idx, rec.sample_idx, rec.think_s};
  }
  return out;
}

TEST(LoadGeneratorTest, SameSeedGivesTheSameRequestSequence) {
  FakeServerConfig config;
  config.num_tokens = 2;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  LoadOptions o = Options(server, 5);
  o.think_min_s = 0.001;
  o.think_max_s = 0.004;
  LoadLevel level{/*users=*/3, 0, /*duration_s=*/0.4, /*warmup_s=*/0};
  auto run = [&](uint64_t seed) {
    o.seed = seed;
    StatusOr<LevelResult> r = RunLevel(w, o, level, nullptr);
    EXPECT_TRUE(r.ok());
    return Sequences(*r);
  };
  auto a = run(42), b = run(42), c = run(43);
  ASSERT_EQ(a.size(), 3u);
  size_t compared = 0;
  bool differs = false;
  for (int user = 0; user < 3; ++user) {
    size_t n = std::min({a[user].size(), b[user].size(), c[user].size()});
    ASSERT_GE(n, 10u);
    for (size_t k = 0; k < n; ++k) {
      EXPECT_EQ(a[user][k], b[user][k]) << "user " << user << " request " << k;
      differs = differs || a[user][k] != c[user][k];
      ++compared;
    }
  }
  EXPECT_GT(compared, 30u);
  EXPECT_TRUE(differs);
  // Users draw different streams.
  EXPECT_NE(a[0], a[1]);
}

TEST(LoadGeneratorTest, OpenLoopArrivalsFollowTheRequestedRate) {
  FakeServerConfig config;
  config.num_tokens = 2;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  LoadOptions o = Options(server, 5);
  o.seed = 3;
  o.open_loop_concurrency = 16;
  LoadLevel level{/*users=*/0, /*request_rate=*/100, /*duration_s=*/1.0, /*warmup_s=*/0};
  StatusOr<LevelResult> r = RunLevel(w, o, level, nullptr);
  ASSERT_TRUE(r.ok());
  // Poisson(100): 4 standard deviations either side.
  EXPECT_GT(r->records.size(), 60u);
  EXPECT_LT(r->records.size(), 140u);
  for (const RequestRecord& rec : r->records) {
    EXPECT_TRUE(rec.outcome.ok()) << rec.outcome.cause;
    EXPECT_GE(rec.start_s, rec.scheduled_s - 1e-6);
  }
}

TEST(LoadGeneratorTest, RequestBoundStopsTheLevel) {
  FakeServerConfig config;
  config.num_tokens = 1;
  FakeOpenAIServer server(config);
  server.Start();
  Workload w = TextWorkload();
  LoadOptions o = Options(server, 5);
  o.max_requests = 7;
  LoadLevel level{/*users=*/2, 0, /*duration_s=*/30, /*warmup_s=*/0};
  StatusOr<LevelResult> r = RunLevel(w, o, level, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->records.size(), 7u);
  EXPECT_LT(r->wall_s, 5.0);
}

}  // namespace
}  // namespace tinyserve::bench
