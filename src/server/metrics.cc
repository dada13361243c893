#include "server/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace tinyserve {
namespace {

std::vector<double> LatencyBounds() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,  0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
}

void Header(std::string* out, const std::string& name, const char* type, const char* help) {
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Sample(std::string* out, const std::string& name, const std::string& labels, double v) {
  *out += fmt::format("{}{{{}}} {}\n", name, labels, v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(&sum_mu_);
  sum_ += value;
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string* out) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    const std::string le = i < bounds_.size() ? fmt::format("{}", bounds_[i]) : "+Inf";
    *out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, le, cumulative);
  }
  double sum;
  {
    MutexLock lock(&sum_mu_);
    sum = sum_;
  }
  *out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, sum, name, labels,
                      cumulative);
}

ServerMetrics::ServerMetrics()
    : ttft_(LatencyBounds()),
      itl_(LatencyBounds()),
      e2e_(LatencyBounds()),
      queue_(LatencyBounds()) {}

void ServerMetrics::CountHttpResponse(int status) {
  size_t slot = 0;
  for (size_t i = 0; i < kStatuses.size(); ++i)
    if (kStatuses[i] == status) slot = i + 1;
  http_counts_[slot].fetch_add(1, std::memory_order_relaxed);
}

std::string ServerMetrics::Render(const EngineStats& s, const EngineOptions& options,
                                  const EngineLimits& limits, const std::string& model_name,
                                  const structured::GrammarCache::Stats& g) const {
  const std::string m = fmt::format("model_name=\"{}\"", model_name);
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    const std::string full = std::string("tinyserve:") + name;
    Header(&out, full, "gauge", help);
    Sample(&out, full, m, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    const std::string full = std::string("tinyserve:") + name;
    Header(&out, full, "counter", help);
    Sample(&out, full, m, v);
  };
  gauge("num_requests_running", "Sequences holding KV cache blocks.", double(s.num_running));
  gauge("num_requests_waiting", "Sequences waiting to be scheduled.", double(s.num_waiting));
  gauge("kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = full).", s.kv_usage);
  gauge("kv_cache_blocks_total", "KV cache blocks.", double(s.kv_blocks_total));
  gauge("kv_cache_bytes", "KV cache budget in bytes.", double(limits.kv_cache_bytes));
  gauge("max_num_seqs", "Budget: sequences per step.", double(options.max_num_seqs));
  gauge("max_num_batched_tokens", "Budget: tokens per step.",
        double(options.max_num_batched_tokens));
  gauge("max_queue_len", "Budget: queued requests before 503.", double(options.max_queue_len));
  gauge("max_model_len", "Budget: prompt + output tokens.", double(limits.max_model_len));
  gauge("threads", "Compute threads.", double(limits.threads));
  counter("prompt_tokens_total", "Prompt tokens admitted.", double(s.prompt_tokens));
  counter("generation_tokens_total", "Tokens generated.", double(s.generation_tokens));
  counter("num_preemptions_total", "Sequences preempted (freed, recomputed later).",
          double(s.num_preemptions));
  counter("prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          double(s.prefix_cache_queries));
  counter("prefix_cache_hits_total", "Prompt tokens served by the prefix cache.",
          double(s.prefix_cache_hits));
  counter("request_rejected_total", "Requests refused at submission.", double(s.requests_rejected));

  counter("structured_grammar_cache_hits_total", "Structured requests served a cached grammar.",
          double(g.hits));
  counter("structured_grammar_cache_misses_total", "Structured requests that compiled a grammar.",
          double(g.misses));
  counter("structured_grammar_errors_total", "Constraints refused (invalid, unsupported, limits).",
          double(g.errors));
  counter("structured_grammar_failure_hits_total",
          "Structured requests refused a remembered compile failure, without compiling.",
          double(g.failure_hits));
  counter("structured_grammar_shared_total",
          "Structured requests that waited for the same grammar's compile in progress.",
          double(g.shared));
  counter("structured_grammar_compile_waits_total",
          "Grammar compiles that waited for a compile slot.", double(g.gate_waits));
  counter("structured_grammar_compile_refusals_total",
          "Structured requests refused (503) after waiting too long for a compile slot.",
          double(g.gate_refusals));
  gauge("structured_grammar_compiles_peak", "Most grammar compiles seen running at once.",
        double(g.peak_compiles));
  auto summary = [&](const char* name, const char* help, double sum, double count) {
    const std::string full = std::string("tinyserve:") + name;
    Header(&out, full, "summary", help);
    Sample(&out, full + "_sum", m, sum);
    Sample(&out, full + "_count", m, count);
  };
  summary("structured_compile_seconds", "Grammar compilation time (cache misses).",
          g.compile_seconds, double(g.misses));
  summary("structured_mask_seconds", "Allowed-token mask time per structured token.",
          s.structured_mask_seconds_sum, double(s.structured_masks));

  const std::string success = "tinyserve:request_success_total";
  Header(&out, success, "counter", "Finished choices by finish reason.");
  Sample(&out, success, m + ",finished_reason=\"stop\"", double(s.finished_stop));
  Sample(&out, success, m + ",finished_reason=\"length\"", double(s.finished_length));
  Sample(&out, success, m + ",finished_reason=\"abort\"", double(s.finished_abort));
  Sample(&out, success, m + ",finished_reason=\"error\"", double(s.finished_error));

  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    const std::string full = std::string("tinyserve:") + name;
    Header(&out, full, "histogram", help);
    h.Render(full, m, &out);
  };
  histogram("time_to_first_token_seconds", "Time to first token.", ttft_);
  histogram("inter_token_latency_seconds", "Time between streamed tokens.", itl_);
  histogram("e2e_request_latency_seconds", "Request latency, arrival to last token.", e2e_);
  histogram("request_queue_time_seconds", "Time from arrival to first schedule.", queue_);

  Header(&out, "tinyserve:http_requests_total", "counter",
         "HTTP responses by status (499: the client left before its answer, which was not sent).");
  for (size_t i = 0; i <= kStatuses.size(); ++i) {
    const std::string status = i == 0 ? "other" : std::to_string(kStatuses[i - 1]);
    Sample(&out, "tinyserve:http_requests_total", fmt::format("status=\"{}\"", status),
           double(http_counts_[i].load(std::memory_order_relaxed)));
  }
  Header(&out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += fmt::format("process_resident_memory_bytes {}\n", ResidentMemoryBytes());
  return out;
}

void RenderAdmissionMetrics(const AdmissionStats& stats, const EngineOptions& options,
                            const std::string& model_name, std::string* out) {
  const std::string m = fmt::format("model_name=\"{}\"", model_name);
  auto one = [&](const char* name, const char* type, const char* help, double v) {
    const std::string full = std::string("tinyserve:") + name;
    Header(out, full, type, help);
    Sample(out, full, m, v);
  };
  one("predicted_wait_seconds", "gauge",
      "Predicted wait for a first step of the latest arriving request.", stats.predicted_wait_s);
  one("admission_admitted_total", "counter", "Requests admitted by the deadline predictor.",
      double(stats.admitted));
  const std::string refused = "tinyserve:admission_refused_total";
  Header(out, refused, "counter",
         "Requests refused (deadline, queue_delay, client_share: 503/429 at once) or shed from "
         "the queue before they ran.");
  Sample(out, refused, m + ",reason=\"deadline\"", double(stats.refused_deadline));
  Sample(out, refused, m + ",reason=\"queue_delay\"", double(stats.refused_queue_delay));
  Sample(out, refused, m + ",reason=\"client_share\"", double(stats.refused_client_share));
  Sample(out, refused, m + ",reason=\"shed\"", double(stats.shed));
  auto summary = [&](const char* name, const char* help, double sum, int64_t count) {
    const std::string full = std::string("tinyserve:") + name;
    Header(out, full, "summary", help);
    Sample(out, full + "_sum", m, sum);
    Sample(out, full + "_count", m, double(count));
  };
  summary("admission_predicted_wait_seconds", "Predicted waits of admitted requests that started.",
          stats.predicted_wait_sum_s, stats.num_waits);
  summary("admission_actual_wait_seconds", "Measured waits of the same requests.",
          stats.actual_wait_sum_s, stats.num_waits);
  one("prefill_tokens_per_second", "gauge", "Measured prefill speed (0 until measured).",
      stats.prefill_tokens_per_s);
  one("decode_step_seconds", "gauge", "Measured decode step time at the current batch.",
      stats.decode_step_s);
  one("prefill_token_limit", "gauge",
      "Prefill tokens a step may take at the current batch under --max-step-ms (0: no limit).",
      double(stats.prefill_token_limit));
  one("max_step_ms", "gauge", "Budget: step time with running decodes.", options.max_step_ms);
  one("budgeted_steps_total", "counter",
      "Steps that held running decodes and a prefill chunk (the chunk sized to --max-step-ms).",
      double(stats.budgeted_steps));
  one("budgeted_steps_over_total", "counter",
      "Of those, steps that took longer than --max-step-ms.", double(stats.budgeted_steps_over));
  one("admission_clients", "gauge", "Clients with admitted work.", double(stats.num_clients));
  one("step_budget_overrun", "gauge",
      "Measured / predicted time of steps with decodes and a prefill chunk; chunks are sized "
      "for --max-step-ms divided by it.",
      stats.budget_overrun);
  one("admission_deadline_slack", "gauge",
      "Share of a request's time the admission keeps unused (adapts to near misses).",
      stats.deadline_slack);
  one("admission_late_total", "counter",
      "Admitted requests that ended late or with less than 2% of their time left.",
      double(stats.late_finishes));
}

void RenderHttpBodyMetrics(uint64_t buffered_bytes, uint64_t max_bytes,
                           const std::string& model_name, std::string* out) {
  const std::string m = fmt::format("model_name=\"{}\"", model_name);
  Header(out, "tinyserve:http_buffered_body_bytes", "gauge",
         "Request body bytes being received or waiting for a worker (503 past the budget).");
  Sample(out, "tinyserve:http_buffered_body_bytes", m, double(buffered_bytes));
  Header(out, "tinyserve:http_max_buffered_body_bytes", "gauge",
         "Budget: request body bytes being received or waiting for a worker.");
  Sample(out, "tinyserve:http_max_buffered_body_bytes", m, double(max_bytes));
}

int64_t ResidentMemoryBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long pages_total = 0, pages_resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &pages_total, &pages_resident);
  std::fclose(f);
  if (n != 2) return 0;
  return pages_resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace tinyserve
