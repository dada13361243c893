#include "bench/server_sampler.h"

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "bench/client.h"

namespace tinyserve::bench {

std::map<std::string, double> ParsePrometheusText(std::string_view text) {
  std::map<std::string, double> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos || name_end == 0) continue;
    std::string name = line.substr(0, name_end);
    size_t value_start = name_end;
    if (line[name_end] == '{') {
      size_t close = line.find('}', name_end);
      if (close == std::string::npos) continue;
      value_start = close + 1;
    }
    const char* begin = line.c_str() + value_start;
    char* end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin) continue;
    out[name] += v;
  }
  return out;
}

void FillFromMetrics(const std::map<std::string, double>& metrics, ServerSample* sample) {
  auto pick = [&](std::initializer_list<const char*> names, double* field) {
    for (const char* n : names) {
      if (auto it = metrics.find(n); it != metrics.end()) {
        *field = it->second;
        return;
      }
    }
  };
  // tinyserve's names first, then vLLM's (V1, then V0's gpu_ name), SGLang's and llama.cpp's
  // (llama-server --metrics). SGLang's token_usage and llama.cpp's kv_cache_usage_ratio are
  // fractions of the KV cache, like vLLM's _perc gauges; llama.cpp calls its queue "deferred".
  pick({"tinyserve:kv_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
        "sglang:token_usage", "llamacpp:kv_cache_usage_ratio"},
       &sample->kv_usage);
  pick({"tinyserve:num_requests_running", "vllm:num_requests_running", "sglang:num_running_reqs",
        "llamacpp:requests_processing"},
       &sample->running);
  pick({"tinyserve:num_requests_waiting", "vllm:num_requests_waiting", "sglang:num_queue_reqs",
        "llamacpp:requests_deferred"},
       &sample->waiting);
  // SGLang's num_retracted_reqs is a gauge reset at each publish, not a counter: not read.
  pick({"tinyserve:num_preemptions_total", "vllm:num_preemptions_total"},
       &sample->preemptions_total);
  if (sample->rss_bytes < 0) pick({"process_resident_memory_bytes"}, &sample->rss_bytes);
  pick({"tinyserve:admission_predicted_wait_seconds_sum"}, &sample->predicted_wait_sum_s);
  pick({"tinyserve:admission_actual_wait_seconds_sum"}, &sample->actual_wait_sum_s);
  pick({"tinyserve:admission_actual_wait_seconds_count"}, &sample->wait_count);
}

StatusOr<double> ReadProcessRssBytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return NotFoundError("no process {}", pid);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024.0;
  }
  return NotFoundError("process {} reports no VmRSS", pid);
}

ServerSampler::ServerSampler(std::string metrics_url, int pid, double interval_s)
    : metrics_url_(std::move(metrics_url)), pid_(pid), interval_s_(interval_s) {}

ServerSampler::~ServerSampler() { Stop(); }

ServerSample ServerSampler::TakeSample(double t_s) {
  ServerSample s;
  s.t_s = t_s;
  if (pid_ > 0) {
    if (StatusOr<double> rss = ReadProcessRssBytes(pid_); rss.ok()) s.rss_bytes = *rss;
  }
  if (!metrics_url_.empty()) {
    StatusOr<BaseUrl> url = ParseBaseUrl(metrics_url_);
    if (url.ok()) {
      httplib::Client http(url->scheme_host_port);
      auto limit = std::chrono::milliseconds(static_cast<int64_t>(interval_s_ * 1000) + 500);
      http.set_connection_timeout(limit);
      http.set_read_timeout(limit);
      if (auto res = http.Get(url->path_prefix.empty() ? "/" : url->path_prefix);
          res && res->status == 200) {
        FillFromMetrics(ParsePrometheusText(res->body), &s);
      }
    }
  }
  return s;
}

void ServerSampler::Start() {
  stop_ = false;
  auto t0 = std::chrono::steady_clock::now();
  thread_ = std::thread([this, t0] {
    auto since = [t0] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto next = t0;
    while (!stop_) {
      ServerSample s = TakeSample(since());
      {
        MutexLock lock(&mu_);
        samples_.push_back(s);
      }
      next += std::chrono::microseconds(static_cast<int64_t>(interval_s_ * 1e6));
      // Sleep in short steps so Stop() is prompt.
      while (!stop_ && std::chrono::steady_clock::now() < next) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    ServerSample last = TakeSample(since());
    MutexLock lock(&mu_);
    samples_.push_back(last);
  });
}

std::vector<ServerSample> ServerSampler::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  MutexLock lock(&mu_);
  return samples_;
}

}  // namespace tinyserve::bench
