#include "server/cors.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "server/http_parser.h"

namespace tinyserve {

StatusOr<std::vector<std::string>> ParseAllowedOrigins(const std::vector<std::string>& given) {
  // Split at commas on the command line, a JSON list too: joined again, then read whole.
  std::string joined;
  for (const std::string& g : given) joined += (joined.empty() ? "" : ",") + g;
  std::vector<std::string> items = given;
  if (!joined.empty() && joined.front() == '[') {
    const nlohmann::json list = nlohmann::json::parse(joined, nullptr, /*allow_exceptions=*/false);
    if (!list.is_array())
      return InvalidArgumentError("--allowed-origins: '{}' is not a JSON list", joined);
    items.clear();
    for (const nlohmann::json& o : list) {
      if (!o.is_string())
        return InvalidArgumentError("--allowed-origins: '{}' holds a non-string", joined);
      items.push_back(o.get<std::string>());
    }
  }
  std::vector<std::string> origins;
  for (std::string o : items) {
    // CLI11 reads a bracketed value as a list itself and leaves each element's quotes.
    const size_t first = o.find_first_not_of(" \t"), last = o.find_last_not_of(" \t");
    o = first == std::string::npos ? "" : o.substr(first, last - first + 1);
    if (o.size() >= 2 && o.front() == '"' && o.back() == '"') o = o.substr(1, o.size() - 2);
    o = AsciiLower(o);
    while (!o.empty() && o.back() == '/') o.pop_back();
    if (o.empty()) continue;
    if (o != "*" && o.find("://") == std::string::npos)
      return InvalidArgumentError(
          "--allowed-origins: '{}' is not an origin (scheme://host[:port]) or '*'", o);
    origins.push_back(std::move(o));
  }
  return origins;
}

bool OriginAllowed(const std::vector<std::string>& allowed, std::string_view origin) {
  if (origin.empty() || allowed.empty()) return false;
  const std::string o = AsciiLower(origin);
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& a) { return a == "*" || a == o; });
}

HttpHeaders CorsHeaders(std::string_view origin) {
  // The origin itself rather than "*": the answer differs by Origin, which Vary tells caches.
  return {{"Access-Control-Allow-Origin", std::string(origin)}, {"Vary", "Origin"}};
}

HttpHeaders PreflightHeaders(std::string_view origin, std::string_view requested_headers) {
  HttpHeaders h = CorsHeaders(origin);
  h.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  // "*" in Allow-Headers does not cover Authorization, so the asked-for names are echoed
  // (they only say which headers may be sent; the request is screened as any other).
  h.emplace_back("Access-Control-Allow-Headers", requested_headers.empty()
                                                     ? std::string("authorization, content-type")
                                                     : std::string(requested_headers));
  h.emplace_back("Access-Control-Max-Age", "600");
  return h;
}

}  // namespace tinyserve
