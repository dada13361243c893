// Cross-origin requests from browser pages (CORS), granted only to the origins the operator
// lists with --allowed-origins (vLLM's flag; "*" grants any). Without the list a browser page
// from elsewhere gets no preflight and its requests 403 (http_server.cc's Screen): a server
// without an API key must not be usable by any site its users visit.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/http_transport.h"
#include "util/status.h"

namespace tinyserve {

// --allowed-origins as given: comma-separated origins, or vLLM's JSON list ('["http://a:3000"]').
// Origins are compared as the browser sends them (scheme://host[:port], lower case, no path).
StatusOr<std::vector<std::string>> ParseAllowedOrigins(const std::vector<std::string>& given);

bool OriginAllowed(const std::vector<std::string>& allowed, std::string_view origin);

// Headers of every response to an allowed origin.
HttpHeaders CorsHeaders(std::string_view origin);

// The answer to a preflight (OPTIONS with Access-Control-Request-Method) from an allowed origin:
// the API's methods, the request headers it asked for, cached by the browser for 10 minutes.
HttpHeaders PreflightHeaders(std::string_view origin, std::string_view requested_headers);

}  // namespace tinyserve
