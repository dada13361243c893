// The OpenAI protocol, response side: engine events of one HTTP request turned into the exact
// OpenAI shapes, either one JSON body (non-streaming) or SSE chunks (streaming). One builder per
// HTTP request, used by that request's HTTP thread only.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/errors.h"
#include "server/openai_api.h"
#include "structured/tool_calls.h"

namespace tinyserve {

class ResponseBuilder {
 public:
  // `id`: "cmpl-..." or "chatcmpl-..."; `created`: Unix seconds.
  ResponseBuilder(const ParsedRequest& request, const Tokenizer* tokenizer, std::string id,
                  int64_t created);

  // Records an event of prompt `prompt_idx` (choice index = prompt_idx * n + event.index).
  void Add(int32_t prompt_idx, const RequestEvent& event);
  // Streaming: the SSE `data:` payloads (JSON texts) this event produces, in order. Call
  // instead of Add (it records the event too).
  std::vector<std::string> StreamChunks(int32_t prompt_idx, const RequestEvent& event);
  // Streaming, include_usage: the final chunk with empty choices and the usage.
  std::string UsageChunk() const;
  // Non-streaming: the whole response body. Moves the choices' log-probabilities into it (no
  // second copy of what may be hundreds of MB), so it is called once.
  std::string FinalBody();

  int32_t completion_tokens() const { return completion_tokens_; }
  // The first failed choice's error (FinishReason::kError: the model failed, or a constraint
  // left no token), which a non-streamed call answers instead of a 200 body, as vLLM does;
  // nullopt when no choice failed. A stream names it in an error chunk (StreamChunks).
  std::optional<ApiError> Failure() const;

 private:
  // clang-tidy 14 reports bugprone-exception-escape on the implicit special members here, a
  // false positive: every member's move constructor is noexcept (nlohmann::basic_json's too).
  // NOLINTNEXTLINE(bugprone-exception-escape)
  struct Choice {
    std::string text;
    nlohmann::ordered_json logprobs = nullptr;         // accumulated (non-streaming)
    nlohmann::ordered_json prompt_logprobs = nullptr;  // vLLM's shape (non-streaming)
    bool prompt_part_done = false;  // prompt log-probabilities placed (the choice's first event)
    int64_t text_offset = 0;
    FinishReason finish = FinishReason::kNone;
    std::string stop_reason;
    bool role_sent = false;
    structured::ToolCallStreamParser tool_parser;  // streaming with parse_tool_calls
    std::vector<int32_t> token_ids;                // generated (non-streaming, return_token_ids)
    bool prompt_ids_sent = false;  // streaming completions: prompt_token_ids in a chunk
  };

  nlohmann::ordered_json ChunkEnvelope() const;
  nlohmann::ordered_json Usage() const;
  // Logprobs of `event`'s tokens in the endpoint's shape; null when not asked.
  nlohmann::ordered_json EventLogprobs(const RequestEvent& event, Choice* choice) const;
  // Completions with echo and logprobs: the prompt's tokens lead the `logprobs` arrays.
  bool EchoesLogprobs() const;
  // The choice's first event: its prompt log-probabilities (none for a one-token prompt) into
  // c->prompt_logprobs, and returned as the echoed `logprobs` arrays (null when not echoed).
  // Later events: null.
  nlohmann::ordered_json TakePromptPart(int32_t prompt_idx, const RequestEvent& event, Choice* c);
  // Prompt `prompt_idx`'s tokens as completion `logprobs` arrays (the first token has no
  // log-probability: null), text offsets from choice->text_offset on.
  nlohmann::ordered_json EchoLogprobs(int32_t prompt_idx, const std::vector<TokenLogprobs>& lps,
                                      Choice* choice) const;
  // vLLM's "prompt_logprobs": null for the first token, then per token an object from token id
  // to {logprob, rank, decoded_token} for the token and its top alternatives.
  nlohmann::ordered_json VllmPromptLogprobs(const std::vector<TokenLogprobs>& lps) const;
  // Streaming with return_token_ids: the prompt's ids on the first chunk of the response
  // (chat, beside the choices) or of each choice (completions, in the choice), as vLLM does.
  void AddPromptIds(int32_t prompt_idx, Choice* c, nlohmann::ordered_json* chunk,
                    nlohmann::ordered_json* choice);
  static nlohmann::ordered_json FinishReasonJson(FinishReason reason, bool called_tools = false);
  // OpenAI's tool_calls entries ("call_" ids are made here).
  static nlohmann::ordered_json ToolCallsJson(const std::vector<structured::ToolCall>& calls);

  const ParsedRequest& request_;
  const Tokenizer* tokenizer_;
  const std::string id_;
  const int64_t created_;
  std::vector<Choice> choices_;
  std::vector<int32_t> cached_tokens_;  // per prompt, from choice 0's usage
  int32_t prompt_tokens_ = 0;
  int32_t completion_tokens_ = 0;
  Status failure_;  // the first FinishReason::kError event's
  bool chat_prompt_ids_sent_ = false;
};

// "data: <payload>\n\n": one server-sent event.
std::string SseEvent(const std::string& payload);

}  // namespace tinyserve
