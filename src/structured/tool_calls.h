// Qwen2.5 tool calls: parses model text holding
//   <tool_call>\n{"name": "fn", "arguments": {...}}\n</tool_call>
// blocks (possibly several) into OpenAI tool_calls, at once or incrementally while streaming,
// and builds the grammar spec that forces such blocks (tool_choice "required" or a named
// function). Pure functions and a per-request parser object (one thread at a time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace tinyserve::structured {

struct ToolCall {
  int32_t index = 0;  // position among the choice's calls
  std::string name;
  std::string arguments;  // JSON text of the arguments object (OpenAI sends it as a string)
};

struct ParsedToolCalls {
  std::string content;  // text outside the tool-call blocks, trimmed
  std::vector<ToolCall> calls;
};

// Whole output -> content + calls. A block whose JSON does not parse (or lacks "name") stays in
// the content, as vLLM's hermes parser does; so does an unterminated block that does not parse.
ParsedToolCalls ParseToolCalls(std::string_view text);

// Incremental form for streaming: feed text deltas, get content deltas and completed calls.
// Text that might be the start of "<tool_call>" is held back until it is decided.
class ToolCallStreamParser {
 public:
  struct Delta {
    std::string content;
    std::vector<ToolCall> calls;
  };
  Delta Feed(std::string_view text);
  // End of output: flushes held-back text (and an unterminated block, parsed if possible).
  Delta Finish();
  int32_t num_calls() const { return next_index_; }

 private:
  void Drain(Delta* out, bool at_end);
  void Emit(std::string_view text, Delta* out);
  std::string buffer_;
  std::string pending_space_;
  bool in_block_ = false;
  bool content_started_ = false;
  int32_t next_index_ = 0;
};

// The GrammarKind::kToolCalls spec for `tools_json` (the OpenAI request's "tools" array, as JSON
// text so property order survives) and
// tool_choice: "required" (any of the tools, one or more calls) or a function name (exactly one
// call of it). Errors if the named function is not among the tools.
[[nodiscard]] StatusOr<std::string> ToolCallGrammarSpec(std::string_view tools_json,
                                                        std::optional<std::string> function_name);

}  // namespace tinyserve::structured
