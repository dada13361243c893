// Samples the server while a level runs: its Prometheus /metrics (tinyserve:* names, which are
// vLLM's under another prefix; where absent vllm:*, sglang:* and llamacpp:* names, so peers fill
// the same columns) and, for a local child process,
// /proc/PID/status. One background thread per sampler; Start/Stop from one thread.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve::bench {

// One observation; a field is -1 when the server did not report it.
struct ServerSample {
  double t_s = 0;  // Seconds since Start().
  double rss_bytes = -1;
  double kv_usage = -1;  // Fraction of KV-cache blocks in use, 0..1.
  double running = -1;
  double waiting = -1;
  double preemptions_total = -1;  // A counter: the level's preemptions are last - first.
  // tinyserve's admission counters: summed predicted and measured waits of started requests.
  double predicted_wait_sum_s = -1, actual_wait_sum_s = -1, wait_count = -1;
};

// Metric name -> value, summed over label sets; comments and malformed lines are skipped.
std::map<std::string, double> ParsePrometheusText(std::string_view text);
// Fills the fields of a sample from parsed metrics (tinyserve: first, then vllm:, sglang:,
// llamacpp:).
void FillFromMetrics(const std::map<std::string, double>& metrics, ServerSample* sample);
// Resident memory of a local process from /proc/PID/status (VmRSS).
[[nodiscard]] StatusOr<double> ReadProcessRssBytes(int pid);

class ServerSampler {
 public:
  // `metrics_url`: full URL of the metrics page ("http://127.0.0.1:8000/metrics") or empty;
  // `pid`: a local server process to read /proc from, or 0.
  ServerSampler(std::string metrics_url, int pid, double interval_s);
  ServerSampler(const ServerSampler&) = delete;
  ServerSampler& operator=(const ServerSampler&) = delete;
  ~ServerSampler();

  void Start();
  // Stops the thread (after one last sample) and returns every sample in time order.
  std::vector<ServerSample> Stop();

 private:
  ServerSample TakeSample(double t_s);

  const std::string metrics_url_;
  const int pid_;
  const double interval_s_;
  std::atomic<bool> stop_{false};
  Mutex mu_;
  std::vector<ServerSample> samples_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace tinyserve::bench
