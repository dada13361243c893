// What admission needs from an API call besides its prompts: its deadline (the body field
// `timeout` or the header `X-Request-Timeout`, in seconds, capped by --request-timeout), the
// client it is accounted to (the `user` field, else the API key), the work of every prompt and
// choice, and the OpenAI-shaped refusal (503, or 429 for a client over its share, with
// Retry-After). Pure functions; any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <variant>

#include "engine/admission.h"
#include "server/errors.h"
#include "server/openai_api.h"

namespace tinyserve {

inline constexpr std::string_view kTimeoutHeader = "X-Request-Timeout";

struct RequestBudget {
  double timeout_s = 0;  // seconds from arrival to the last token
  std::string client;    // "user:NAME", "key:KEY" or "" (anonymous)
};

// Reads `timeout` from the JSON body and the X-Request-Timeout header value (either may be
// absent; with both the smaller wins; neither: `default_timeout_s`, which also caps them) and
// the client (the body's `user`, else the API key the client presented, if any). Errors (400,
// naming the field): a timeout that is not a number >= 0.001 s.
std::variant<RequestBudget, ApiError> ParseRequestBudget(std::string_view body,
                                                         std::string_view timeout_header,
                                                         std::string_view api_key,
                                                         double default_timeout_s);

// The whole call as admission sees it: every prompt, n choices each, max_tokens (or what
// max_model_len leaves after the longest prompt).
WorkRequest WorkOfCall(const ParsedRequest& request, const RequestBudget& budget,
                       std::chrono::steady_clock::time_point arrival, double max_queue_delay_s,
                       int32_t max_model_len);

// The refusal for a decision that did not admit, or for work shed from the queue
// (`shed`): 503 service_unavailable, or 429 rate_limit_error for client_share. Its Retry-After
// header value (whole seconds, >= 1) goes in `retry_after`.
ApiError RefusalError(const AdmissionDecision& decision, bool shed, std::string* retry_after);

}  // namespace tinyserve
