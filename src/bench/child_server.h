// The embedded target: starts `tinyserve serve MODEL --host 127.0.0.1 --port P --threads T` as a
// child process (the running binary, via /proc/self/exe), waits for /health, and stops it with
// SIGTERM (then SIGKILL after a grace period). Owned by the CLI's main thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/status.h"

namespace tinyserve::bench {

// A free TCP port on 127.0.0.1 (bound and released; a small race with other processes remains).
[[nodiscard]] StatusOr<int> PickFreeLoopbackPort();

class ChildServer {
 public:
  ChildServer() = default;
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  ~ChildServer();  // Stops the child if still running.

  // Starts `argv` (argv[0] is the executable path). The child's output goes to `log_path`
  // (appended) so it does not mix with the bench's progress lines; empty keeps it on stderr.
  [[nodiscard]] Status Start(const std::vector<std::string>& argv, const std::string& log_path);
  // Polls `health_url` until it answers 200, the child exits, or `timeout_s` passes.
  [[nodiscard]] Status WaitHealthy(const std::string& health_url, double timeout_s);
  // SIGTERM, then SIGKILL after `grace_s`; returns the child's exit status (or -signal).
  int Stop(double grace_s = 10);

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

}  // namespace tinyserve::bench
