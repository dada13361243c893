// OpenAI's Responses API (/v1/responses, as vLLM serves it) on top of the chat endpoint: a
// request is translated into the chat request it means (instructions and input items become
// messages, text.format becomes response_format, flat function tools become chat tools), served
// as one, and the chat completion (or its stream of chunks) is reshaped into a Response object
// (or the Responses stream's typed events). Nothing is stored: `previous_response_id` is refused,
// as vLLM does without its response store.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "server/chat_reshaper.h"
#include "server/errors.h"

namespace tinyserve {

// The chat completions body a Responses body asks for, or the 400 naming the Responses field at
// fault. `body` has passed ParseUntrustedJson.
std::variant<nlohmann::ordered_json, ApiError> ResponsesToChatBody(
    const nlohmann::ordered_json& body);

// A 400 of the chat parser about a field the Responses request named otherwise, renamed to it
// (max_tokens -> max_output_tokens, response_format -> text.format, messages -> input).
ApiError ResponsesError(ApiError chat_error);

class ResponsesShaper : public ChatReshaper {
 public:
  // `request`: the Responses body (its settings are echoed in the Response object); `id`:
  // "resp_..."; `created`: Unix seconds.
  ResponsesShaper(const nlohmann::ordered_json& request, std::string model, std::string id,
                  int64_t created);

  // Non-streaming: the Response object for the chat completion body `chat`.
  std::string FromCompletion(std::string_view chat) override;

  // Streaming: the SSE events ("event: TYPE\ndata: JSON\n\n") for one chat chunk payload (the
  // first call also announces the response); the usage chunk is consumed silently.
  std::string FromChunk(std::string_view payload) override;
  // Streaming: the events that end the response (done events, then response.completed,
  // response.incomplete or response.failed).
  std::string Finish() override;

 private:
  struct ToolCall {
    std::string call_id, name, arguments;
  };
  // The Response object as of now (status, output and usage from what was seen).
  nlohmann::ordered_json Response(std::string_view status) const;
  nlohmann::ordered_json MessageItem(std::string_view status) const;
  nlohmann::ordered_json FunctionCallItem(size_t i) const;
  std::string Event(std::string_view type, nlohmann::ordered_json fields);
  // response.created and response.in_progress, the first time ("" after).
  std::string Start();
  // The message item and its text part announced, the first time ("" after).
  std::string OpenMessage();
  // Reads a chat choice (a completion's `message` or a chunk's `delta`) into text_ / calls_.
  void Take(const nlohmann::ordered_json& choice, const char* part);
  void TakeUsage(const nlohmann::ordered_json& usage);

  nlohmann::ordered_json settings_;  // the request's fields a Response object echoes
  std::string model_;
  std::string id_;
  std::string message_id_;
  int64_t created_;
  std::string text_;
  std::vector<ToolCall> calls_;
  std::string finish_reason_;
  nlohmann::ordered_json error_ = nullptr;
  nlohmann::ordered_json usage_ = nullptr;
  int64_t sequence_ = 0;
  bool started_ = false;       // response.created sent
  bool message_open_ = false;  // the message item and its text part announced
};

}  // namespace tinyserve
