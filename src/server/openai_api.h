// The OpenAI protocol, request side: JSON bodies of /v1/completions and /v1/chat/completions
// parsed and range-checked into engine requests. All validation of client input lives here;
// every error names the field at fault. Pure functions of their arguments; any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/request.h"
#include "server/errors.h"
#include "structured/compiler.h"
#include "tokenizer/chat_template.h"

namespace tinyserve {

class Tokenizer;

// kResponses (/v1/responses) and kMessages (/v1/messages) are served as the chat request they
// translate to (server/openai_responses.h, server/anthropic_messages.h); ParseRequest takes
// kCompletions and kChat.
enum class Endpoint { kCompletions, kChat, kResponses, kMessages };

// What parsing needs to know about the served model.
struct ApiContext {
  const Tokenizer* tokenizer = nullptr;
  std::string served_model_name;
  int64_t vocab_size = 0;
  int32_t max_model_len = 0;
  int64_t num_kv_blocks = 0;  // 0: no KV fit check here (the engine still checks one sequence)
  int32_t block_size = 16;
  int32_t max_n = 16;
  // prompts x n: each choice is a sequence and a part of the response.
  int32_t max_choices = 64;
  // Non-streamed responses with logprobs are built in memory: choices x max_tokens x
  // (top_logprobs + 1) may not exceed this (streaming has no such limit).
  int64_t max_logprob_entries = 1 << 22;
  // The prompt's log-probability entries (prompt tokens x choices x (prompt_logprobs + 1), twice
  // with `echo` and `logprobs`: vLLM's list and the echoed arrays) may not exceed this. They are
  // built at once, at prefill speed, while the completions' come at decode speed; an entry costs
  // ~600 bytes while the response is built (nlohmann objects, then the text): a 2,001-token
  // prompt, n = 6, prompt_logprobs 20, echo with logprobs 20 (~500,000 entries) took +307 MB of
  // RSS. At 2^20, one request holds ~650 MB at most.
  int64_t max_prompt_logprob_entries = 1 << 20;
  // `priority` other than 0 is accepted only under --scheduling-policy priority.
  bool allow_priority = false;
  // A max_tokens that reaches past the context is cut to what the prompt leaves instead of
  // refused (Anthropic's Messages API: the stop reason then says so; clients such as Claude Code
  // ask for more tokens than a small model's context holds).
  bool cap_max_tokens_at_context = false;
  int32_t max_stop_strings = 16;
  int32_t max_stop_string_bytes = 256;
};

// A structured-output constraint as the request stated it, compiled later (off the parser:
// compilation may take milliseconds and is cached).
struct OutputConstraint {
  structured::GrammarKind kind = structured::GrammarKind::kJsonObject;
  std::string text;   // schema / pattern / choices / grammar / tool-call spec
  std::string param;  // the request field it came from, for errors
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as the response names it
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // stream_options.continuous_usage_stats (vLLM) with include_usage: every chunk carries the
  // usage so far instead of null.
  bool continuous_usage = false;
  bool echo = false;  // completions: the prompt before each choice's text
  // Chat with `echo` whose last message is the assistant's (vLLM): that message's content, put
  // before each choice's content (the reply continues it, e.g. with continue_final_message).
  std::string chat_echo;
  bool echo_only = false;  // echo with max_tokens 0: the response holds the prompt alone
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
  // response_format, structured_outputs, guided_*, json_schema / grammar (llama.cpp), or the
  // tool-call grammar of tool_choice "required" / a named function.
  std::optional<OutputConstraint> constraint;
  // Chat with tools and tool_choice other than "none": Qwen2.5's <tool_call> blocks in the
  // output become OpenAI tool_calls.
  bool parse_tool_calls = false;
  // vLLM's `return_token_ids`: the prompt's and the output's token ids beside the text.
  bool return_token_ids = false;
};

// A rendered chat prompt as token ids: the template's control tokens as such, every client
// string with special-token matching off (no role injection through message text).
std::vector<int32_t> EncodeChatPrompt(const RenderedChat& rendered, const Tokenizer& tokenizer);

// Parses and validates a request body. On error: the OpenAI error to send (400 for malformed
// JSON, wrong types and out-of-range values; 404 for an unknown model).
std::variant<ParsedRequest, ApiError> ParseRequest(Endpoint endpoint, std::string_view body,
                                                   const ApiContext& context);

// /tokenize with `messages`: the token ids /v1/chat/completions renders from the same (already
// parsed) body: messages, tools and tool_choice, add_generation_prompt, continue_final_message;
// or the 400 it would answer.
std::variant<std::vector<int32_t>, ApiError> ParseChatPrompt(nlohmann::ordered_json body,
                                                             const ApiContext& context);

}  // namespace tinyserve
