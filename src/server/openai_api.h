// The OpenAI protocol, request side: JSON bodies of /v1/completions and /v1/chat/completions
// parsed and range-checked into engine requests. All validation of client input lives here;
// every error names the field at fault. Pure functions of their arguments; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/request.h"
#include "server/errors.h"

namespace tinyserve {

class Tokenizer;

enum class Endpoint { kCompletions, kChat };

// What parsing needs to know about the served model.
struct ApiContext {
  const Tokenizer* tokenizer = nullptr;
  std::string served_model_name;
  int64_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t max_n = 16;
  int32_t max_stop_strings = 16;
  int32_t max_stop_string_bytes = 256;
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as the response names it
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage
  bool echo = false;             // completions only
  // One entry per prompt (completions may batch several; chat has one). Each becomes one
  // engine request; choice index = prompt_idx * n + choice.
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_texts;  // for echo
  // Template for the engine requests: sampling, stop conditions, n, priority, cache salt.
  GenerateRequest base;
  // Completions: `logprobs: k` (top-k alternatives, 0 = chosen token only); -1 = none.
  int32_t completion_logprobs = -1;
  // Chat: `logprobs: true` and `top_logprobs`.
  bool chat_logprobs = false;
};

// Parses and validates a request body. On error: the OpenAI error to send (400 for malformed
// JSON, wrong types and out-of-range values; 404 for an unknown model).
std::variant<ParsedRequest, ApiError> ParseRequest(Endpoint endpoint, std::string_view body,
                                                   const ApiContext& context);

}  // namespace tinyserve
