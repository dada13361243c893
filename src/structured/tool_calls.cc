#include "structured/tool_calls.h"

#include <nlohmann/json.hpp>

#include "structured/json_limits.h"

namespace tinyserve::structured {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// The JSON inside one block -> a call, or nullopt when it is not a tool call.
std::optional<ToolCall> ParseBlock(std::string_view body) {
  // Model text can nest without limit; dump() below recurses per level.
  if (JsonNestingDepth(body) > kMaxJsonNesting) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    return std::nullopt;
  }
  ToolCall call;
  call.name = j["name"].get<std::string>();
  const char* key = j.contains("arguments") ? "arguments" : "parameters";
  if (!j.contains(key)) {
    call.arguments = "{}";
  } else if (j[key].is_string()) {
    call.arguments = j[key].get<std::string>();
  } else {
    call.arguments = j[key].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return call;
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t PartialTagSuffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

ParsedToolCalls ParseToolCalls(std::string_view text) {
  ToolCallStreamParser p;
  ToolCallStreamParser::Delta a = p.Feed(text);
  ToolCallStreamParser::Delta b = p.Finish();
  ParsedToolCalls out;
  out.content = Trim(a.content + b.content);
  out.calls = std::move(a.calls);
  for (ToolCall& c : b.calls) out.calls.push_back(std::move(c));
  return out;
}

ToolCallStreamParser::Delta ToolCallStreamParser::Feed(std::string_view text) {
  buffer_.append(text);
  Delta out;
  Drain(&out, /*at_end=*/false);
  return out;
}

ToolCallStreamParser::Delta ToolCallStreamParser::Finish() {
  Delta out;
  Drain(&out, /*at_end=*/true);
  return out;
}

void ToolCallStreamParser::Emit(std::string_view text, Delta* out) {
  // Whitespace is held back until non-space text follows, so whitespace around tool-call blocks
  // (and at the ends) never reaches the content.
  const size_t last = text.find_last_not_of(" \t\r\n");
  if (last == std::string_view::npos) {
    if (content_started_) pending_space_.append(text);
    return;
  }
  std::string_view body = text.substr(0, last + 1);
  if (!content_started_) body.remove_prefix(body.find_first_not_of(" \t\r\n"));
  out->content += pending_space_;
  out->content.append(body);
  pending_space_ = std::string(text.substr(last + 1));
  content_started_ = true;
}

void ToolCallStreamParser::Drain(Delta* out, bool at_end) {
  for (;;) {
    if (!in_block_) {
      const size_t open = buffer_.find(kOpen);
      if (open == std::string::npos) {
        const size_t keep = at_end ? 0 : PartialTagSuffix(buffer_, kOpen);
        Emit(std::string_view(buffer_).substr(0, buffer_.size() - keep), out);
        buffer_.erase(0, buffer_.size() - keep);
        return;
      }
      Emit(std::string_view(buffer_).substr(0, open), out);
      pending_space_.clear();
      buffer_.erase(0, open + kOpen.size());
      in_block_ = true;
    }
    const size_t close = buffer_.find(kClose);
    if (close == std::string::npos && !at_end) return;
    const std::string body = buffer_.substr(0, close == std::string::npos ? buffer_.size() : close);
    std::optional<ToolCall> call = ParseBlock(body);
    if (call) {
      call->index = next_index_++;
      out->calls.push_back(std::move(*call));
    } else {
      Emit(std::string(kOpen) + body + (close == std::string::npos ? "" : std::string(kClose)),
           out);
    }
    buffer_.erase(0, close == std::string::npos ? buffer_.size() : close + kClose.size());
    in_block_ = false;
    if (buffer_.empty()) return;
  }
}

StatusOr<std::string> ToolCallGrammarSpec(std::string_view tools_json,
                                          std::optional<std::string> function_name) {
  TS_RETURN_IF_ERROR(CheckJsonNesting(tools_json, "'tools'"));
  const auto tools = nlohmann::ordered_json::parse(tools_json, nullptr, /*allow_exceptions=*/false);
  if (!tools.is_array() || tools.empty())
    return InvalidArgumentError("'tools' must be a non-empty array");
  nlohmann::ordered_json functions = nlohmann::ordered_json::array();
  for (const auto& t : tools) {
    const nlohmann::ordered_json* f = &t;
    if (t.is_object() && t.contains("function")) f = &t["function"];
    if (!f->is_object() || !f->contains("name") || !(*f)["name"].is_string()) {
      return InvalidArgumentError("each tool needs a function with a name");
    }
    const std::string name = (*f)["name"].get<std::string>();
    if (function_name && name != *function_name) continue;
    nlohmann::ordered_json entry;
    entry["name"] = name;
    entry["parameters"] =
        f->contains("parameters") ? (*f)["parameters"] : nlohmann::ordered_json{{"type", "object"}};
    functions.push_back(std::move(entry));
  }
  if (functions.empty()) {
    return InvalidArgumentError("tool_choice names function '{}', which is not in 'tools'",
                                function_name.value_or(""));
  }
  nlohmann::ordered_json spec;
  spec["functions"] = std::move(functions);
  spec["multiple"] = !function_name.has_value();
  return spec.dump();
}

}  // namespace tinyserve::structured
