#include "util/logging.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace tinyserve {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
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
