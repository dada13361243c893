#include "tokenizer/chat_template.h"

#include "tokenizer/chat_template_json.h"
#include "tokenizer/qwen25_files.h"
#include "tokenizer/utf8.h"

namespace tinyserve {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kToolsPreamble =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kToolsPostamble =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\n</tool_call>";
constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";

// Python's str.isspace() for the code point at the start/end of a UTF-8 string.
bool IsPythonSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Python's str.strip() on valid UTF-8.
std::string_view PythonStrip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t len = ValidUtf8SequenceLength(s, begin);
    if (len == 0 || !IsPythonSpace(DecodeUtf8(s.data() + begin, len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    const size_t len = ValidUtf8SequenceLength(s, start);
    if (len == 0 || start + len != end || !IsPythonSpace(DecodeUtf8(s.data() + start, len))) {
      break;
    }
    end = start;
  }
  return s.substr(begin, end - begin);
}

bool Truthy(const Json& v) {
  if (v.is_null()) return false;
  if (v.is_array() || v.is_object() || v.is_string()) return !v.empty();
  if (v.is_boolean()) return v.get<bool>();
  return true;
}

void AppendToolCall(const Json& call, std::string* out) {
  const Json& fn = call.is_object() && call.contains("function") ? call["function"] : call;
  out->append("\n<tool_call>\n{\"name\": \"");
  if (fn.is_object() && fn.contains("name")) {
    const Json& name = fn["name"];
    out->append(name.is_string() ? name.get<std::string>() : PythonToJson(name));
  }
  out->append("\", \"arguments\": ");
  out->append(PythonToJson(fn.is_object() && fn.contains("arguments") ? fn["arguments"] : Json()));
  out->append("}\n</tool_call>");
}

StatusOr<std::string> ContentText(const Json& content) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return InvalidArgumentError("message content must be a string or list");
  std::string text;
  bool first = true;
  for (const Json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return InvalidArgumentError("only text content parts are supported");
    }
    if (!first) text.push_back('\n');
    text += part["text"].get<std::string>();
    first = false;
  }
  return text;
}

}  // namespace

std::string PythonToJson(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, v] : value.items()) {
        if (!first) out += ", ";
        out += Json(key).dump(-1, ' ', false, Json::error_handler_t::replace);
        out += ": ";
        out += PythonToJson(v);
        first = false;
      }
      return out + "}";
    }
    case Json::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const Json& v : value) {
        if (!first) out += ", ";
        out += PythonToJson(v);
        first = false;
      }
      return out + "]";
    }
    default:
      return value.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

StatusOr<ChatConversation> ChatConversationFromJson(const Json& j) {
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
    return InvalidArgumentError("expected an object with a messages array");
  }
  ChatConversation conv;
  for (const Json& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return InvalidArgumentError("each message needs a string role");
    }
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    TS_ASSIGN_OR_RETURN(msg.content, ContentText(m.contains("content") ? m["content"] : Json()));
    if (m.contains("name") && m["name"].is_string()) msg.name = m["name"].get<std::string>();
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) return InvalidArgumentError("tool_calls must be a list");
      msg.tool_calls = m["tool_calls"];
      for (Json& call : msg.tool_calls) {
        Json* fn = call.is_object() && call.contains("function") ? &call["function"] : &call;
        if (fn->is_object() && fn->contains("arguments") && (*fn)["arguments"].is_string()) {
          // Bounded like a request body: the renderer walks arguments recursively.
          auto parsed = ParseUntrustedJson((*fn)["arguments"].get<std::string>());
          if (parsed.ok()) {
            (*fn)["arguments"] = std::move(*parsed);
          } else if (parsed.status().code() == StatusCode::kOutOfRange) {  // else kept as text
            return InvalidArgumentError("tool_calls arguments: {}", parsed.status().message());
          }
        }
      }
    }
    conv.messages.push_back(std::move(msg));
  }
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array()) return InvalidArgumentError("tools must be a list");
    conv.tools = j["tools"];
  }
  if (j.contains("add_generation_prompt")) {
    conv.add_generation_prompt = j["add_generation_prompt"].get<bool>();
  }
  if (j.contains("continue_final_message")) {
    conv.continue_final_message = j["continue_final_message"].get<bool>();
  }
  return conv;
}

StatusOr<RenderedChat> RenderQwen25ChatWithControls(const ChatConversation& conv) {
  const auto& msgs = conv.messages;
  if (msgs.empty()) return InvalidArgumentError("the conversation has no messages");
  if (conv.continue_final_message && conv.add_generation_prompt) {
    return InvalidArgumentError(
        "continue_final_message and add_generation_prompt cannot both be set");
  }
  RenderedChat rendered;
  std::string& out = rendered.text;
  // The template's own control tokens; client text between them is never matched as one.
  auto start = [&](std::string_view role) {
    rendered.control.emplace_back(out.size(), kImStart.size());
    out += kImStart;
    out += role;
  };
  auto end = [&] {
    rendered.control.emplace_back(out.size(), kImEnd.size());
    out += kImEnd;
    out += "\n";
  };
  const bool first_is_system = msgs[0].role == "system";
  if (Truthy(conv.tools)) {
    start("system\n");
    out += first_is_system ? std::string_view(msgs[0].content) : kDefaultSystem;
    out += kToolsPreamble;
    for (const Json& tool : conv.tools) {
      out += "\n";
      out += PythonToJson(tool);
    }
    out += kToolsPostamble;
    end();
  } else {
    start("system\n");
    out += first_is_system ? std::string_view(msgs[0].content) : kDefaultSystem;
    end();
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    const bool has_calls = Truthy(m.tool_calls);
    if (m.role == "user" || (m.role == "system" && i != 0) ||
        (m.role == "assistant" && !has_calls)) {
      start(m.role + "\n");
      out += m.content;
      end();
    } else if (m.role == "assistant") {
      start("assistant");
      if (!m.content.empty()) out += "\n" + m.content;
      for (const Json& call : m.tool_calls) AppendToolCall(call, &out);
      end();
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") start("user");
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") end();
    }
  }
  if (conv.add_generation_prompt) start("assistant\n");
  if (conv.continue_final_message) {
    // As transformers: cut the prompt right after the last occurrence of the final message.
    const std::string_view final_text = PythonStrip(msgs.back().content);
    const size_t at = out.rfind(final_text);
    if (at == std::string::npos) {
      return InvalidArgumentError("continue_final_message: the final message is not in the prompt");
    }
    out.resize(at + final_text.size());
    while (!rendered.control.empty() &&
           rendered.control.back().first + rendered.control.back().second > out.size())
      rendered.control.pop_back();
  }
  return rendered;
}

StatusOr<std::string> RenderQwen25Chat(const ChatConversation& conv) {
  TS_ASSIGN_OR_RETURN(RenderedChat rendered, RenderQwen25ChatWithControls(conv));
  return std::move(rendered.text);
}

bool IsQwen25ChatTemplate(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) {
      s.remove_suffix(1);
    }
    return s;
  };
  return trim(text) == trim(kQwen25ChatTemplate);
}

}  // namespace tinyserve
