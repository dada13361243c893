// tinyserve's own HTTP/1.1 server transport (replaces cpp-httplib, whose Debian 12 version
// cannot bound chunked bodies, header sizes or slow senders). One I/O thread owns every
// connection while it is idle or sending its request: it reads with epoll under whole-operation
// deadlines (idle keep-alive, request head, whole request) and the byte limits of HttpLimits,
// so slow or idle clients hold no worker thread. A complete request is handed to a worker
// thread, which runs the handler and writes the response itself (blocking, under a write
// deadline); the connection then goes back to the I/O thread for the next request.
// Memory while reading is bounded globally: request bodies being received or waiting for a
// worker share a byte budget (divided so that one client cannot spend it all: body_budget.h),
// and one client address may hold only so many connections; both refusals are a 503 with
// Retry-After. So the I/O thread holds at most that budget plus the request heads, and the
// workers one body each.
// Thread-safety: Bind/Serve from one thread; Stop from any thread; HttpResponder belongs to the
// worker that runs the handler.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http_parser.h"
#include "util/status.h"

namespace tinyserve {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port
  int worker_threads = 16;
  HttpLimits limits;
  double keep_alive_timeout_s = 5;  // an idle connection is closed after this
  double header_timeout_s = 10;     // the request head must arrive within this of its first byte
  double read_timeout_s = 30;       // the whole request must arrive within this of its first byte
  double write_timeout_s = 30;      // a response write that makes no progress this long fails
  int max_connections = 1024;       // further connections are closed at once
  // Connections one peer address may hold at once (0: no cap, and no per-client share of the
  // body budget either); the next gets 503.
  int max_connections_per_client = 64;
  // Peer addresses exempt from that cap (reverse proxies, which carry many clients).
  std::vector<std::string> trusted_proxies;
  // Decoded body bytes of all requests being received or waiting for a worker, together; a request
  // whose bytes would pass it, or the share its body may use (BodyBudget: large bodies leave a
  // reserve to small ones, one client address half of it), gets 503. 0: 16 x
  // limits.max_body_bytes.
  uint64_t max_buffered_body_bytes = 0;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The status recorded (never sent) for a request whose client left before its response started:
// nginx's 499 "Client Closed Request", the code its logs and Prometheus exporters count, so that
// clients giving up are not mistaken for server errors (500).
inline constexpr int kStatusClientClosedRequest = 499;

// "OK", "Not Found", ... for a status line ("Unknown" for codes it does not name).
std::string_view HttpReasonPhrase(int status);

// Writes one response on a worker thread (http_responder.cc).
class HttpResponder {
 public:
  // on_status sees the response's status before its first byte is sent, so a client that has
  // read its answer finds it counted (e.g. in /metrics) already. keep_alive_timeout_s: how long
  // the connection may idle before the server closes it, announced in a Keep-Alive header.
  HttpResponder(int fd, const HttpRequest& request, double write_timeout_s,
                double keep_alive_timeout_s, std::function<void(int status)> on_status = {})
      : fd_(fd),
        request_(request),
        write_timeout_s_(write_timeout_s),
        keep_alive_timeout_s_(keep_alive_timeout_s),
        on_status_(std::move(on_status)) {}

  // A complete response with Content-Length. False when the client is gone.
  bool Send(int status, std::string_view content_type, std::string_view body,
            const HttpHeaders& headers = {});
  // Starts a streamed response (chunked; close-delimited for HTTP/1.0 clients).
  bool BeginStream(int status, std::string_view content_type, const HttpHeaders& headers = {});
  bool Write(std::string_view data);
  bool EndStream();
  // True once the client closed or reset its side of the connection (a half-close counts, as
  // for nginx: a client waiting for its answer does not close its side). Cheap (one poll).
  // Once it has returned true, a handler that returns without a response gets none: the
  // transport records kStatusClientClosedRequest and closes the connection.
  bool ClientGone();
  bool client_gone() const { return client_gone_; }

  // Headers added to whichever response follows (e.g. CORS headers for the request's origin).
  void AddHeaders(const HttpHeaders& headers) {
    extra_.insert(extra_.end(), headers.begin(), headers.end());
  }

  int status() const { return status_; }
  bool started() const { return started_; }
  // The connection may carry another request.
  bool reusable() const { return complete_ && ok_ && keep_alive_; }

 private:
  bool WriteAll(std::string_view data);
  std::string Head(int status, std::string_view content_type, const HttpHeaders& headers,
                   std::string_view framing);

  const int fd_;
  const HttpRequest& request_;
  const double write_timeout_s_;
  const double keep_alive_timeout_s_;
  const std::function<void(int status)> on_status_;
  HttpHeaders extra_;
  int status_ = 0;
  bool started_ = false;
  bool complete_ = false;
  bool ok_ = true;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool client_gone_ = false;
};

class HttpServer {
 public:
  using Handler = std::function<void(HttpRequest&, HttpResponder&)>;  // may consume the body
  // The body sent for an error the transport answers itself (bad framing, limits, timeouts).
  using ErrorBody = std::function<std::string(int status, const std::string& message)>;
  // Called with every response's status, before the response is sent.
  using Logger = std::function<void(int status)>;

  HttpServer(HttpServerOptions options, Handler handler, ErrorBody error_body, Logger logger);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Opens the listening socket. Errors: address in use, bad host.
  [[nodiscard]] Status Bind();
  int port() const { return port_; }
  // Runs the I/O loop until Stop; returns once every worker has finished.
  void Serve();
  // Idempotent; any thread.
  void Stop();
  // Body bytes being received or queued for a worker now, and the budget they share. Any thread.
  uint64_t buffered_body_bytes() const;
  uint64_t max_buffered_body_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace tinyserve
