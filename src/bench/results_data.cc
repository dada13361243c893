// results.json (every level's statistics, the knee, every request's timings and outcome) and
// results.csv (one row per request): the machine-readable halves of the bench report
// (report.h declares them).
#include <fmt/format.h>

#include <string>

#include "bench/report.h"

namespace tinyserve::bench {
namespace {

using json = nlohmann::json;

json CiJson(const Interval& ci) { return ci.known() ? json::array({ci.lo, ci.hi}) : json(nullptr); }

json DistJson(const Distribution& d) {
  return {{"n", d.n},
          {"mean", d.mean},
          {"std", d.std},
          {"min", d.min},
          {"max", d.max},
          {"p50", d.p50},
          {"p90", d.p90},
          {"p99", d.p99},
          {"p50_ci", CiJson(d.p50_ci)},
          {"p90_ci", CiJson(d.p90_ci)},
          {"p99_ci", CiJson(d.p99_ci)}};
}

}  // namespace

json ResultsJson(const BenchResults& r, const Workload& w) {
  const RunInfo& i = r.info;
  json out;
  out["info"] = {{"tinyserve_version", i.tinyserve_version},
                 {"model", i.model},
                 {"base_url", i.base_url},
                 {"embedded_server", i.embedded_server},
                 {"endpoint", i.endpoint},
                 {"profile", i.profile},
                 {"workload", i.workload},
                 {"cpu_model", i.cpu_model},
                 {"cores", i.cores},
                 {"server_threads", i.server_threads},
                 {"seed", i.seed},
                 {"think_time_s", {i.think_min_s, i.think_max_s}},
                 {"timeout_s", i.timeout_s},
                 {"warmup_s", i.warmup_s},
                 {"duration_s", i.duration_s},
                 {"detail_users", i.detail_users},
                 {"started_at", i.started_at},
                 {"command_line", i.command_line},
                 {"slo", {{"ttft_ms", i.slo.ttft_ms}, {"e2e_ms", i.slo.e2e_ms}}}};
  json tasks = json::array();
  for (const TaskType& t : w.tasks) {
    tasks.push_back({{"name", t.name},
                     {"weight", t.weight},
                     {"max_tokens", t.max_tokens},
                     {"temperature", t.temperature},
                     {"samples", t.samples.size()}});
  }
  out["tasks"] = tasks;
  int knee = FindKnee(r.stats, i.slo);
  out["knee"] = knee < 0 ? json(nullptr)
                         : json{{"level", knee},
                                {"users", r.stats[knee].users},
                                {"request_rate", r.stats[knee].request_rate},
                                {"rps", r.stats[knee].rps}};
  out["knee_sentence"] = r.stats.empty() ? "" : KneeSentence(r);
  out["knee_uncertainty"] = KneeUncertaintySentence(r);
  if (r.knee_uncertainty.resamples > 0) {
    const KneeUncertainty& u = r.knee_uncertainty;
    out["knee_bootstrap"] = {{"resamples", u.resamples},
                             {"low_level", u.low},
                             {"high_level", u.high},
                             {"share_at_estimate", u.share_at_estimate}};
  }
  out["sweep"] = r.sweep_summary.empty()
                     ? json(nullptr)
                     : json{{"summary", r.sweep_summary}, {"saturation", r.saturation_note}};
  if (r.saturation_level >= 0) {
    const LevelStats& s = r.stats[r.saturation_level];
    out["sweep"]["saturates_after"] = {{"level", r.saturation_level},
                                       {"users", s.users},
                                       {"request_rate", s.request_rate},
                                       {"rps", s.rps},
                                       {"rps_ci", CiJson(s.rps_ci)}};
  }
  out["server_warmup"] =
      r.warmup_summary.empty() ? json(nullptr) : json{{"summary", r.warmup_summary}};
  json levels = json::array();
  for (size_t l = 0; l < r.stats.size(); ++l) {
    const LevelStats& s = r.stats[l];
    json level = {{"users", s.users},
                  {"request_rate", s.request_rate},
                  {"duration_s", s.duration_s},
                  {"requests", s.requests},
                  {"ok", s.ok},
                  {"failures", s.failures},
                  {"failure_rate", s.failure_rate},
                  {"failures_by_cause", s.failures_by_cause},
                  {"refused", s.refused},
                  {"timeouts", s.timeouts},
                  {"errors", s.errors},
                  {"rps", s.rps},
                  {"output_tokens_per_s", s.output_tokens_per_s},
                  {"goodput_rps", s.goodput_rps},
                  {"deadline_goodput_rps", s.deadline_goodput_rps},
                  {"completed_rps", s.completed_rps},
                  {"slo_attainment", s.slo_attainment},
                  {"holds", LevelHolds(s, i.slo)},
                  {"rps_ci", CiJson(s.rps_ci)},
                  {"goodput_ci", CiJson(s.goodput_ci)},
                  {"slo_attainment_ci", CiJson(s.slo_attainment_ci)},
                  {"ttft_ms", DistJson(s.ttft_ms)},
                  {"e2e_ms", DistJson(s.e2e_ms)},
                  {"itl_ms", DistJson(s.itl_ms)},
                  {"tpot_ms", DistJson(s.tpot_ms)},
                  {"mean_in_flight", s.mean_in_flight},
                  {"max_in_flight", s.max_in_flight},
                  {"wall_s", r.levels[l].wall_s}};
    json per_task = json::array();
    for (const TaskStats& t : s.tasks) {
      per_task.push_back({{"task", t.name},
                          {"requests", t.requests},
                          {"failures", t.failures},
                          {"ttft_ms", DistJson(t.ttft_ms)},
                          {"e2e_ms", DistJson(t.e2e_ms)}});
    }
    level["tasks"] = per_task;
    const ServerStats& v = s.server;
    level["server"] = {{"samples", v.samples},
                       {"rss_max_bytes", v.rss_max_bytes},
                       {"kv_usage_mean", v.kv_usage_mean},
                       {"kv_usage_max", v.kv_usage_max},
                       {"running_mean", v.running_mean},
                       {"waiting_mean", v.waiting_mean},
                       {"waiting_max", v.waiting_max},
                       {"preemptions", v.preemptions}};
    json samples = json::array();
    if (l < r.server_samples.size()) {
      for (const ServerSample& x : r.server_samples[l]) {
        samples.push_back({{"t_s", x.t_s},
                           {"rss_bytes", x.rss_bytes},
                           {"kv_usage", x.kv_usage},
                           {"running", x.running},
                           {"waiting", x.waiting},
                           {"preemptions_total", x.preemptions_total}});
      }
    }
    level["server_samples"] = samples;
    json requests = json::array();
    for (const RequestRecord& q : r.levels[l].records) {
      const RequestOutcome& o = q.outcome;
      json itl = json::array();
      for (double g : o.itl_s) itl.push_back(g * 1e3);
      requests.push_back({{"user", q.user},
                          {"seq", q.seq},
                          {"task", w.tasks[q.task_idx].name},
                          {"sample", w.tasks[q.task_idx].samples[q.sample_idx].id},
                          {"warmup", q.warmup},
                          {"scheduled_s", q.scheduled_s},
                          {"start_s", q.start_s},
                          {"end_s", q.end_s},
                          {"think_s", q.think_s},
                          {"ok", o.ok()},
                          {"cause", o.cause},
                          {"detail", o.detail},
                          {"http_status", o.http_status},
                          {"ttft_ms", o.ttft_s < 0 ? json(nullptr) : json(o.ttft_s * 1e3)},
                          {"e2e_ms", o.e2e_s * 1e3},
                          {"itl_ms", itl},
                          {"output_tokens", o.output_tokens},
                          {"prompt_tokens", o.prompt_tokens},
                          {"usage_reported", o.usage_reported},
                          {"finish_reason", o.finish_reason}});
    }
    level["requests"] = requests;
    levels.push_back(level);
  }
  out["levels"] = levels;
  return out;
}

std::string ResultsCsv(const BenchResults& r, const Workload& w) {
  std::string csv =
      "level,users,request_rate,user,seq,task,sample,warmup,scheduled_s,start_s,end_s,ok,cause,"
      "http_status,ttft_ms,e2e_ms,mean_itl_ms,output_tokens,prompt_tokens,finish_reason\n";
  for (size_t l = 0; l < r.levels.size(); ++l) {
    const LevelResult& level = r.levels[l];
    for (const RequestRecord& q : level.records) {
      const RequestOutcome& o = q.outcome;
      double itl = 0;
      for (double g : o.itl_s) itl += g;
      std::string mean_itl =
          o.itl_s.empty() ? "" : fmt::format("{:.3f}", itl * 1e3 / o.itl_s.size());
      // Causes, task names and sample ids are identifiers; finish reasons are quoted anyway.
      csv += fmt::format(
          "{},{},{:g},{},{},{},{},{},{:.6f},{:.6f},{:.6f},{},{},{},{},{:.3f},{},{},{},"
          "\"{}\"\n",
          l, level.level.users, level.level.request_rate, q.user, q.seq, w.tasks[q.task_idx].name,
          w.tasks[q.task_idx].samples[q.sample_idx].id, q.warmup ? 1 : 0, q.scheduled_s, q.start_s,
          q.end_s, o.ok() ? 1 : 0, o.cause, o.http_status,
          o.ttft_s < 0 ? "" : fmt::format("{:.3f}", o.ttft_s * 1e3), o.e2e_s * 1e3, mean_itl,
          o.output_tokens, o.prompt_tokens, o.finish_reason);
    }
  }
  return csv;
}

}  // namespace tinyserve::bench
