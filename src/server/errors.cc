#include "server/errors.h"

#include <nlohmann/json.hpp>

#include "util/logging.h"

namespace tinyserve {

std::string ApiError::Body() const {
  nlohmann::json j;
  j["error"] = {{"message", message},
                {"type", type},
                {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiError BadRequest(std::string message, std::string param) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), ""};
}

ApiError ApiErrorFromStatus(const Status& status, std::string param) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
      return BadRequest(status.message(), std::move(param));
    case StatusCode::kUnauthenticated:
      return ApiError{401, status.message(), "authentication_error", "", "invalid_api_key"};
    case StatusCode::kNotFound:
      return ApiError{404, status.message(), "not_found_error", std::move(param), ""};
    case StatusCode::kResourceExhausted:
      return ApiError{429, status.message(), "rate_limit_error", "", ""};
    case StatusCode::kUnavailable:
      return ApiError{503, status.message(), "service_unavailable", "", ""};
    case StatusCode::kDeadlineExceeded:
      return ApiError{504, status.message(), "timeout", "", ""};
    default:
      TS_LOG_ERROR("internal error: {}", status.ToString());
      return ApiError{500, "internal server error", "internal_server_error", "", ""};
  }
}

ApiError ApiErrorForHttpStatus(int http_status, std::string message) {
  std::string type = "internal_server_error";
  if (http_status < 500 || http_status == 501 || http_status == 505) {
    type = "invalid_request_error";
  } else if (http_status == 503) {
    type = "service_unavailable";
  } else if (http_status == 504) {
    type = "timeout";
  }
  return ApiError{http_status, std::move(message), std::move(type), "", ""};
}

}  // namespace tinyserve
