// Minimal leveled logging to stderr with a timestamp. Thread-safe (one write per line).
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

namespace tinyserve {

enum class LogLevel { kDebug = 0, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogLine(LogLevel level, const std::string& message);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < GetLogLevel()) return;
  LogLine(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tinyserve

#define TS_LOG_INFO(...) ::tinyserve::Log(::tinyserve::LogLevel::kInfo, __VA_ARGS__)
#define TS_LOG_WARNING(...) ::tinyserve::Log(::tinyserve::LogLevel::kWarning, __VA_ARGS__)
#define TS_LOG_ERROR(...) ::tinyserve::Log(::tinyserve::LogLevel::kError, __VA_ARGS__)
#define TS_LOG_DEBUG(...) ::tinyserve::Log(::tinyserve::LogLevel::kDebug, __VA_ARGS__)
