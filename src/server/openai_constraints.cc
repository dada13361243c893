#include "server/openai_constraints.h"

#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

#include "structured/tool_calls.h"
#include "tokenizer/chat_template_json.h"

namespace tinyserve::openai_parse {
namespace {

using structured::GrammarKind;

// A schema given as an object (or a boolean schema), or as JSON text (vLLM accepts both).
std::string SchemaText(const Json& schema, const std::string& param) {
  if (schema.is_object() || schema.is_boolean()) return schema.dump();
  if (schema.is_string()) {
    auto parsed = ParseUntrustedJson(schema.get<std::string>());
    if (!parsed.ok()) Fail(param, fmt::format("'{}': {}", param, parsed.status().message()));
    if (!(parsed->is_object() || parsed->is_boolean()))
      Fail(param, fmt::format("'{}' is not a JSON Schema object", param));
    return parsed->dump();
  }
  Fail(param, fmt::format("'{}' must be a JSON Schema object", param));
}

std::string ChoiceText(const Json& choices, const std::string& param) {
  if (!choices.is_array() || choices.empty())
    Fail(param, fmt::format("'{}' must be a non-empty list of strings", param));
  for (const Json& c : choices)
    if (!c.is_string()) Fail(param, fmt::format("'{}' entries must be strings", param));
  return choices.dump();
}

std::string StringOf(const Json& v, const std::string& param) {
  if (!v.is_string() || v.get<std::string>().empty())
    Fail(param, fmt::format("'{}' must be a non-empty string", param));
  return v.get<std::string>();
}

// Every way a request can ask for structured output; at most one may be used.
std::vector<OutputConstraint> FindConstraints(const Json& body) {
  std::vector<OutputConstraint> found;
  auto add = [&](GrammarKind kind, std::string text, std::string param) {
    found.push_back({kind, std::move(text), std::move(param)});
  };
  if (const Json* rf = Field(body, "response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      Fail("response_format", "'response_format' must be an object with a string 'type'");
    const std::string type = (*rf)["type"].get<std::string>();
    if (type == "json_object") {
      add(GrammarKind::kJsonObject, "", "response_format");
    } else if (type == "json_schema") {
      const Json* js = Field(*rf, "json_schema");
      if (js == nullptr || !js->is_object())
        Fail("response_format", "response_format 'json_schema' must be an object");
      const Json* schema = Field(*js, "schema");
      // OpenAI: a json_schema without a schema allows any JSON object.
      if (schema == nullptr) {
        add(GrammarKind::kJsonObject, "", "response_format");
      } else {
        add(GrammarKind::kJsonSchema, SchemaText(*schema, "response_format"), "response_format");
      }
    } else if (type != "text") {
      Fail("response_format", fmt::format("unknown response_format type '{}'", type));
    }
  }
  if (const Json* so = Field(body, "structured_outputs")) {
    if (!so->is_object()) Fail("structured_outputs", "'structured_outputs' must be an object");
    for (const auto& [key, value] : so->items()) {
      if (value.is_null()) continue;
      const std::string param = "structured_outputs." + key;
      if (key == "json") {
        add(GrammarKind::kJsonSchema, SchemaText(value, param), param);
      } else if (key == "regex") {
        add(GrammarKind::kRegex, StringOf(value, param), param);
      } else if (key == "choice") {
        add(GrammarKind::kChoice, ChoiceText(value, param), param);
      } else if (key == "grammar") {
        add(GrammarKind::kGbnf, StringOf(value, param), param);
      } else if (key == "json_object") {
        if (!value.is_boolean()) Fail(param, fmt::format("'{}' must be a boolean", param));
        if (value.get<bool>()) add(GrammarKind::kJsonObject, "", param);
      } else if (key == "disable_any_whitespace" || key == "disable_fallback" ||
                 key == "disable_additional_properties") {
        if (!value.is_boolean()) Fail(param, fmt::format("'{}' must be a boolean", param));
      } else {
        Fail(param, fmt::format("structured_outputs '{}' is not supported (supported: json, "
                                "regex, choice, grammar, json_object)",
                                key));
      }
    }
  }
  if (const Json* v = Field(body, "guided_json"))
    add(GrammarKind::kJsonSchema, SchemaText(*v, "guided_json"), "guided_json");
  if (const Json* v = Field(body, "guided_regex"))
    add(GrammarKind::kRegex, StringOf(*v, "guided_regex"), "guided_regex");
  if (const Json* v = Field(body, "guided_choice"))
    add(GrammarKind::kChoice, ChoiceText(*v, "guided_choice"), "guided_choice");
  if (const Json* v = Field(body, "guided_grammar"))
    add(GrammarKind::kGbnf, StringOf(*v, "guided_grammar"), "guided_grammar");
  if (const Json* v = Field(body, "json_schema"))  // llama.cpp
    add(GrammarKind::kJsonSchema, SchemaText(*v, "json_schema"), "json_schema");
  if (const Json* v = Field(body, "grammar"))  // llama.cpp GBNF
    add(GrammarKind::kGbnf, StringOf(*v, "grammar"), "grammar");
  GetString(body, "guided_decoding_backend", 64);  // accepted; tinyserve has one backend
  if (Field(body, "guided_whitespace_pattern"))
    Fail("guided_whitespace_pattern", "'guided_whitespace_pattern' is not supported");
  return found;
}

// tools + tool_choice (chat). Returns the tool-call constraint for "required" / a named
// function; sets parse_tool_calls; drops the tools from the prompt for "none" (as vLLM does).

}  // namespace

std::optional<OutputConstraint> ParseTools(Json& body, ParsedRequest* out) {
  const Json* tools = Field(body, "tools");
  const Json* choice = Field(body, "tool_choice");
  if (tools != nullptr) {
    if (!tools->is_array()) Fail("tools", "'tools' must be a list");
    if (tools->size() > 128) Fail("tools", "at most 128 tools");
    for (const Json& t : *tools) {
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") ||
          !t["function"]["name"].is_string())
        Fail("tools", "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
  }
  const bool has_tools = tools != nullptr && !tools->empty();
  std::string mode = has_tools ? "auto" : "none";
  std::optional<std::string> function;
  if (choice != nullptr) {
    if (choice->is_string()) {
      mode = choice->get<std::string>();
      if (mode != "none" && mode != "auto" && mode != "required")
        Fail("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or a function");
    } else if (choice->is_object() && choice->contains("function") &&
               (*choice)["function"].is_object() && (*choice)["function"].contains("name") &&
               (*choice)["function"]["name"].is_string()) {
      mode = "function";
      function = (*choice)["function"]["name"].get<std::string>();
    } else {
      Fail("tool_choice",
           "'tool_choice' must be a string or {\"type\": \"function\", "
           "\"function\": {\"name\": ...}}");
    }
    if (mode != "none" && !has_tools)
      Fail("tool_choice",
           fmt::format("tool_choice '{}' needs a non-empty 'tools' list", function.value_or(mode)));
  }
  if (mode == "none") {
    body.erase("tools");
    return std::nullopt;
  }
  out->parse_tool_calls = true;
  if (mode == "auto") return std::nullopt;
  auto spec = structured::ToolCallGrammarSpec(tools->dump(), function);
  if (!spec.ok()) Fail("tool_choice", spec.status().message());
  return OutputConstraint{GrammarKind::kToolCalls, std::move(*spec), "tool_choice"};
}

void ParseConstraints(Json& body, ParsedRequest* out) {
  std::vector<OutputConstraint> found = FindConstraints(body);
  if (out->endpoint == Endpoint::kChat) {
    if (auto tools = ParseTools(body, out)) found.push_back(std::move(*tools));
  } else if (Field(body, "tools") || Field(body, "tool_choice")) {
    Fail("tools", "'tools' and 'tool_choice' are for /v1/chat/completions");
  }
  if (found.size() > 1)
    Fail(found[1].param, fmt::format("'{}' and '{}' both constrain the output; use one",
                                     found[0].param, found[1].param));
  if (!found.empty()) out->constraint = std::move(found[0]);
}

}  // namespace tinyserve::openai_parse
