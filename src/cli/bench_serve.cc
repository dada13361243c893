// `tinyserve bench serve`: the concurrent stress test and capacity report. Drives any
// OpenAI-compatible server (--base-url) or starts the embedded one, raises the load level by
// level, and writes report.md, results.json, results.csv and SVG charts.
#include <fmt/format.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench_runner.h"
#include "bench/child_server.h"
#include "bench/client.h"
#include "bench/report.h"
#include "bench/workload.h"
#include "cli/commands.h"

namespace tinyserve::cli {
namespace {

using bench::BenchPlan;
using bench::BenchResults;
using bench::LoadLevel;

constexpr const char* kDefaultModel = "dummy:qwen2.5-0.5b";

struct BenchServeFlags {
  std::string base_url;
  std::string api_key;
  std::string model;
  std::string dtype;  // embedded dummy model: weight type
  std::string endpoint = "chat";
  std::string users;
  std::string think_time;
  std::string request_rate;
  double duration_s = 0;
  double warmup_s = 0;
  double timeout_s = 0;
  uint64_t seed = 0;
  std::string profile = "quick";
  std::string slo;
  int detail_users = 16;
  std::string output_dir = "bench-results";
  std::string workload;
  std::string mix;
  int max_tokens = 0;
  int threads = 0;
  int64_t max_requests = 1000000;
  int open_loop_concurrency = 64;
  double startup_timeout_s = 300;
  double sweep_budget_s = 0;
  double sweep_max = 0;
  double sweep_start = 0;
  int num_warmups = -1;
};

// What a profile sets unless a flag overrides it.
struct Profile {
  std::string users, think_time, slo;
  double duration_s, warmup_s, timeout_s;
  int max_tokens;  // 0: the workload's own limits.
  double sweep_budget_s;
  int num_warmups;
};

StatusOr<Profile> GetProfile(const std::string& name) {
  // seed: the original plan (1-64 users, 5 min each, Locust-style 1-3 s think time, 30 s
  // timeout, the tasks' full output lengths). quick: a few minutes on a 2-core CPU with the 0.5B
  // model: an automatic sweep of 30 s levels within 3 minutes, outputs capped at 64 tokens. Both
  // warm the server up first so a cold start does not decide the first level.
  if (name == "seed") {
    return Profile{"1,4,8,16,32,64", "1-3", "ttft=1000,e2e=10000", 300, 0, 30, 0, 3600, 3};
  }
  if (name == "quick") return Profile{"auto", "1-3", "ttft=3000,e2e=20000", 25, 5, 30, 64, 180, 3};
  return InvalidArgumentError("--profile must be seed or quick, not \"{}\"", name);
}

StatusOr<std::vector<double>> ParseList(const std::string& text, const char* flag) {
  std::vector<double> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || v <= 0) {
      return InvalidArgumentError("{}: \"{}\" is not a positive number", flag, item);
    }
    out.push_back(v);
  }
  if (out.empty()) return InvalidArgumentError("{}: empty list", flag);
  return out;
}

Status ParseThinkTime(const std::string& text, double* lo, double* hi) {
  size_t dash = text.find('-');
  std::string a = text.substr(0, dash);
  std::string b = dash == std::string::npos ? a : text.substr(dash + 1);
  char *end_a = nullptr, *end_b = nullptr;
  *lo = std::strtod(a.c_str(), &end_a);
  *hi = std::strtod(b.c_str(), &end_b);
  if (a.empty() || b.empty() || *end_a != '\0' || *end_b != '\0' || *lo < 0 || *hi < *lo) {
    return InvalidArgumentError("--think-time: \"{}\" is not MIN-MAX seconds (or 0)", text);
  }
  return OkStatus();
}

std::string DefaultWorkloadPath() {
  if (const char* env = std::getenv("TINYSERVE_WORKLOAD")) return env;
  std::string rel = "data/workload/default.json";  // not const: returned by move
  if (std::filesystem::exists(rel)) return rel;
  return std::string(TINYSERVE_SOURCE_DIR) + "/" + rel;
}

// The first model an external server lists at /models, for when --model is left out.
StatusOr<std::string> FirstServedModel(const std::string& base_url, const std::string& api_key) {
  TS_ASSIGN_OR_RETURN(bench::BaseUrl url, bench::ParseBaseUrl(base_url));
  httplib::Client http(url.scheme_host_port);
  http.set_connection_timeout(std::chrono::seconds(5));
  http.set_read_timeout(std::chrono::seconds(10));
  httplib::Headers headers;
  if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
  auto res = http.Get(url.path_prefix + "/models", headers);
  if (!res || res->status != 200) {
    return UnavailableError("cannot list models at {}/models; pass --model", base_url);
  }
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].value("id", nlohmann::json()).is_string()) {
    return UnavailableError("{}/models lists no model; pass --model", base_url);
  }
  return j["data"][0]["id"].get<std::string>();
}

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "tinyserve" : p.string();
}

Status Run(BenchServeFlags f, CLI::App* cmd) {
  TS_ASSIGN_OR_RETURN(Profile profile, GetProfile(f.profile));
  auto given = [cmd](const char* name) { return cmd->get_option(name)->count() > 0; };
  if (!given("--users")) f.users = profile.users;
  if (!given("--think-time")) f.think_time = profile.think_time;
  if (!given("--slo")) f.slo = profile.slo;
  if (!given("--duration")) f.duration_s = profile.duration_s;
  if (!given("--warmup")) f.warmup_s = profile.warmup_s;
  if (!given("--timeout")) f.timeout_s = profile.timeout_s;
  if (!given("--max-tokens")) f.max_tokens = profile.max_tokens;
  if (!given("--sweep-budget")) f.sweep_budget_s = profile.sweep_budget_s;
  if (!given("--num-warmups")) f.num_warmups = profile.num_warmups;
  if (f.workload.empty()) f.workload = DefaultWorkloadPath();
  if (f.endpoint != "chat" && f.endpoint != "completions") {
    return InvalidArgumentError("--endpoint must be chat or completions");
  }
  if (f.duration_s <= 0 || f.warmup_s < 0 || f.timeout_s <= 0) {
    return InvalidArgumentError("--duration and --timeout must be > 0, --warmup >= 0");
  }

  TS_ASSIGN_OR_RETURN(bench::Workload workload, bench::LoadWorkload(f.workload));
  if (!f.mix.empty()) TS_RETURN_IF_ERROR(bench::ApplyMix(f.mix, &workload));
  if (f.max_tokens > 0) bench::CapMaxTokens(f.max_tokens, &workload);

  BenchPlan plan;
  TS_ASSIGN_OR_RETURN(plan.slo, bench::ParseSlo(f.slo));
  TS_RETURN_IF_ERROR(ParseThinkTime(f.think_time, &plan.load.think_min_s, &plan.load.think_max_s));
  plan.warmup_requests = std::max(0, f.num_warmups);
  plan.sweep.budget_s = f.sweep_budget_s;
  if (f.request_rate == "auto" || (f.request_rate.empty() && f.users == "auto")) {
    plan.sweep.enabled = true;
    plan.sweep.open_loop = f.request_rate == "auto";
    plan.sweep.start = f.sweep_start > 0 ? f.sweep_start : (plan.sweep.open_loop ? 0.25 : 1);
    plan.sweep.max = f.sweep_max > 0 ? f.sweep_max : (plan.sweep.open_loop ? 64 : 256);
    if (f.sweep_budget_s <= 0) return InvalidArgumentError("--sweep-budget must be > 0");
    plan.levels.push_back(LoadLevel{1, 0, f.duration_s, f.warmup_s});
  } else if (!f.request_rate.empty()) {
    TS_ASSIGN_OR_RETURN(std::vector<double> rates, ParseList(f.request_rate, "--request-rate"));
    for (double r : rates) plan.levels.push_back(LoadLevel{0, r, f.duration_s, f.warmup_s});
  } else {
    TS_ASSIGN_OR_RETURN(std::vector<double> users, ParseList(f.users, "--users"));
    for (double u : users) {
      plan.levels.push_back(LoadLevel{static_cast<int>(u), 0, f.duration_s, f.warmup_s});
    }
  }
  plan.load.seed = f.seed;
  plan.load.max_requests = f.max_requests;
  plan.load.open_loop_concurrency = f.open_loop_concurrency;
  plan.load.client.api_key = f.api_key;
  plan.load.client.endpoint =
      f.endpoint == "chat" ? bench::Endpoint::kChat : bench::Endpoint::kCompletions;
  plan.load.client.timeout_s = f.timeout_s;

  std::error_code ec;
  std::filesystem::create_directories(f.output_dir, ec);
  if (ec) return InternalError("cannot create {}: {}", f.output_dir, ec.message());

  const bool embedded = f.base_url.empty();
  const int threads = f.threads > 0 ? f.threads : bench::NumCores();
  std::unique_ptr<bench::ChildServer> child;
  if (embedded) {
    if (f.model.empty()) f.model = kDefaultModel;
    TS_ASSIGN_OR_RETURN(int port, bench::PickFreeLoopbackPort());
    child = std::make_unique<bench::ChildServer>();
    std::string log = (std::filesystem::path(f.output_dir) / "server.log").string();
    std::vector<std::string> argv = {SelfExe(),
                                     "serve",
                                     f.model,
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port),
                                     "--threads",
                                     std::to_string(threads)};
    if (!f.dtype.empty()) argv.insert(argv.end(), {"--dtype", f.dtype});
    TS_RETURN_IF_ERROR(child->Start(argv, log));
    std::string host = fmt::format("http://127.0.0.1:{}", port);
    fmt::print(stderr,
               "starting the embedded server: tinyserve serve {} --port {} --threads {} "
               "(log: {})\n",
               f.model, port, threads, log);
    Status healthy = child->WaitHealthy(host + "/health", f.startup_timeout_s);
    if (!healthy.ok()) return healthy.WithPrefix(fmt::format("embedded server (see {})", log));
    f.base_url = host + "/v1";
    plan.server_pid = child->pid();
  } else if (f.model.empty()) {
    TS_ASSIGN_OR_RETURN(f.model, FirstServedModel(f.base_url, f.api_key));
  }
  plan.load.client.base_url = f.base_url;
  plan.load.client.model = f.model;
  TS_ASSIGN_OR_RETURN(bench::BaseUrl url, bench::ParseBaseUrl(f.base_url));
  plan.metrics_url = url.scheme_host_port + "/metrics";

  BenchResults results;
  bench::RunInfo& info = results.info;
  info.tinyserve_version = TINYSERVE_VERSION;
  info.model = f.model;
  info.base_url = f.base_url;
  info.embedded_server = embedded;
  info.endpoint = f.endpoint;
  info.profile = f.profile;
  info.workload = workload.name + " (" + f.workload + ")";
  info.cpu_model = bench::CpuModelName();
  info.cores = bench::NumCores();
  info.server_threads = embedded ? threads : f.threads;
  info.seed = f.seed;
  info.think_min_s = plan.load.think_min_s;
  info.think_max_s = plan.load.think_max_s;
  info.timeout_s = f.timeout_s;
  info.warmup_s = f.warmup_s;
  info.duration_s = f.duration_s;
  info.detail_users = f.detail_users;
  info.started_at = bench::UtcNow();
  info.slo = plan.slo;
  info.command_line = fmt::format(
      "tinyserve bench serve --profile {} {}--model {} --endpoint {} {} --think-time {} "
      "--duration {:g} --warmup {:g} --timeout {:g} --seed {} --slo {} --num-warmups {}{}{}",
      f.profile, embedded ? "" : "--base-url " + f.base_url + " ", f.model, f.endpoint,
      f.request_rate.empty() ? "--users " + f.users : "--request-rate " + f.request_rate,
      f.think_time, f.duration_s, f.warmup_s, f.timeout_s, f.seed, f.slo, plan.warmup_requests,
      plan.sweep.enabled ? fmt::format(" --sweep-budget {:g} --sweep-start {:g}", f.sweep_budget_s,
                                       plan.sweep.start)
                         : "",
      f.max_tokens > 0 ? fmt::format(" --max-tokens {}", f.max_tokens) : "");

  Status run = bench::RunBench(workload, plan, &results);
  if (child) {
    int code = child->Stop();
    if (code != 0) fmt::print(stderr, "the embedded server exited with status {}\n", code);
  }
  TS_RETURN_IF_ERROR(run);
  TS_RETURN_IF_ERROR(bench::WriteReport(results, workload, f.output_dir));
  fmt::print(
      "\n{}\nreport: {}/report.html (report.md, results.json, results.csv, *.svg beside it)\n",
      bench::RenderConsoleTables(results, workload), f.output_dir);
  return OkStatus();
}

}  // namespace

void AddBenchServeCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<BenchServeFlags>();
  CLI::App* cmd = BenchGroup(app)->add_subcommand(
      "serve", "Stress-test an OpenAI-compatible server level by level; write a capacity report");
  cmd->add_option("--base-url", flags->base_url,
                  "Target server, e.g. http://127.0.0.1:8000/v1 (default: start the embedded one)");
  cmd->add_option("--api-key", flags->api_key, "Bearer token for the target");
  cmd->add_option("--model", flags->model,
                  "Model name to request (default: dummy:qwen2.5-0.5b embedded, or the first "
                  "of the target's /models)");
  cmd->add_option(
      "--dtype", flags->dtype,
      "Embedded dummy model: weight type (f32 f16 bf16 q8_0 q4_0 q4_k_m; default bf16)");
  cmd->add_option("--endpoint", flags->endpoint, "chat or completions")->capture_default_str();
  cmd->add_option("--profile", flags->profile,
                  "quick (default: a few minutes) or seed (the original plan: 1-64 users, 5 min "
                  "each)")
      ->capture_default_str();
  cmd->add_option("--users", flags->users,
                  "Concurrent users per level, e.g. 1,4,8,16,32,64, or auto (double from 1 until "
                  "the server saturates, then refine; see --sweep-budget)");
  cmd->add_option("--think-time", flags->think_time,
                  "Seconds a user waits between requests, MIN-MAX uniform (0: closed loop)");
  cmd->add_option("--request-rate", flags->request_rate,
                  "Open loop instead of users: Poisson arrivals per second, one level per value, "
                  "or auto (double from 0.25/s until saturation, then refine)");
  cmd->add_option("--sweep-budget", flags->sweep_budget_s,
                  "auto sweeps: seconds for all levels (default: quick 180, seed 3600)");
  cmd->add_option("--sweep-start", flags->sweep_start,
                  "auto sweeps: first users (default 1) or requests/s (default 0.25)");
  cmd->add_option("--sweep-max", flags->sweep_max,
                  "auto sweeps: most users (default 256) or requests/s (default 64) tried");
  cmd->add_option("--num-warmups", flags->num_warmups,
                  "Requests sent one by one before the first level, unmeasured (default 3)");
  cmd->add_option("--duration", flags->duration_s, "Measured seconds per level");
  cmd->add_option("--warmup", flags->warmup_s, "Unmeasured seconds at the start of each level");
  cmd->add_option("--timeout", flags->timeout_s, "Per-request limit in seconds (a failure)");
  cmd->add_option("--seed", flags->seed, "Seed of the sample and think-time sequences")
      ->capture_default_str();
  cmd->add_option("--slo", flags->slo, "Per-request objectives, e.g. ttft=1000,e2e=10000 (ms)");
  cmd->add_option("--detail-users", flags->detail_users, "Level of the per-task table")
      ->capture_default_str();
  cmd->add_option("--output-dir", flags->output_dir, "Where the report goes")
      ->capture_default_str();
  cmd->add_option("--workload", flags->workload,
                  "Workload file (default: data/workload/default.json)");
  cmd->add_option("--mix", flags->mix, "Task weights, e.g. summary=2,code=1 or a mix name");
  cmd->add_option("--max-tokens", flags->max_tokens, "Cap on every task's output length");
  cmd->add_option("--threads", flags->threads,
                  "Embedded server's compute threads (default: all cores); recorded otherwise");
  cmd->add_option("--max-requests", flags->max_requests, "Hard bound on requests per level")
      ->capture_default_str();
  cmd->add_option("--open-loop-concurrency", flags->open_loop_concurrency,
                  "Open loop: most requests in flight")
      ->capture_default_str();
  cmd->add_option("--startup-timeout", flags->startup_timeout_s,
                  "Seconds to wait for the embedded server's /health")
      ->capture_default_str();
  AddBenchCompareCommand(app, exit_code);
  cmd->callback([flags, cmd, exit_code] {
    Status st = Run(*flags, cmd);
    if (!st.ok()) fmt::print(stderr, "tinyserve bench serve: {}\n", st.ToString());
    *exit_code = st.ok() ? 0 : 1;
  });
}

}  // namespace tinyserve::cli
