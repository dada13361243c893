// OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}} with the HTTP status
// that goes with them, and the mapping from canonical Status codes. Pure functions; any thread.
#pragma once

#include <string>

#include "util/status.h"

namespace tinyserve {

struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type = "internal_server_error";
  std::string param;  // the request field at fault; empty = null
  std::string code;   // empty = null

  // The JSON body.
  std::string Body() const;
};

// 400 invalid_request_error naming `param`.
ApiError BadRequest(std::string message, std::string param = "");
// InvalidArgument 400, Unauthenticated 401, NotFound 404, ResourceExhausted 429,
// Unavailable 503, DeadlineExceeded 504; anything else 500 with a generic message (internals
// are logged, never sent).
ApiError ApiErrorFromStatus(const Status& status, std::string param = "");
// An error the HTTP layer answers before any route runs (framing, limits, connection caps):
// 4xx and the client's unsupported protocol (501 Transfer-Encoding, 505 version) are
// invalid_request_error, 503 service_unavailable, 504 timeout, the rest internal_server_error.
ApiError ApiErrorForHttpStatus(int http_status, std::string message);

}  // namespace tinyserve
