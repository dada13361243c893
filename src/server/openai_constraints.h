// Structured output and tools of a request body (response_format, structured_outputs, guided_*,
// llama.cpp's json_schema / grammar; tools + tool_choice), checked and turned into the one
// OutputConstraint a request may carry (openai_api.h). Internal to the parser: errors are
// openai_parse::Invalid (openai_fields.h).
#pragma once

#include <optional>

#include "server/openai_api.h"
#include "server/openai_fields.h"

namespace tinyserve::openai_parse {

// Sets out->constraint (at most one form may be given) and, for chat with tools,
// out->parse_tool_calls. tool_choice "none" erases the tools from body, as vLLM leaves them out
// of the prompt: call it before the messages are rendered.
void ParseConstraints(Json& body, ParsedRequest* out);
// tools + tool_choice alone (chat): the tool-call constraint of "required" or a named function.
std::optional<OutputConstraint> ParseTools(Json& body, ParsedRequest* out);

}  // namespace tinyserve::openai_parse
