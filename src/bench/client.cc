#include "bench/client.h"

#include <algorithm>
#include <chrono>

#include "bench/json_schema.h"

namespace tinyserve::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::chrono::microseconds Micros(double seconds) {
  return std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, seconds) * 1e6));
}

constexpr size_t kMaxBody = 1 << 20;

// What the reader learned from the stream so far.
struct StreamState {
  bool done = false;  // Saw "data: [DONE]".
  std::string cause;  // bad_chunk or stream_error, set once.
  std::string detail;
  Clock::time_point last_content;
};

}  // namespace

StatusOr<BaseUrl> ParseBaseUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return InvalidArgumentError("base URL \"{}\" needs a scheme (http://...)", url);
  }
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return InvalidArgumentError("base URL \"{}\": scheme must be http or https", url);
  }
  size_t path_start = url.find('/', scheme_end + 3);
  BaseUrl out;
  out.scheme_host_port = url.substr(0, path_start);
  if (out.scheme_host_port.size() <= scheme_end + 3) {
    return InvalidArgumentError("base URL \"{}\" has no host", url);
  }
  if (path_start != std::string::npos) out.path_prefix = url.substr(path_start);
  while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  return out;
}

json BuildRequestBody(const ClientConfig& config, const TaskType& task, const Sample& sample) {
  json body;
  body["model"] = config.model;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["max_tokens"] = task.max_tokens;
  body["temperature"] = task.temperature;
  if (config.endpoint == Endpoint::kChat) {
    json messages = json::array();
    if (!task.system.empty()) messages.push_back({{"role", "system"}, {"content", task.system}});
    messages.push_back({{"role", "user"}, {"content", sample.prompt}});
    body["messages"] = std::move(messages);
  } else {
    body["prompt"] = task.system.empty() ? sample.prompt : task.system + "\n\n" + sample.prompt;
  }
  if (task.check == AnswerCheck::kJsonSchema) {
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema",
         {{"name", task.name + "_" + sample.id}, {"schema", sample.schema}, {"strict", true}}}};
  }
  return body;
}

std::string SseParser::DataOf(const std::string& event) {
  std::string data;
  size_t pos = 0;
  while (pos <= event.size()) {
    size_t end = event.find('\n', pos);
    if (end == std::string::npos) end = event.size();
    std::string_view line(event.data() + pos, end - pos);
    if (line.substr(0, 5) == "data:") {
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (!data.empty()) data += '\n';
      data.append(line);
    }
    pos = end + 1;
  }
  return data;
}

StatusOr<std::unique_ptr<OpenAIClient>> OpenAIClient::Create(const ClientConfig& config) {
  if (config.timeout_s <= 0) return InvalidArgumentError("timeout must be positive");
  TS_ASSIGN_OR_RETURN(BaseUrl url, ParseBaseUrl(config.base_url));
  return std::unique_ptr<OpenAIClient>(new OpenAIClient(config, url));
}

OpenAIClient::OpenAIClient(const ClientConfig& config, const BaseUrl& url)
    : config_(config),
      path_(url.path_prefix +
            (config.endpoint == Endpoint::kChat ? "/chat/completions" : "/completions")),
      http_(url.scheme_host_port) {
  http_.set_keep_alive(true);
  // Without it, Nagle's algorithm and delayed ACKs add ~40 ms to small request writes.
  http_.set_tcp_nodelay(true);
  auto limit = Micros(config.timeout_s);
  http_.set_connection_timeout(limit);
  http_.set_read_timeout(limit);
  http_.set_write_timeout(limit);
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

OpenAIClient::~OpenAIClient() {
  {
    MutexLock lock(&mu_);
    shutdown_ = true;
  }
  cv_.NotifyAll();
  watchdog_.join();
}

void OpenAIClient::WatchdogLoop() {
  MutexLock lock(&mu_);
  while (!shutdown_) {
    if (!deadline_) {
      cv_.Wait(&mu_);
      continue;
    }
    auto deadline = *deadline_;
    if (Clock::now() < deadline) {
      cv_.WaitUntil(&mu_, deadline);
      continue;  // Re-check: the request may have ended or been re-armed.
    }
    fired_ = true;
    deadline_.reset();
    // Under mu_, so Disarm (and with it the next request) waits until the socket is shut.
    http_.stop();
  }
}

void OpenAIClient::Arm(Clock::time_point deadline) {
  {
    MutexLock lock(&mu_);
    deadline_ = deadline;
    fired_ = false;
  }
  cv_.NotifyAll();
}

bool OpenAIClient::Disarm() {
  MutexLock lock(&mu_);
  deadline_.reset();
  return fired_;
}

RequestOutcome OpenAIClient::Send(const TaskType& task, const Sample& sample) {
  RequestOutcome out;
  const bool chat = config_.endpoint == Endpoint::kChat;
  StreamState state;
  SseParser parser;
  std::string error_body;
  bool event_stream = true;

  httplib::Request req;
  req.method = "POST";
  req.path = path_;
  req.body = BuildRequestBody(config_, task, sample).dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!config_.api_key.empty()) req.set_header("Authorization", "Bearer " + config_.api_key);
  // The client's deadline, so a deadline-aware server refuses at once what cannot finish.
  req.set_header("X-Request-Timeout", fmt::format("{:g}", config_.timeout_s));

  const Clock::time_point t0 = Clock::now();
  const Clock::time_point deadline = t0 + Micros(config_.timeout_s);

  auto on_event = [&](std::string_view data) {
    if (!state.cause.empty()) return;
    if (data == "[DONE]") {
      state.done = true;
      return;
    }
    json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      state.cause = kCauseBadChunk;
      state.detail = fmt::format("unparseable event: {}", std::string(data.substr(0, 80)));
      return;
    }
    if (j.contains("error")) {
      state.cause = kCauseStreamError;
      state.detail = j["error"].dump().substr(0, 200);
      return;
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      out.usage_reported = true;
      out.output_tokens = u->value("completion_tokens", 0);
      out.prompt_tokens = u->value("prompt_tokens", -1);
    }
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array() || choices->empty()) return;
    const json& c = (*choices)[0];
    std::string content;
    if (chat) {
      if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
        if (auto t = d->find("content"); t != d->end() && t->is_string()) content = *t;
      }
    } else if (auto t = c.find("text"); t != c.end() && t->is_string()) {
      content = *t;
    }
    if (auto f = c.find("finish_reason"); f != c.end() && f->is_string()) out.finish_reason = *f;
    if (content.empty()) return;
    Clock::time_point now = Clock::now();
    if (out.ttft_s < 0) {
      out.ttft_s = Seconds(now - t0);
    } else {
      out.itl_s.push_back(Seconds(now - state.last_content));
    }
    state.last_content = now;
    out.text += content;
    if (!out.usage_reported) ++out.output_tokens;
  };

  req.response_handler = [&](const httplib::Response& r) {
    out.http_status = r.status;
    std::string type = r.get_header_value("Content-Type");
    event_stream = type.find("text/event-stream") != std::string::npos;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (Clock::now() >= deadline) return false;
    if (out.http_status != 200 || !event_stream) {
      // Kept whole up to a bound: it is either an error message or a non-streamed answer.
      if (error_body.size() < kMaxBody)
        error_body.append(data, std::min(n, kMaxBody - error_body.size()));
      return true;
    }
    std::string bytes(data, n);
    bytes.erase(std::remove(bytes.begin(), bytes.end(), '\r'), bytes.end());
    parser.Feed(bytes, on_event);
    return state.cause.empty();
  };

  httplib::Result res = http_.send(req);
  const bool fired = Disarm();
  out.e2e_s = Seconds(Clock::now() - t0);

  if (res && out.http_status == 200 && !event_stream) {
    // A server that ignores stream=true answers with one JSON body; accept it as one chunk.
    json j = json::parse(error_body.empty() ? res->body : error_body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("choices") && j["choices"].is_array() &&
        !j["choices"].empty()) {
      const json& c = j["choices"][0];
      if (chat && c.contains("message") && c["message"].value("content", json()).is_string()) {
        out.text = c["message"]["content"];
      } else if (!chat && c.value("text", json()).is_string()) {
        out.text = c["text"];
      }
      out.finish_reason = c.value("finish_reason", json()).is_string() ? c["finish_reason"] : "";
      out.ttft_s = out.e2e_s;
      out.output_tokens = j.contains("usage") ? j["usage"].value("completion_tokens", 0) : 1;
      out.usage_reported = j.contains("usage");
      state.done = true;
    } else {
      state.cause = kCauseBadChunk;
      state.detail = "response is neither an event stream nor a completion object";
    }
  }

  if (fired || out.e2e_s > config_.timeout_s) {
    out.cause = kCauseTimeout;
    out.detail = fmt::format("no complete answer within {} s", config_.timeout_s);
  } else if (out.http_status == 0) {
    out.cause = kCauseConnection;
    out.detail = httplib::to_string(res.error());
  } else if (out.http_status != 200) {
    out.cause = fmt::format("http_{}", out.http_status);
    std::string body = error_body.empty() && res ? res->body : error_body;
    out.detail = body.substr(0, 200);
  } else if (!state.cause.empty()) {
    out.cause = state.cause;
    out.detail = state.detail;
  } else if (!state.done && out.finish_reason.empty()) {
    out.cause = kCauseTruncated;
    out.detail = res ? "stream ended without [DONE] or finish_reason"
                     : "stream broke: " + httplib::to_string(res.error());
  } else if (task.check == AnswerCheck::kJsonSchema) {
    json answer = json::parse(out.text, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded()) {
      out.cause = kCauseInvalidJson;
      out.detail = "answer is not JSON: " + out.text.substr(0, 80);
    } else if (Status st = ValidateJsonSchema(sample.schema, answer); !st.ok()) {
      out.cause = kCauseSchema;
      out.detail = st.message();
    }
  }
  return out;
}

}  // namespace tinyserve::bench
