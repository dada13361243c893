#include "server/openai_fields.h"

#include <fmt/format.h>

#include <cmath>
#include <utility>

namespace tinyserve::openai_parse {

[[noreturn]] void Fail(std::string param, std::string message) {
  throw Invalid{BadRequest(std::move(message), std::move(param))};
}

const Json* Field(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool GetBool(const Json& body, const char* name, bool fallback) {
  const Json* v = Field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) Fail(name, fmt::format("'{}' must be a boolean", name));
  return v->get<bool>();
}

std::optional<double> GetNumber(const Json& body, const char* name, double lo, double hi) {
  const Json* v = Field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) Fail(name, fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    Fail(name, fmt::format("'{}' must be between {} and {}, got {}", name, lo, hi, x));
  return x;
}

std::optional<int64_t> GetInt(const Json& body, const char* name, int64_t lo, int64_t hi) {
  const Json* v = Field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) Fail(name, fmt::format("'{}' must be an integer", name));
  const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)
                        ? INT64_MAX
                        : v->get<int64_t>();
  if (x < lo || x > hi)
    Fail(name, fmt::format("'{}' must be between {} and {}, got {}", name, lo, hi, x));
  return x;
}

std::string GetString(const Json& body, const char* name, size_t max_bytes) {
  const Json* v = Field(body, name);
  if (v == nullptr) return "";
  if (!v->is_string()) Fail(name, fmt::format("'{}' must be a string", name));
  std::string s = v->get<std::string>();
  if (s.size() > max_bytes)
    Fail(name, fmt::format("'{}' is longer than {} bytes", name, max_bytes));
  return s;
}

std::string RequiredString(const Json& object, const char* name, const std::string& param) {
  const Json* v = Field(object, name);
  if (v == nullptr || !v->is_string()) Fail(param, fmt::format("'{}' must be a string", name));
  return v->get<std::string>();
}

std::vector<int32_t> TokenIds(const Json& list, const char* param, int64_t vocab_size) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (const Json& t : list) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab_size)
      Fail(param, fmt::format("'{}' holds a token id outside [0, {})", param, vocab_size));
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

}  // namespace tinyserve::openai_parse
