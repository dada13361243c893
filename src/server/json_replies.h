// The JSON answers every route sends: an error (OpenAI's shape, or Anthropic's on its routes)
// or a 200 body.
#pragma once

#include <string>

#include "server/anthropic_messages.h"
#include "server/errors.h"
#include "server/http_transport.h"

namespace tinyserve {

enum class ErrorShape { kOpenAI, kAnthropic };

inline void SendError(HttpResponder& res, const ApiError& error, const HttpHeaders& headers = {},
                      ErrorShape shape = ErrorShape::kOpenAI) {
  res.Send(error.http_status, "application/json",
           shape == ErrorShape::kAnthropic ? AnthropicErrorBody(error) : error.Body(), headers);
}

inline void SendJson(HttpResponder& res, const std::string& body) {
  res.Send(200, "application/json", body);
}

}  // namespace tinyserve
