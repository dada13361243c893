// The OpenAI-compatible HTTP front end: routes, API-key check, size and time limits, streaming
// (SSE) and non-streaming responses, client-disconnect handling, /metrics, graceful shutdown.
// HTTP worker threads parse and validate requests, submit them to the engine and relay its
// events; they never touch engine state. Serve() blocks the calling thread; Shutdown() may be
// called from any other thread (e.g. a signal watcher).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include "engine/engine.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "structured/compiler.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace httplib {
class Server;
}

namespace tinyserve {

class Tokenizer;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port
  std::string api_key;  // empty: no authentication
  std::string served_model_name;
  std::string model_path;  // reported by /v1/models
  uint64_t max_request_bytes = 4 << 20;
  double request_timeout_s = 600;  // a request still running after this is aborted
  int read_timeout_s = 30;         // a client must send its request within this
  int http_threads = 0;            // 0: max_num_seqs + max_queue_len + 16
  // Seconds between keep-alive writes while a request waits: how fast a vanished client is
  // noticed (writes are the only way to detect it).
  double heartbeat_s = 1.0;
  // Compiled structured-output grammars kept (LRU).
  size_t grammar_cache_size = 256;
};

class ApiServer {
 public:
  ApiServer(Engine* engine, std::shared_ptr<const Tokenizer> tokenizer, ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket. Errors: address in use, bad host.
  [[nodiscard]] Status Bind();
  // The bound port (after Bind).
  int port() const { return port_; }
  // Serves until Shutdown; returns when the listener has stopped.
  void Serve();
  // Refuses new requests (503), lets in-flight ones finish for up to `grace`, aborts the rest,
  // then stops the listener. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  ServerMetrics& metrics() { return metrics_; }

 private:
  struct Call;
  void InstallRoutes();
  void HandleGenerate(Endpoint endpoint, const std::string& body, void* response);
  void HandleTokenize(const std::string& body, void* response);
  void HandleDetokenize(const std::string& body, void* response);
  void Track(const std::shared_ptr<Call>& call);
  void Untrack(const std::shared_ptr<Call>& call);

  Engine* const engine_;
  const std::shared_ptr<const Tokenizer> tokenizer_;
  const ServerOptions options_;
  ApiContext api_context_;
  // Null when the vocabulary could not be prepared (structured_error_ says why).
  std::unique_ptr<structured::GrammarCache> grammars_;
  std::string structured_error_;
  ServerMetrics metrics_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{0};
  Mutex calls_mu_;
  std::unordered_set<std::shared_ptr<Call>> calls_ GUARDED_BY(calls_mu_);  // in flight
};

}  // namespace tinyserve
