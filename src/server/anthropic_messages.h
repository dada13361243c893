// Anthropic's Messages API (/v1/messages and /v1/messages/count_tokens, as vLLM and
// llama-server serve it, for clients such as Anthropic's SDKs and Claude Code) on top of the
// chat endpoint: a request is translated into the chat request it means (`system` becomes a
// system message, tool_use / tool_result blocks become tool calls and tool messages, tools'
// input_schema their parameters, output_config.format a response_format), served as one, and
// the chat completion (or its chunks) is reshaped into a Message (or the Messages stream's
// events). Errors take Anthropic's shape ({"type": "error", "error": {type, message}}).
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

// The chat completions body a Messages body asks for, or the 400 naming the Messages field at
// fault. `body` has passed ParseUntrustedJson. `count_only` (/v1/messages/count_tokens): the
// prompt is all that is needed, so `max_tokens` is not required.
std::variant<nlohmann::ordered_json, ApiError> MessagesToChatBody(
    const nlohmann::ordered_json& body, bool count_only = false);

// A 400 of the chat parser about a field the Messages request named otherwise, renamed to it
// (stop -> stop_sequences, response_format -> output_config.format, user -> metadata.user_id).
ApiError MessagesError(ApiError chat_error);

// The error as Anthropic's API shapes it: its type chosen by HTTP status as Anthropic's are.
std::string AnthropicErrorBody(const ApiError& error);

class MessagesShaper : public ChatReshaper {
 public:
  // `model`: the served model's name; `id`: "msg_..."; `input_tokens`: the prompt's length
  // (message_start announces it before the usage arrives); `max_tokens`: as the request asked
  // (an answer cut short of it ran out of context).
  MessagesShaper(std::string model, std::string id, int64_t input_tokens, int64_t max_tokens);

  std::string FromCompletion(std::string_view chat) override;
  std::string FromChunk(std::string_view payload) override;
  std::string Finish() override;

 private:
  struct ToolUse {
    std::string id, name, arguments;
  };
  enum class Block { kNone, kText, kToolUse };

  // The Message as of now: content blocks, stop reason and usage from what was seen.
  nlohmann::ordered_json Message(bool final) const;
  nlohmann::ordered_json Usage() const;
  std::string StopReason() const;
  static std::string Event(std::string_view type, const nlohmann::ordered_json& data);
  // message_start, the first time ("" after).
  std::string Start();
  // content_block_stop for the open block, if any.
  std::string CloseBlock();
  // Reads a chat choice's finish reason and, for a completion, its message.
  void TakeFinish(const nlohmann::ordered_json& choice);
  void TakeUsage(const nlohmann::ordered_json& usage);
  // Streaming: the events for a chunk's delta (text and tool-call fragments).
  std::string TakeDelta(const nlohmann::ordered_json& delta);

  std::string model_;
  std::string id_;
  int64_t input_tokens_;
  int64_t max_tokens_;
  int64_t cached_tokens_ = 0;
  int64_t output_tokens_ = 0;
  // The content in the order it came: text runs and tool uses, as Anthropic's content blocks.
  std::vector<nlohmann::ordered_json> blocks_;
  std::vector<ToolUse> tool_uses_;   // by the chat stream's tool-call index
  std::vector<int> tool_use_block_;  // each tool use's index in blocks_
  std::string finish_reason_;
  std::string stop_sequence_;  // the stop string that ended it, if one did
  std::string error_;          // a failure reported in the stream
  Block open_ = Block::kNone;
  bool started_ = false;
};

}  // namespace tinyserve
