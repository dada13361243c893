// The OpenAI-compatible HTTP front end: routes, API-key check, Host/Origin/Content-Type checks
// (CSRF and DNS rebinding), streaming (SSE) and non-streaming responses, client-disconnect
// handling, /metrics, graceful shutdown. The transport (http_transport.h) reads requests under
// byte limits and deadlines; its worker threads run the route handlers here, which parse and
// validate requests, submit them to the engine and relay its events; they never touch engine
// state. Serve() blocks the calling thread; Shutdown() may be called from any other thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "engine/engine.h"
#include "server/http_transport.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/request_budget.h"
#include "structured/compiler.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve {

class Tokenizer;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;      // 0 = any free port
  std::string api_key;  // empty: no authentication
  std::string served_model_name;
  uint64_t max_request_bytes = 4 << 20;
  uint64_t max_header_bytes = 16 << 10;
  // A request still running after this is aborted; also the deadline admission plans with
  // when the request states none (`timeout` field, X-Request-Timeout header), and their cap.
  double request_timeout_s = 600;
  // > 0: refuse (503) a request whose predicted wait for its first step is longer.
  double max_queue_delay_s = 0;
  double read_timeout_s = 30;       // a client must send its whole request within this
  double header_timeout_s = 10;     // ... and its request head within this
  double keep_alive_timeout_s = 5;  // idle keep-alive connections are closed after this
  double write_timeout_s = 30;      // a client that reads nothing this long is dropped
  int max_connections = 1024;
  int max_connections_per_client = -1;       // per peer address; 0: no cap; -1: max_connections / 4
  std::vector<std::string> trusted_proxies;  // peer addresses exempt from that cap
  uint64_t max_buffered_body_bytes =
      0;                 // bodies being received, together; 0: 16 x max_request_bytes
  int http_threads = 0;  // 0: max_num_seqs + max_queue_len + 16
  // Seconds between SSE comment lines while a stream is quiet (keeps proxies from timing out;
  // disconnects are noticed by polling the socket, not by these writes).
  double heartbeat_s = 1.0;
  // /metrics answers without the API key.
  bool public_metrics = false;
  // Without an API key, Host headers accepted besides IP literals and localhost ("*": any).
  std::vector<std::string> allowed_hosts;
  // Origins whose browser pages may call the API (CORS; "*": any), as ParseAllowedOrigins
  // leaves them. Empty: no preflight is granted and cross-origin requests get 403.
  std::vector<std::string> allowed_origins;
  // "fcfs" (a request's `priority` must be 0) or "priority" (vLLM's --scheduling-policy).
  std::string scheduling_policy = "fcfs";
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
  int port() const { return http_->port(); }
  // Serves until Shutdown; returns when the listener has stopped.
  void Serve();
  // Refuses new requests (503), lets in-flight ones finish for up to `grace`, aborts the rest,
  // then stops the listener. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  ServerMetrics& metrics() { return metrics_; }

 private:
  struct Call;
  void Route(HttpRequest& req, HttpResponder& res);
  // The error a request gets before its route runs (auth, Host, Origin, Content-Type); nullopt
  // when it may proceed. `origin_listed`: its Origin is in --allowed-origins.
  std::optional<ApiError> Screen(const HttpRequest& req, bool origin_listed) const;
  void HandleGenerate(Endpoint endpoint, HttpRequest& req, HttpResponder& res);
  // Deadline-aware admission of a parsed call (engine/admission.h). False: refused, and the
  // 503/429 with Retry-After was sent.
  bool Admit(const std::shared_ptr<Call>& call, const RequestBudget& budget, HttpResponder& res);
  // Holds the response head until the call's first event, so that work shed from the queue
  // still gets a 503 (which a balancer may retry elsewhere). False: answered (shed) or the
  // client left.
  bool AwaitStart(const std::shared_ptr<Call>& call, HttpResponder& res);
  void HandleTokenize(HttpRequest& req, HttpResponder& res);
  void HandleDetokenize(HttpRequest& req, HttpResponder& res);
  // /v1/messages/count_tokens: the prompt length a Messages request would have.
  void HandleCountTokens(HttpRequest& req, HttpResponder& res);
  void HandleModels(HttpResponder& res);
  void HandleModel(std::string_view encoded_id, HttpResponder& res);
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
  std::unique_ptr<HttpServer> http_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> abort_all_{false};  // set when the shutdown grace has run out
  std::atomic<uint64_t> next_id_{0};
  Mutex calls_mu_;
  std::unordered_set<std::shared_ptr<Call>> calls_ GUARDED_BY(calls_mu_);  // in flight
};

}  // namespace tinyserve
