#include "server/request_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace tinyserve {
namespace {

// A timeout in seconds: finite and at least a millisecond. Smaller positive values (1e-300)
// are not deadlines a client can mean; they are refused as malformed (400) rather than
// answered as overload (503 + Retry-After, which invites a retry that fails the same way).
constexpr double kMinTimeoutS = 0.001;
bool ValidTimeout(double v) { return std::isfinite(v) && v >= kMinTimeoutS; }

}  // namespace

std::variant<RequestBudget, ApiError> ParseRequestBudget(std::string_view body,
                                                         std::string_view timeout_header,
                                                         std::string_view api_key,
                                                         double default_timeout_s) {
  RequestBudget b;
  b.timeout_s = default_timeout_s;
  if (!timeout_header.empty()) {
    double v = 0;
    const auto [end, ec] =
        std::from_chars(timeout_header.data(), timeout_header.data() + timeout_header.size(), v);
    if (ec != std::errc() || end != timeout_header.data() + timeout_header.size() ||
        !ValidTimeout(v)) {
      return BadRequest(fmt::format("header {} must be a number of seconds >= {}, got '{}'",
                                    kTimeoutHeader, kMinTimeoutS, timeout_header));
    }
    b.timeout_s = std::min(b.timeout_s, v);
  }
  // The body was already validated as a JSON object by ParseRequest.
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    if (auto it = json.find("timeout"); it != json.end() && !it->is_null()) {
      if (!it->is_number() || !ValidTimeout(it->get<double>()))
        return BadRequest(fmt::format("'timeout' must be a number of seconds >= {}", kMinTimeoutS),
                          "timeout");
      b.timeout_s = std::min(b.timeout_s, it->get<double>());
    }
    if (auto it = json.find("user");
        it != json.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      b.client = "user:" + it->get<std::string>();
    }
  }
  if (b.client.empty() && !api_key.empty()) b.client = "key:" + std::string(api_key);
  return b;
}

WorkRequest WorkOfCall(const ParsedRequest& request, const RequestBudget& budget,
                       std::chrono::steady_clock::time_point arrival, double max_queue_delay_s,
                       int32_t max_model_len) {
  WorkRequest w;
  w.client = budget.client;
  int32_t longest = 0;
  for (const auto& p : request.prompts) {
    w.prompt_lens.push_back(static_cast<int32_t>(p.size()));
    longest = std::max(longest, static_cast<int32_t>(p.size()));
  }
  if (request.prompts.size() == 1)
    w.prompt_blocks = PromptBlockHashes(request.prompts[0], request.base.cache_salt);
  w.n = request.base.n;
  w.max_tokens = std::max(
      1, std::min(max_model_len - longest, request.base.stop.max_tokens.value_or(max_model_len)));
  w.priority = request.base.priority;
  w.deadline = arrival + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(budget.timeout_s));
  w.max_queue_delay_s = max_queue_delay_s;
  return w;
}

ApiError RefusalError(const AdmissionDecision& d, bool shed, std::string* retry_after) {
  *retry_after = fmt::format("{}", static_cast<int64_t>(std::ceil(std::max(1.0, d.retry_after_s))));
  if (shed) {
    return ApiError{503,
                    "the server is over capacity: the request could no longer finish before its "
                    "deadline and was dropped from the queue before it started; retry later",
                    "service_unavailable", "", "shed"};
  }
  switch (d.verdict) {
    case AdmissionVerdict::kRefuseClientShare:
      return ApiError{429,
                      fmt::format("this client has more queued work than its share allows "
                                  "within the deadline; retry after {} s",
                                  *retry_after),
                      "rate_limit_error", "", "client_share"};
    case AdmissionVerdict::kRefuseQueueDelay:
      return ApiError{
          503,
          std::isfinite(d.predicted_wait_s)
              ? fmt::format("the server is over capacity: predicted queue wait "
                            "{:.1f} s exceeds the server's limit; retry after {} s",
                            d.predicted_wait_s, *retry_after)
              : fmt::format("the server is over capacity; retry after {} s", *retry_after),
          "service_unavailable", "", "queue_delay"};
    default:
      return ApiError{503,
                      std::isfinite(d.predicted_finish_s)
                          ? fmt::format("the server is over capacity: the request is predicted "
                                        "to finish in {:.1f} s, after its deadline; retry after "
                                        "{} s",
                                        d.predicted_finish_s, *retry_after)
                          : fmt::format("the server is over capacity: the request cannot finish "
                                        "before its deadline; retry after {} s",
                                        *retry_after),
                      "service_unavailable", "", "deadline"};
  }
}

}  // namespace tinyserve
