// For tests only: a local OpenAI-compatible streaming server with scripted misbehaviour (token
// delays, stalls, HTTP errors, cut streams, malformed chunks) and counters of what it saw.
// Start() and Stop() from the test thread; the counters may be read at any time.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace tinyserve::bench {

struct FakeServerConfig {
  enum class Mode { kNormal, kStall, kHttp500, kTruncate, kBadChunk };
  Mode mode = Mode::kNormal;
  int num_tokens = 8;            // Content chunks per answer.
  int first_token_delay_ms = 0;  // Before the first chunk.
  int token_delay_ms = 1;        // Between chunks.
  bool send_usage = true;
  // The answer text for a request body (split over num_tokens chunks); default "t0 t1 ...".
  std::function<std::string(const nlohmann::json& body)> answer;
};

class FakeOpenAIServer {
 public:
  explicit FakeOpenAIServer(FakeServerConfig config) : config_(std::move(config)) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(96); };
    server_.set_tcp_nodelay(true);
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Handle(req, res);
    };
    server_.Post("/v1/chat/completions", handler);
    server_.Post("/v1/completions", handler);
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(fmt::format("# HELP x\ntinyserve:num_requests_running {}\n"
                                  "tinyserve:num_requests_waiting 0\n"
                                  "tinyserve:kv_cache_usage_perc 0.25\n"
                                  "tinyserve:num_preemptions_total {}\n"
                                  "process_resident_memory_bytes 123456789\n",
                                  in_flight_.load(), requests_.load()),
                      "text/plain");
    });
  }
  ~FakeOpenAIServer() { Stop(); }

  // Returns the port it listens on (127.0.0.1).
  int Start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return port_;
  }
  void Stop() {
    stopping_ = true;
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  int max_in_flight() const { return max_in_flight_.load(); }
  int requests() const { return requests_.load(); }
  std::vector<nlohmann::json> bodies() {
    MutexLock lock(&mu_);
    return bodies_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    {
      MutexLock lock(&mu_);
      bodies_.push_back(body);
    }
    ++requests_;
    int now = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    if (config_.mode == FakeServerConfig::Mode::kHttp500) {
      --in_flight_;
      res.status = 500;
      res.set_content(R"({"error":{"message":"boom","type":"server_error"}})", "application/json");
      return;
    }
    const bool chat = req.path.find("chat") != std::string::npos;
    std::string answer = config_.answer ? config_.answer(body) : "";
    if (!config_.answer) {
      for (int i = 0; i < config_.num_tokens; ++i) answer += fmt::format("t{} ", i);
    }
    res.set_chunked_content_provider("text/event-stream",
                                     [this, chat, answer](size_t, httplib::DataSink& sink) {
                                       // Stream releases the in-flight count itself before its last
                                       // write on the normal path: a client may send its next
                                       // request the moment it reads [DONE].
                                       if (!Stream(chat, answer, sink)) --in_flight_;
                                       return true;
                                     });
  }

  void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

  // Returns true if it released the request's in-flight count (the normal, complete path).
  bool Stream(bool chat, const std::string& answer, httplib::DataSink& sink) {
    using Mode = FakeServerConfig::Mode;
    auto event = [&](const nlohmann::json& j) {
      std::string s = "data: " + j.dump() + "\n\n";
      return sink.write(s.data(), s.size());
    };
    auto chunk = [&](const std::string& text, const char* finish) {
      nlohmann::json c =
          chat ? nlohmann::json{{"delta", {{"content", text}}}} : nlohmann::json{{"text", text}};
      c["index"] = 0;
      c["finish_reason"] = finish == nullptr ? nlohmann::json(nullptr) : nlohmann::json(finish);
      return event(
          {{"object", chat ? "chat.completion.chunk" : "text_completion"}, {"choices", {c}}});
    };
    Sleep(config_.first_token_delay_ms);
    if (config_.mode == Mode::kStall) {
      // Send nothing until the client gives up or the server stops (bounded).
      for (int i = 0; i < 1000 && !stopping_; ++i) Sleep(5);
      sink.done();
      return false;
    }
    int n = std::max(1, config_.num_tokens);
    size_t piece = (answer.size() + n - 1) / n;
    for (int i = 0; i < n; ++i) {
      if (i > 0) Sleep(config_.token_delay_ms);
      std::string text = i * piece < answer.size() ? answer.substr(i * piece, piece) : "";
      if (!chunk(text, nullptr)) return false;
      if (config_.mode == Mode::kTruncate && i == n / 2) {
        sink.done();  // Ends the body cleanly, but without finish_reason or [DONE].
        return false;
      }
      if (config_.mode == Mode::kBadChunk && i == n / 2) {
        std::string bad = "data: {not json\n\n";
        sink.write(bad.data(), bad.size());
      }
    }
    chunk("", "stop");
    if (config_.send_usage) {
      event(
          {{"choices", nlohmann::json::array()},
           {"usage", {{"prompt_tokens", 11}, {"completion_tokens", n}, {"total_tokens", 11 + n}}}});
    }
    std::string done = "data: [DONE]\n\n";
    --in_flight_;
    sink.write(done.data(), done.size());
    sink.done();
    return true;
  }

  FakeServerConfig config_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> requests_{0};
  Mutex mu_;
  std::vector<nlohmann::json> bodies_ GUARDED_BY(mu_);
};

}  // namespace tinyserve::bench
