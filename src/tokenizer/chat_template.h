// Qwen2.5-Instruct's ChatML prompt, rendered by C++ code that follows the published Jinja
// template (kQwen25ChatTemplate) rule for rule, so no Jinja engine is needed. Pure functions;
// any thread. Key order inside tools and tool-call arguments is kept: parse request JSON into
// nlohmann::ordered_json so `tojson` output matches what Python renders.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace tinyserve {

// A false positive of clang-tidy 14 (bugprone-exception-escape), as on ChatConversation.
// NOLINTNEXTLINE(bugprone-exception-escape)
struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool" (others render nothing)
  std::string content;  // text; list-of-parts content is joined with "\n" by the JSON reader
  nlohmann::ordered_json tool_calls;  // null or an array of {"function": {name, arguments}}
  std::string name;                   // the tool's name on tool messages (unused by Qwen2.5)
};

// A false positive of clang-tidy 14 (bugprone-exception-escape): it follows the implicit
// noexcept move constructor into nlohmann::json's and reports a throw there.
// NOLINTNEXTLINE(bugprone-exception-escape)
struct ChatConversation {
  std::vector<ChatMessage> messages;
  nlohmann::ordered_json tools;  // null or an array of tool definitions (rendered as given)
  bool add_generation_prompt = true;
  // Leave the last message open (prefill an assistant answer), as HF's continue_final_message.
  bool continue_final_message = false;
};

// Reads {"messages": [...], "tools"?: [...], "add_generation_prompt"?: bool,
// "continue_final_message"?: bool} in OpenAI's shape. Content may be a string, null or a list of
// {"type": "text", "text": ...} parts (joined with "\n", as vLLM does). Tool-call arguments given
// as a JSON string are parsed into an object, as vLLM does before rendering.
[[nodiscard]] StatusOr<ChatConversation> ChatConversationFromJson(const nlohmann::ordered_json& j);

// The prompt text. Fails (InvalidArgument) on an empty conversation, on add_generation_prompt
// together with continue_final_message, and on continue_final_message when the last message's
// content does not appear in the prompt.
[[nodiscard]] StatusOr<std::string> RenderQwen25Chat(const ChatConversation& conversation);

// The prompt and where the template itself wrote control tokens (<|im_start|>, <|im_end|>):
// (offset, length) in order. Everything else is client text, to be tokenized with
// allow_special=false so that a message can never forge a role boundary.
struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> control;
};
[[nodiscard]] StatusOr<RenderedChat> RenderQwen25ChatWithControls(const ChatConversation& conv);

// Jinja's `tojson` as transformers renders it (Python json.dumps, ensure_ascii=False, ", " and
// ": " separators, keys in the given order).
std::string PythonToJson(const nlohmann::ordered_json& value);

// True if a model's shipped template is Qwen2.5-Instruct's (byte for byte, ignoring trailing
// whitespace); serve warns when it is not.
bool IsQwen25ChatTemplate(std::string_view template_text);

}  // namespace tinyserve
