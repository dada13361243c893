// Prometheus text exposition of the server's state: engine gauges and counters under vLLM's
// names with the prefix `tinyserve:`, latency histograms observed by HTTP threads, HTTP response
// counts by status, and process memory. Observe* and Count* are thread-safe (atomics); Render
// may run concurrently with them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "structured/compiler.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace tinyserve {

// Cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Appends `name`_bucket / _sum / _count lines with `labels` (e.g. model_name="m").
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  const std::vector<double> bounds_;
  std::vector<std::atomic<int64_t>> counts_;  // [bounds + 1], last is +Inf
  mutable Mutex sum_mu_;
  double sum_ GUARDED_BY(sum_mu_) = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void ObserveTimeToFirstToken(double seconds) { ttft_.Observe(seconds); }
  void ObserveInterTokenLatency(double seconds) { itl_.Observe(seconds); }
  void ObserveEndToEnd(double seconds) { e2e_.Observe(seconds); }
  void ObserveQueueTime(double seconds) { queue_.Observe(seconds); }
  void CountHttpResponse(int status);

  // The whole /metrics body.
  std::string Render(const EngineStats& stats, const EngineOptions& options,
                     const EngineLimits& limits, const std::string& model_name,
                     const structured::GrammarCache::Stats& grammars = {}) const;

 private:
  Histogram ttft_, itl_, e2e_, queue_;
  // Counts of responses by status class index: 0 = other, then 200,400,401,404,405,413,429,
  // 499,500,503,504. 499 (nginx's "client closed request") counts requests whose client left
  // before any answer: none is sent, and they are not server errors.
  static constexpr std::array<int, 11> kStatuses = {200, 400, 401, 404, 405, 413,
                                                    429, 499, 500, 503, 504};
  std::array<std::atomic<int64_t>, kStatuses.size() + 1> http_counts_{};
};

// Appends the admission controller's metrics (engine/admission.h) to a /metrics body:
// predicted wait, admissions, refusals by reason, predicted vs measured waits, the measured
// speeds and the step budget.
void RenderAdmissionMetrics(const AdmissionStats& stats, const EngineOptions& options,
                            const std::string& model_name, std::string* out);

// Appends the HTTP transport's body budget to a /metrics body: request body bytes received and
// not yet taken by a worker, and --max-buffered-body-bytes.
void RenderHttpBodyMetrics(uint64_t buffered_bytes, uint64_t max_bytes,
                           const std::string& model_name, std::string* out);

// Resident set size of this process in bytes (0 if /proc is unavailable).
int64_t ResidentMemoryBytes();

}  // namespace tinyserve
