// HttpServer against real loopback sockets: the global memory bounds of issue 17 (connections per
// client, body bytes being received), each test named after the attack it stops.
#include "server/http_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tinyserve {
namespace {

// Runs an HttpServer on a free loopback port whose handler answers the body's size (or runs
// `handler`); `logger` sees each status.
class TestServer {
 public:
  explicit TestServer(HttpServerOptions options, HttpServer::Handler handler = nullptr,
                      HttpServer::Logger logger = nullptr) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.worker_threads = 2;
    if (!handler) {
      handler = [](HttpRequest& req, HttpResponder& res) {
        res.Send(200, "text/plain", std::to_string(req.body.size()));
      };
    }
    server_ = std::make_unique<HttpServer>(
        std::move(options), std::move(handler),
        [](int status, const std::string& message) {
          return "{\"status\":" + std::to_string(status) + ",\"message\":\"" + message + "\"}";
        },
        std::move(logger));
  }
  Status Start() {
    Status s = server_->Bind();
    if (s.ok()) thread_ = std::thread([this] { server_->Serve(); });
    return s;
  }
  ~TestServer() {
    server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return server_->port(); }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};  // a broken server fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

// Reads one response (head and Content-Length body), or until EOF / the receive timeout.
std::string ReadResponse(int fd) {
  std::string got;
  char buf[4096];
  while (true) {
    const size_t end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      const size_t cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        const size_t length = std::stoul(got.substr(cl + 16));
        if (got.size() >= end + 4 + length) return got;
      }
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

std::string Get(const std::string& extra = "") {
  return "GET /x HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n";
}

TEST(HttpTransport, ManyConnectionsFromOneClientGet503OverThePerClientCap) {
  HttpServerOptions options;
  options.max_connections_per_client = 4;
  options.keep_alive_timeout_s = 60;
  TestServer server(options);
  ASSERT_TRUE(server.Start().ok());
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {  // each answered, so each is accepted and counted
    held.push_back(Connect(server.port()));
    SendAll(held.back(), Get());
    EXPECT_EQ(ReadResponse(held.back()).rfind("HTTP/1.1 200", 0), 0u);
  }
  const int extra = Connect(server.port());
  SendAll(extra, Get());
  const std::string refused = ReadResponse(extra);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("Retry-After: 1\r\n"), std::string::npos) << refused;
  EXPECT_NE(refused.find("too many connections from this client"), std::string::npos);
  ::close(extra);

  // A connection the server closes frees its slot by the time the client sees the close.
  SendAll(held[0], Get("Connection: close\r\n"));
  EXPECT_EQ(ReadResponse(held[0]).rfind("HTTP/1.1 200", 0), 0u);
  char c;
  EXPECT_EQ(::recv(held[0], &c, 1, 0), 0);  // EOF
  ::close(held[0]);
  held[0] = Connect(server.port());
  SendAll(held[0], Get());
  EXPECT_EQ(ReadResponse(held[0]).rfind("HTTP/1.1 200", 0), 0u);
  for (int fd : held) ::close(fd);
}

TEST(HttpTransport, TrustedProxyIsExemptFromThePerClientCap) {
  HttpServerOptions options;
  options.max_connections_per_client = 2;
  options.keep_alive_timeout_s = 60;
  options.trusted_proxies = {"::ffff:127.0.0.1"};  // the same address, written as IPv6
  TestServer server(options);
  ASSERT_TRUE(server.Start().ok());
  std::vector<int> held;
  for (int i = 0; i < 6; ++i) {
    held.push_back(Connect(server.port()));
    SendAll(held.back(), Get());
    EXPECT_EQ(ReadResponse(held.back()).rfind("HTTP/1.1 200", 0), 0u) << i;
  }
  for (int fd : held) ::close(fd);
}

TEST(HttpTransport, TrustedProxyThatIsNotAnAddressIsRefusedAtBind) {
  HttpServerOptions options;
  options.trusted_proxies = {"proxy.example"};
  TestServer server(options);
  EXPECT_FALSE(server.Start().ok());
}

TEST(HttpTransport, ManySlowLargeBodiesAreBoundedByTheGlobalBodyBudget) {
  HttpServerOptions options;
  options.limits.max_body_bytes = 64 << 10;
  options.max_buffered_body_bytes = 128 << 10;  // two bodies of 50,000 fit, three do not
  options.read_timeout_s = 60;
  options.max_connections_per_client = 0;
  TestServer server(options);
  ASSERT_TRUE(server.Start().ok());
  const std::string head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n";
  std::vector<int> slow;
  for (int i = 0; i < 3; ++i) {  // each sends 50,000 of its 60,000 bytes and stalls
    slow.push_back(Connect(server.port()));
    SendAll(slow.back(), head + std::string(50000, 'x'));
  }
  // Exactly one of them crossed the budget: it is answered 503 while the others wait.
  std::vector<pollfd> fds;
  fds.reserve(slow.size());
  for (int fd : slow) fds.push_back({fd, POLLIN, 0});
  ASSERT_EQ(::poll(fds.data(), fds.size(), 10000), 1);
  int refused = -1;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents & POLLIN) refused = static_cast<int>(i);
  }
  const std::string answer = ReadResponse(slow[refused]);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1\r\n"), std::string::npos);

  // Small requests go on meanwhile, and the stalled bodies complete.
  const int other = Connect(server.port());
  SendAll(other, Get());
  EXPECT_EQ(ReadResponse(other).rfind("HTTP/1.1 200", 0), 0u);
  for (int i = 0; i < 3; ++i) {
    if (i == refused) continue;
    SendAll(slow[i], std::string(10000, 'x'));
    const std::string done = ReadResponse(slow[i]);
    EXPECT_EQ(done.rfind("HTTP/1.1 200", 0), 0u) << done;
    EXPECT_NE(done.find("\r\n\r\n60000"), std::string::npos);
  }
  // Bodies handed to a worker no longer count: a full-size body is received again.
  SendAll(other, head + std::string(60000, 'x'));
  EXPECT_EQ(ReadResponse(other).rfind("HTTP/1.1 200", 0), 0u);
  ::close(other);
  for (int fd : slow) ::close(fd);
}

TEST(HttpTransport, AClientGoneBeforeItsAnswerGetsNoFallback500AndIsCountedAs499) {
  std::mutex mu;
  std::vector<int> statuses;
  TestServer server(
      HttpServerOptions{},
      [](HttpRequest&, HttpResponder& res) {
        // As the generation handlers: wait for the answer, polling for the client, and return
        // without one when it has left.
        while (!res.ClientGone()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      },
      [&](int status) {
        std::lock_guard<std::mutex> lock(mu);
        statuses.push_back(status);
      });
  ASSERT_TRUE(server.Start().ok());
  const int fd = Connect(server.port());
  SendAll(fd, Get());
  ::shutdown(fd, SHUT_WR);  // nc -N: half-closed after the request
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // closed without a byte: no 500 was sent
  ::close(fd);
  // The status is recorded before the connection is closed.
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(statuses, std::vector<int>{kStatusClientClosedRequest});
}

}  // namespace
}  // namespace tinyserve
