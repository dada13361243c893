#include "server/http_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "server/body_budget.h"
#include "util/logging.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;

double ElapsedSeconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Best-effort, non-blocking send of a small message (errors from the I/O thread).
void SendNow(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// The numeric address of a peer; an IPv4-mapped IPv6 address is written as IPv4, so that one
// client has one name whichever socket family accepted it.
std::string PeerName(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, text,
                sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    const in6_addr& a6 = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      ::inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text));
    } else {
      ::inet_ntop(AF_INET6, &a6, text, sizeof(text));
    }
  }
  return text;
}

// The same name for an address given as text; "" when it is not an IP address.
std::string NormalizeAddress(const std::string& text) {
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    addr.ss_family = AF_INET;
  } else if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    addr.ss_family = AF_INET6;
  } else {
    return "";
  }
  return PeerName(addr);
}

}  // namespace

// ---- HttpServer ----

struct Connection {
  int fd = -1;
  std::string peer;     // the client's address ("" when exempt from the per-client limits)
  std::string address;  // the peer's address, always
  bool trusted_proxy = false;
  uint64_t body_bytes = 0;  // charged to the global body budget while the I/O thread reads
  HttpRequestParser parser;
  std::string leftover;  // bytes of the next (pipelined) request
  Clock::time_point idle_since;
  Clock::time_point first_byte;
  bool closing = false;  // answered an error: discard input until EOF or the linger deadline
  bool keep = false;     // set by the worker: the connection may carry another request
  explicit Connection(int f, HttpLimits limits) : fd(f), parser(limits) {}
};

struct HttpServer::Impl {
  HttpServerOptions options;
  Handler handler;
  ErrorBody error_body;
  Logger logger;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::unordered_map<int, std::unique_ptr<Connection>> idle;  // I/O thread only
  std::atomic<int> connections{0};
  bool accept_paused = false;  // I/O thread only
  // Per-client cap: I/O thread only (connections are accepted and closed there).
  std::unordered_set<std::string> trusted;          // normalized addresses
  std::unordered_map<std::string, int> per_client;  // open connections by peer address
  // Bodies being received or queued for a worker (the sum of Connection::body_bytes). The I/O
  // thread charges; a worker releases when it takes a request.
  std::unique_ptr<BodyBudget> bodies;
  Clock::time_point last_refusal_log{};
  int refusals_unlogged = 0;

  // A worker waiting for a request. Workers are woken last-idle-first: with hundreds of workers
  // (one per admitted request) and far fewer busy, round-robin wake-ups (a shared condition
  // variable's order) would run every thread in turn, and each keeps its own malloc cache and
  // stack pages resident; LIFO keeps the work on the few recently used ones.
  struct IdleWorker {
    std::condition_variable cv;
    bool woken = false;  // guarded by mu
  };
  std::mutex mu;
  std::vector<IdleWorker*> idle_workers;              // guarded by mu; the back is woken first
  std::deque<std::unique_ptr<Connection>> work;       // guarded by mu
  std::vector<std::unique_ptr<Connection>> returned;  // guarded by mu
  std::vector<std::thread> workers;

  void Close(std::unique_ptr<Connection> c) {
    ReleaseBody(c.get());
    if (!c->peer.empty()) {
      auto it = per_client.find(c->peer);
      if (--it->second == 0) per_client.erase(it);
    }
    ::close(c->fd);
    --connections;
  }

  void ReleaseBody(Connection* c) {
    bodies->Release(c->peer, c->body_bytes);
    c->body_bytes = 0;
  }

  // Charges the body bytes received since the last call; false when the budget (or the share
  // of it this body may use) is spent.
  bool ChargeBody(Connection* c) {
    const uint64_t now = c->parser.request().body.size();
    if (now <= c->body_bytes) return true;
    if (!bodies->Charge(c->peer, c->body_bytes, now - c->body_bytes)) return false;
    c->body_bytes = now;
    return true;
  }

  // Refusals (per-client cap) are logged at most once a second, with how many were not.
  void LogRefusal(const std::string& peer, int open) {
    ++refusals_unlogged;
    const auto now = Clock::now();
    if (ElapsedSeconds(now - last_refusal_log) < 1) return;
    TS_LOG_WARNING(
        "refused {} connection(s): client {} holds {} (--max-connections-per-client); behind a "
        "reverse proxy, name it in --trusted-proxies",
        refusals_unlogged, peer, open);
    refusals_unlogged = 0;
    last_refusal_log = now;
  }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof(one));
  }

  void Watch(Connection* c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = c->fd;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
  }

  // Answers an error the transport found itself and starts a lingering close (the client may
  // still be sending; closing at once would reset the connection before it reads the answer).
  void Reject(Connection* c, int status, const std::string& message) {
    if (logger) logger(status);
    SendError(c->fd, status, message);
    ::shutdown(c->fd, SHUT_WR);
    ReleaseBody(c);
    std::string().swap(c->parser.request().body);  // its memory is no longer charged
    c->closing = true;
    c->first_byte = Clock::now();
  }

  void SendError(int fd, int status, const std::string& message) {
    const std::string body = error_body(status, message);
    SendNow(fd, fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n"
                            "Content-Length: {}\r\n{}Connection: close\r\n\r\n{}",
                            status, HttpReasonPhrase(status), body.size(),
                            status == 503 ? "Retry-After: 1\r\n" : "", body));
  }

  // Feeds bytes to the connection's parser. Returns the connection when a request is complete
  // (it then leaves the I/O thread), or null while it stays here.
  bool Consume(Connection* c, std::string_view data) {
    size_t pos = 0;
    while (true) {
      const bool was_started = c->parser.started();
      pos += c->parser.Feed(data.substr(pos));
      if (!was_started && c->parser.started()) c->first_byte = Clock::now();
      if (!ChargeBody(c)) {
        Reject(c, 503, "the server is receiving too many request bodies; retry shortly");
        return false;
      }
      switch (c->parser.state()) {
        case HttpRequestParser::State::kHeadersDone:
          if (c->parser.request().expect_continue) SendNow(c->fd, "HTTP/1.1 100 Continue\r\n\r\n");
          continue;
        case HttpRequestParser::State::kComplete:
          c->leftover.assign(data.substr(pos));
          return true;
        case HttpRequestParser::State::kError:
          Reject(c, c->parser.error_status(), c->parser.error_message());
          return false;
        case HttpRequestParser::State::kNeedMore:
          return false;
      }
    }
  }

  void Dispatch(int fd) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    auto it = idle.find(fd);
    std::unique_ptr<Connection> c = std::move(it->second);
    idle.erase(it);
    std::lock_guard<std::mutex> lock(mu);
    work.push_back(std::move(c));
    if (!idle_workers.empty()) {
      IdleWorker* w = idle_workers.back();
      idle_workers.pop_back();
      w->woken = true;
      w->cv.notify_one();
    }
  }

  // Wakes every idle worker to see `stopping`.
  void WakeAllWorkers() {
    std::lock_guard<std::mutex> lock(mu);
    for (IdleWorker* w : idle_workers) w->cv.notify_one();
  }

  void OnReadable(int fd) {
    auto it = idle.find(fd);
    if (it == idle.end()) return;
    Connection* c = it->second.get();
    char buf[64 << 10];
    while (true) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        std::unique_ptr<Connection> owned = std::move(it->second);
        idle.erase(it);
        Close(std::move(owned));
        return;
      }
      if (c->closing) continue;  // discarding until EOF
      if (Consume(c, std::string_view(buf, static_cast<size_t>(n)))) return Dispatch(fd);
    }
  }

  void TakeReturned() {
    std::vector<std::unique_ptr<Connection>> back;
    {
      std::lock_guard<std::mutex> lock(mu);
      back.swap(returned);
    }
    for (auto& c : back) {
      if (!c->keep || stopping) {
        Close(std::move(c));
        continue;
      }
      c->parser.Reset();
      c->idle_since = Clock::now();
      const int fd = c->fd;
      Connection* raw = c.get();
      std::string pipelined = std::move(c->leftover);
      c->leftover.clear();
      idle.emplace(fd, std::move(c));
      if (!pipelined.empty() && Consume(raw, pipelined)) {
        Dispatch(fd);
        continue;
      }
      Watch(raw);
    }
  }

  void Accept() {
    while (true) {
      sockaddr_storage addr{};
      socklen_t addr_len = sizeof(addr);
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the listener would stay readable and spin this thread. Stop
          // accepting for a moment (Sweep resumes); pending clients wait in the backlog.
          ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
          accept_paused = true;
        }
        return;
      }
      if (connections >= options.max_connections) {
        ::close(fd);
        continue;
      }
      std::string address = PeerName(addr);
      const bool trusted_proxy = trusted.count(address) != 0;
      std::string peer;
      if (options.max_connections_per_client > 0 && !trusted_proxy) peer = address;
      if (!peer.empty()) {
        auto it = per_client.find(peer);
        if (it != per_client.end() && it->second >= options.max_connections_per_client) {
          RefuseClient(fd, peer, it->second);
          continue;
        }
        ++per_client[peer];
      }
      ++connections;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Connection>(fd, options.limits);
      c->peer = std::move(peer);
      c->address = std::move(address);
      c->trusted_proxy = trusted_proxy;
      c->idle_since = Clock::now();
      Watch(c.get());
      idle.emplace(fd, std::move(c));
    }
  }

  // A client over its connection cap gets 503 and the connection is closed at once (a lingering
  // close would hold a slot that the cap exists to protect). What it already sent is read first,
  // so that the close does not reset the connection before the answer is read.
  void RefuseClient(int fd, const std::string& peer, int open) {
    if (logger) logger(503);
    SendError(fd, 503, "too many connections from this client; retry shortly");
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; ++i) {
    }
    ::close(fd);
    LogRefusal(peer, open);
  }

  void WatchListener() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
    accept_paused = false;
  }

  // Closes connections past their deadlines.
  void Sweep() {
    const auto now = Clock::now();
    if (accept_paused) WatchListener();
    std::vector<int> expired;
    for (auto& [fd, c] : idle) {
      if (c->closing) {
        if (ElapsedSeconds(now - c->first_byte) > 2) expired.push_back(fd);
      } else if (!c->parser.started()) {
        if (ElapsedSeconds(now - c->idle_since) > options.keep_alive_timeout_s)
          expired.push_back(fd);
      } else {
        const double age = ElapsedSeconds(now - c->first_byte);
        const bool head_late = c->parser.state() == HttpRequestParser::State::kNeedMore &&
                               c->parser.request().method.empty() && age > options.header_timeout_s;
        if (head_late || age > options.read_timeout_s) {
          Reject(c.get(), 408, "the request was not received in time");
        }
      }
    }
    for (int fd : expired) {
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
      auto it = idle.find(fd);
      std::unique_ptr<Connection> c = std::move(it->second);
      idle.erase(it);
      Close(std::move(c));
    }
  }

  void WorkerLoop() {
    IdleWorker me;
    while (true) {
      std::unique_ptr<Connection> c;
      {
        std::unique_lock<std::mutex> lock(mu);
        // Woken with the request taken by a worker that was not idle: wait again, on top.
        while (work.empty() && !stopping) {
          me.woken = false;
          idle_workers.push_back(&me);
          me.cv.wait(lock, [&] { return me.woken || stopping; });
        }
        if (work.empty()) {
          // Stopping: leave the idle list, where Dispatch must not find this frame any more.
          std::erase(idle_workers, &me);
          return;
        }
        c = std::move(work.front());
        work.pop_front();
      }
      // Queued bodies stay charged; one being handled is bounded by the worker count instead.
      ReleaseBody(c.get());
      HttpRequest& request = c->parser.request();
      request.peer_address = c->address;
      request.via_trusted_proxy = c->trusted_proxy;
      HttpResponder responder(c->fd, request, options.write_timeout_s, options.keep_alive_timeout_s,
                              logger);
      try {
        handler(request, responder);
      } catch (const std::exception& e) {
        TS_LOG_ERROR("handler for {} {} failed: {}", request.method, request.path, e.what());
      } catch (...) {
        TS_LOG_ERROR("handler for {} {} failed", request.method, request.path);
      }
      if (!responder.started()) {
        if (responder.client_gone()) {
          // Nobody is left to read an answer, and a 500 would count a client's choice as a
          // server fault: record nginx's 499 and close (not reusable: nothing was completed).
          if (logger) logger(kStatusClientClosedRequest);
        } else {
          responder.Send(500, "application/json", error_body(500, "internal server error"));
        }
      }
      c->keep = responder.reusable();
      {
        std::lock_guard<std::mutex> lock(mu);
        returned.push_back(std::move(c));
      }
      Wake();
    }
  }
};

HttpServer::HttpServer(HttpServerOptions options, Handler handler, ErrorBody error_body,
                       Logger logger)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  const HttpServerOptions& o = impl_->options;
  // Never below one body (BodyBudget): a lone request of the largest size must always be
  // receivable.
  impl_->bodies = std::make_unique<BodyBudget>(
      o.max_buffered_body_bytes > 0 ? o.max_buffered_body_bytes : 16 * o.limits.max_body_bytes,
      o.limits.max_body_bytes);
  impl_->handler = std::move(handler);
  impl_->error_body = std::move(error_body);
  impl_->logger = std::move(logger);
  impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl_->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
}

HttpServer::~HttpServer() {
  Stop();
  for (auto& [fd, c] : impl_->idle) ::close(fd);
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
  ::close(impl_->wake_fd);
  ::close(impl_->epoll_fd);
}

Status HttpServer::Bind() {
  for (const std::string& proxy : impl_->options.trusted_proxies) {
    const std::string name = NormalizeAddress(proxy);
    if (name.empty()) return InvalidArgumentError("trusted proxy '{}' is not an IP address", proxy);
    impl_->trusted.insert(name);
  }
  // Each connection is a descriptor: allow as many as the hard limit permits.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(impl_->options.port);
  if (::getaddrinfo(impl_->options.host.c_str(), service.c_str(), &hints, &found) != 0 || !found)
    return UnavailableError("cannot resolve host '{}'", impl_->options.host);
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0)
    return UnavailableError("cannot bind {}:{} (in use, or not a local address)",
                            impl_->options.host, impl_->options.port);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  impl_->listen_fd = fd;
  return OkStatus();
}

void HttpServer::Serve() {
  Impl& s = *impl_;
  for (int i = 0; i < std::max(1, s.options.worker_threads); ++i)
    s.workers.emplace_back([&s] { s.WorkerLoop(); });
  s.WatchListener();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = s.wake_fd;
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.wake_fd, &ev);
  auto last_sweep = Clock::now();
  epoll_event events[64];
  while (!s.stopping) {
    const int n = ::epoll_wait(s.epoll_fd, events, 64, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == s.listen_fd) {
        s.Accept();
      } else if (fd == s.wake_fd) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(s.wake_fd, &count, sizeof(count));
        s.TakeReturned();
      } else {
        s.OnReadable(fd);
      }
    }
    if (ElapsedSeconds(Clock::now() - last_sweep) >= 0.1) {
      s.Sweep();
      last_sweep = Clock::now();
    }
  }
  ::close(s.listen_fd);
  s.listen_fd = -1;
  s.WakeAllWorkers();
  for (auto& w : s.workers) w.join();
  s.workers.clear();
  s.TakeReturned();  // closes them: stopping is set
}

uint64_t HttpServer::buffered_body_bytes() const { return impl_->bodies->held(); }
uint64_t HttpServer::max_buffered_body_bytes() const { return impl_->bodies->total(); }

void HttpServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  impl_->WakeAllWorkers();  // under mu, so no worker misses `stopping` between check and wait
  impl_->Wake();
}

}  // namespace tinyserve
