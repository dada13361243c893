// A streaming OpenAI client for the bench: sends one chat or completions request with
// stream=true, reads the server-sent events, and measures time to first token, the gaps between
// tokens, end-to-end latency and token counts; it classifies any failure by cause. Each user
// thread owns one OpenAIClient (one keep-alive connection); an instance is not shareable.
#pragma once

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/workload.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve::bench {

enum class Endpoint { kChat, kCompletions };

struct BaseUrl {
  std::string scheme_host_port;  // "http://127.0.0.1:8000"
  std::string path_prefix;       // "/v1" (no trailing slash; may be empty)
};
// Splits "http://host:port/v1"; the scheme must be http or https.
[[nodiscard]] StatusOr<BaseUrl> ParseBaseUrl(const std::string& url);

struct ClientConfig {
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string api_key;  // Sent as "Authorization: Bearer KEY" when set.
  std::string model;
  Endpoint endpoint = Endpoint::kChat;
  double timeout_s = 30;  // Hard limit per request, connect to last byte.
};

// Failure causes, as they appear in reports (plus "http_<status>").
inline constexpr std::string_view kCauseTimeout = "timeout";
inline constexpr std::string_view kCauseConnection = "connection";
inline constexpr std::string_view kCauseTruncated = "truncated_stream";
inline constexpr std::string_view kCauseStreamError = "stream_error";
inline constexpr std::string_view kCauseBadChunk = "bad_chunk";
inline constexpr std::string_view kCauseInvalidJson = "invalid_json";
inline constexpr std::string_view kCauseSchema = "schema_violation";
// Refusals: the server declined at once (over capacity or a client over its share).
inline bool IsRefusal(std::string_view cause) { return cause == "http_503" || cause == "http_429"; }

struct RequestOutcome {
  std::string cause;   // Empty when the request succeeded.
  std::string detail;  // Human-readable reason for a failure.
  int http_status = 0;
  double ttft_s = -1;         // Send to first non-empty content; -1 if none came.
  double e2e_s = 0;           // Send to end of the response (or to the failure).
  std::vector<double> itl_s;  // Gaps between successive content chunks.
  int output_tokens = 0;      // From usage when reported, else the content chunk count.
  int prompt_tokens = -1;     // From usage; -1 when not reported.
  bool usage_reported = false;
  std::string finish_reason;
  std::string text;

  bool ok() const { return cause.empty(); }
};

// The JSON body for one request: stream with usage, max_tokens and temperature from the task,
// and for schema-checked tasks response_format {type: json_schema, json_schema: {name, schema,
// strict: true}}. Chat sends the system and user messages; completions sends them as one prompt.
nlohmann::json BuildRequestBody(const ClientConfig& config, const TaskType& task,
                                const Sample& sample);

// Splits a byte stream into server-sent events and hands over each event's data field.
class SseParser {
 public:
  // Appends bytes; calls on_data(data) for every event completed by them.
  template <typename Fn>
  void Feed(std::string_view bytes, Fn&& on_data) {
    buffer_.append(bytes);
    for (;;) {
      size_t end = buffer_.find("\n\n");
      if (end == std::string::npos) return;
      std::string event = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      std::string data = DataOf(event);
      if (!data.empty()) on_data(std::string_view(data));
    }
  }
  // Bytes received after the last complete event.
  const std::string& pending() const { return buffer_; }

 private:
  static std::string DataOf(const std::string& event);
  std::string buffer_;  // Carriage returns are kept out of it by Feed's caller.
};

class OpenAIClient {
 public:
  [[nodiscard]] static StatusOr<std::unique_ptr<OpenAIClient>> Create(const ClientConfig& config);
  OpenAIClient(const OpenAIClient&) = delete;
  OpenAIClient& operator=(const OpenAIClient&) = delete;
  ~OpenAIClient();

  // Sends one request and waits for its end, at most config.timeout_s. Never throws; every
  // failure is reported in the outcome.
  RequestOutcome Send(const TaskType& task, const Sample& sample);

 private:
  OpenAIClient(const ClientConfig& config, const BaseUrl& url);
  void WatchdogLoop();
  void Arm(std::chrono::steady_clock::time_point deadline);
  // Disarms; returns true when the deadline fired during the request.
  bool Disarm();

  ClientConfig config_;
  std::string path_;
  httplib::Client http_;

  // The watchdog stops the connection at the deadline, since a stalled server would otherwise
  // hold a blocking read for the whole socket timeout again after every byte.
  Mutex mu_;
  CondVar cv_;
  std::optional<std::chrono::steady_clock::time_point> deadline_ GUARDED_BY(mu_);
  bool fired_ GUARDED_BY(mu_) = false;
  bool shutdown_ GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace tinyserve::bench
