// The JSON answers every route sends: an OpenAI-shaped error or a 200 body.
#pragma once

#include <string>

#include "server/errors.h"
#include "server/http_transport.h"

namespace tinyserve {

inline void SendError(HttpResponder& res, const ApiError& error, const HttpHeaders& headers = {}) {
  res.Send(error.http_status, "application/json", error.Body(), headers);
}

inline void SendJson(HttpResponder& res, const std::string& body) {
  res.Send(200, "application/json", body);
}

}  // namespace tinyserve
