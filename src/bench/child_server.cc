#include "bench/child_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "bench/client.h"

namespace tinyserve::bench {

StatusOr<int> PickFreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return InternalError("socket: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return InternalError("cannot bind a loopback port: {}", std::strerror(errno));
  }
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

ChildServer::~ChildServer() {
  if (pid_ > 0) Stop(/*grace_s=*/5);
}

Status ChildServer::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return InvalidArgumentError("no command to start");
  if (pid_ > 0) return FailedPreconditionError("server already started");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return InternalError("cannot open {}: {}", log_path, std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) close(log_fd);
    return InternalError("fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  pid_ = pid;
  return OkStatus();
}

Status ChildServer::WaitHealthy(const std::string& health_url, double timeout_s) {
  TS_ASSIGN_OR_RETURN(BaseUrl url, ParseBaseUrl(health_url));
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("the server exited during start-up (status {})",
                              WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    }
    httplib::Client http(url.scheme_host_port);
    http.set_connection_timeout(std::chrono::milliseconds(500));
    http.set_read_timeout(std::chrono::seconds(2));
    if (auto res = http.Get(url.path_prefix); res && res->status == 200) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return UnavailableError("{} did not answer within {:g} s", health_url, timeout_s);
}

int ChildServer::Stop(double grace_s) {
  if (pid_ <= 0) return 0;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace tinyserve::bench
