#include "util/logging.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace tinyserve {
namespace {
// TINYSERVE_LOG_LEVEL=debug|info|warning|error sets the starting level (debug shows, e.g., each
// admission decision with its prediction).
LogLevel LevelFromEnvironment() {
  const char* v = std::getenv("TINYSERVE_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(v, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}
std::atomic<LogLevel> g_level{LevelFromEnvironment()};
constexpr const char* kLevelNames[] = {"D", "I", "W", "E"};
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, const std::string& message) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::string line = fmt::format("{} {:02}:{:02}:{:02}.{:03} {}\n", kLevelNames[int(level)],
                                 tm.tm_hour, tm.tm_min, tm.tm_sec, ms.count(), message);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace tinyserve
