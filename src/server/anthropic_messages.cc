#include "server/anthropic_messages.h"

#include <fmt/format.h>

#include <utility>

#include "server/openai_fields.h"

namespace tinyserve {
namespace {

using openai_parse::Fail;
using openai_parse::Field;
using openai_parse::Json;
using openai_parse::RequiredString;

std::string BlockType(const Json& block, const std::string& param) {
  const Json* type = block.is_object() ? Field(block, "type") : nullptr;
  if (type == nullptr || !type->is_string())
    Fail(param, "each content block must be an object with a string 'type'");
  return type->get<std::string>();
}

// `system` or a tool_result's content: a string, or text blocks joined by blank lines.
std::string PlainText(const Json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) Fail(param, "must be a string or a list of text blocks");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string where = fmt::format("{}[{}]", param, i);
    if (BlockType(content[i], where) != "text") Fail(where, "only text blocks are supported here");
    if (!text.empty()) text += "\n\n";
    text += RequiredString(content[i], "text", where);
  }
  return text;
}

// One Messages turn as chat messages: a user turn's tool_result blocks become tool messages and
// its text blocks a user message; an assistant turn's text and tool_use blocks one assistant
// message with tool calls. Thinking blocks a client sends back are dropped (this model has
// none to continue); images and documents are refused.
void AddTurn(const Json& message, const std::string& param, Json* out) {
  if (!message.is_object()) Fail(param, "each message must be an object");
  const std::string role = RequiredString(message, "role", param);
  if (role != "user" && role != "assistant" && role != "system")
    Fail(param, fmt::format("unknown message role '{}'", role));
  const Json* content = Field(message, "content");
  if (content == nullptr) Fail(param, "a message needs 'content'");
  if (content->is_string() || role == "system") {
    out->push_back({{"role", role}, {"content", PlainText(*content, param + ".content")}});
    return;
  }
  if (!content->is_array()) Fail(param, "'content' must be a string or a list of blocks");
  Json text_parts = Json::array();
  Json calls = Json::array();
  auto flush_text = [&] {
    if (text_parts.empty()) return;
    out->push_back({{"role", role}, {"content", std::exchange(text_parts, Json::array())}});
  };
  for (size_t i = 0; i < content->size(); ++i) {
    const Json& block = (*content)[i];
    const std::string where = fmt::format("{}.content[{}]", param, i);
    const std::string type = BlockType(block, where);
    if (type == "text") {
      text_parts.push_back({{"type", "text"}, {"text", RequiredString(block, "text", where)}});
    } else if (type == "tool_use" && role == "assistant") {
      const Json* input = Field(block, "input");
      calls.push_back({{"id", RequiredString(block, "id", where)},
                       {"type", "function"},
                       {"function",
                        {{"name", RequiredString(block, "name", where)},
                         {"arguments", input != nullptr ? input->dump() : "{}"}}}});
    } else if (type == "tool_result" && role == "user") {
      flush_text();
      const Json* result = Field(block, "content");
      out->push_back(
          {{"role", "tool"},
           {"tool_call_id", RequiredString(block, "tool_use_id", where)},
           {"content", result != nullptr ? PlainText(*result, where + ".content") : ""}});
    } else if (type != "thinking" && type != "redacted_thinking") {
      Fail(where, fmt::format("content block type '{}' is not supported in a {} message: text, "
                              "tool_use (assistant) and tool_result (user) only",
                              type, role));
    }
  }
  if (calls.empty()) return flush_text();
  std::string text;
  for (const Json& part : text_parts) text += part["text"].get<std::string>();
  out->push_back({{"role", "assistant"},
                  {"content", text.empty() ? Json(nullptr) : Json(text)},
                  {"tool_calls", std::move(calls)}});
}

Json ChatMessages(const Json& body) {
  Json messages = Json::array();
  if (const Json* system = Field(body, "system"))
    messages.push_back({{"role", "system"}, {"content", PlainText(*system, "system")}});
  const Json* turns = Field(body, "messages");
  if (turns == nullptr || !turns->is_array() || turns->empty())
    Fail("messages", "'messages' must be a non-empty list");
  for (size_t i = 0; i < turns->size(); ++i)
    AddTurn((*turns)[i], fmt::format("messages[{}]", i), &messages);
  return messages;
}

// Client tools (name, description, input_schema) as chat function tools; Anthropic's server
// tools (web search, code execution, ...) cannot run here.
Json ClientToolsAsChatTools(const Json& tools) {
  if (!tools.is_array()) Fail("tools", "'tools' must be a list");
  Json out = Json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& tool = tools[i];
    const std::string param = fmt::format("tools[{}]", i);
    if (!tool.is_object()) Fail(param, "each tool must be an object");
    if (const Json* type = Field(tool, "type"); type != nullptr && *type != "custom")
      Fail(param, fmt::format("tool type {} is not supported: only client tools (name, "
                              "description, input_schema)",
                              type->dump()));
    const Json* schema = Field(tool, "input_schema");
    if (schema == nullptr || !schema->is_object())
      Fail(param, "a tool needs an 'input_schema' object");
    Json function = {{"name", RequiredString(tool, "name", param)}};
    if (const Json* description = Field(tool, "description"))
      function["description"] = *description;
    function["parameters"] = *schema;
    if (const Json* strict = Field(tool, "strict")) function["strict"] = *strict;
    out.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

// tool_choice {type: auto | any | tool | none} into `chat`.
void AddToolChoice(const Json& choice, Json* chat) {
  if (!choice.is_object()) Fail("tool_choice", "'tool_choice' must be an object");
  const std::string type = RequiredString(choice, "type", "tool_choice");
  if (type == "auto" || type == "none") {
    (*chat)["tool_choice"] = type;
  } else if (type == "any") {
    (*chat)["tool_choice"] = "required";
  } else if (type == "tool") {
    (*chat)["tool_choice"] = {
        {"type", "function"},
        {"function", {{"name", RequiredString(choice, "name", "tool_choice")}}}};
  } else {
    Fail("tool_choice", fmt::format("unknown tool_choice type '{}'", type));
  }
  if (const Json* one = Field(choice, "disable_parallel_tool_use"); one != nullptr && *one == true)
    (*chat)["parallel_tool_calls"] = false;
}

// output_config.format (and its earlier beta spelling, output_format) as a response_format.
Json OutputFormatAsResponseFormat(const Json& format, const std::string& param) {
  if (!format.is_object() || RequiredString(format, "type", param) != "json_schema")
    Fail(param, "the output format must be {\"type\": \"json_schema\", \"schema\": {...}}");
  const Json* schema = Field(format, "schema");
  if (schema == nullptr) Fail(param, "the output format needs a 'schema'");
  return {{"type", "json_schema"}, {"json_schema", {{"name", "output"}, {"schema", *schema}}}};
}

Json Translate(const Json& body, bool count_only) {
  if (!body.is_object()) Fail("", "the request body must be a JSON object");
  Json chat = {{"messages", ChatMessages(body)}};
  for (const char* key :
       {"model", "temperature", "top_p", "top_k", "stream", "timeout", "priority"})
    if (const Json* v = Field(body, key)) chat[key] = *v;
  if (const Json* max = Field(body, "max_tokens")) {
    chat["max_tokens"] = *max;
  } else if (!count_only) {
    Fail("max_tokens", "'max_tokens' is required");
  }
  if (const Json* stop = Field(body, "stop_sequences")) chat["stop"] = *stop;
  if (const Json* metadata = Field(body, "metadata"); metadata != nullptr && metadata->is_object())
    if (const Json* user = Field(*metadata, "user_id")) chat["user"] = *user;
  if (const Json* tools = Field(body, "tools"); tools != nullptr && !tools->empty())
    chat["tools"] = ClientToolsAsChatTools(*tools);
  if (const Json* choice = Field(body, "tool_choice")) AddToolChoice(*choice, &chat);
  const Json* config = Field(body, "output_config");
  if (config != nullptr && !config->is_object())
    Fail("output_config", "'output_config' must be an object");
  if (const Json* format = config != nullptr ? Field(*config, "format") : nullptr) {
    chat["response_format"] = OutputFormatAsResponseFormat(*format, "output_config.format");
  } else if (const Json* beta = Field(body, "output_format")) {
    chat["response_format"] = OutputFormatAsResponseFormat(*beta, "output_format");
  }
  // `thinking` and `output_config.effort` ask for reasoning this model does not do: accepted
  // and ignored, as vLLM and llama-server do for a model without a reasoning parser.
  if (const Json* stream = Field(body, "stream"); stream != nullptr && *stream == true)
    chat["stream_options"] = {{"include_usage", true}};
  return chat;
}

// Anthropic's error type for an error of ours.
std::string_view AnthropicType(std::string_view type, int http_status) {
  switch (http_status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    default:
      break;
  }
  if (type == "service_unavailable") return "overloaded_error";
  if (type == "timeout") return "timeout_error";
  return http_status < 500 ? "invalid_request_error" : "api_error";
}

Json ErrorJson(std::string_view type, std::string_view message) {
  return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
}

std::string Serialize(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::variant<Json, ApiError> MessagesToChatBody(const Json& body, bool count_only) {
  try {
    return Translate(body, count_only);
  } catch (openai_parse::Invalid& invalid) {
    return std::move(invalid.error);
  }
}

ApiError MessagesError(ApiError chat_error) {
  std::string& param = chat_error.param;
  if (param == "stop") {
    param = "stop_sequences";
  } else if (param == "response_format") {
    param = "output_config.format";
  } else if (param == "user") {
    param = "metadata.user_id";
  }
  return chat_error;
}

std::string AnthropicErrorBody(const ApiError& error) {
  // Anthropic's messages name the field first ("max_tokens: Field required"); ours name it
  // within the message when they do.
  const bool named = error.param.empty() || error.message.find(error.param) != std::string::npos;
  const std::string message =
      named ? error.message : fmt::format("{}: {}", error.param, error.message);
  return Serialize(ErrorJson(AnthropicType(error.type, error.http_status), message));
}

MessagesShaper::MessagesShaper(std::string model, std::string id, int64_t input_tokens,
                               int64_t max_tokens)
    : model_(std::move(model)),
      id_(std::move(id)),
      input_tokens_(input_tokens),
      max_tokens_(max_tokens) {}

Json MessagesShaper::Usage() const {
  // Anthropic counts cache reads apart from input_tokens (the tokens computed afresh).
  return {{"input_tokens", input_tokens_ - cached_tokens_},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", cached_tokens_},
          {"output_tokens", output_tokens_}};
}

std::string MessagesShaper::StopReason() const {
  // max_tokens was cut to what the context left when it asked for more.
  if (finish_reason_ == "length")
    return output_tokens_ < max_tokens_ ? "model_context_window_exceeded" : "max_tokens";
  if (finish_reason_ == "tool_calls") return "tool_use";
  // The chat request names no stop token ids, so a stop reason is one of its stop strings.
  if (!stop_sequence_.empty()) return "stop_sequence";
  return "end_turn";
}

Json MessagesShaper::Message(bool final) const {
  Json content = Json::array();
  if (final) {
    content = blocks_;
    // A tool use's input is an object, not the arguments' text the chat stream carries.
    for (size_t t = 0; t < tool_uses_.size(); ++t) {
      Json input = Json::parse(tool_uses_[t].arguments, nullptr, /*allow_exceptions=*/false);
      content[tool_use_block_[t]]["input"] =
          input.is_discarded() ? Json(tool_uses_[t].arguments) : std::move(input);
    }
  }
  Json usage = Usage();
  if (!final) usage = {{"input_tokens", input_tokens_}, {"output_tokens", 0}};
  return {
      {"id", id_},
      {"type", "message"},
      {"role", "assistant"},
      {"model", model_},
      {"content", std::move(content)},
      {"stop_reason", final ? Json(StopReason()) : Json(nullptr)},
      {"stop_sequence", final && !stop_sequence_.empty() ? Json(stop_sequence_) : Json(nullptr)},
      {"usage", std::move(usage)}};
}

std::string MessagesShaper::Event(std::string_view type, const Json& data) {
  Json event = {{"type", type}};
  for (const auto& [key, value] : data.items()) event[key] = value;
  return fmt::format("event: {}\ndata: {}\n\n", type, Serialize(event));
}

void MessagesShaper::TakeFinish(const Json& choice) {
  const Json* finish = Field(choice, "finish_reason");
  if (finish != nullptr && finish->is_string()) finish_reason_ = finish->get<std::string>();
  const Json* stop = Field(choice, "stop_reason");
  if (stop != nullptr && stop->is_string()) stop_sequence_ = stop->get<std::string>();
}

void MessagesShaper::TakeUsage(const Json& usage) {
  output_tokens_ = usage.value("completion_tokens", int64_t{0});
  if (const Json* details = Field(usage, "prompt_tokens_details"))
    cached_tokens_ = details->value("cached_tokens", int64_t{0});
}

std::string MessagesShaper::FromCompletion(std::string_view chat) {
  const Json completion = Json::parse(chat);
  if (const Json* choices = Field(completion, "choices"); choices != nullptr && !choices->empty()) {
    const Json& choice = (*choices)[0];
    TakeFinish(choice);
    // The same blocks the stream would have built.
    if (const Json* message = Field(choice, "message")) TakeDelta(*message);
  }
  if (const Json* usage = Field(completion, "usage")) TakeUsage(*usage);
  return Serialize(Message(/*final=*/true));
}

std::string MessagesShaper::Start() {
  if (started_) return "";
  started_ = true;
  return Event("message_start", {{"message", Message(/*final=*/false)}});
}

std::string MessagesShaper::CloseBlock() {
  if (open_ == Block::kNone) return "";
  open_ = Block::kNone;
  return Event("content_block_stop", {{"index", blocks_.size() - 1}});
}

std::string MessagesShaper::TakeDelta(const Json& delta) {
  std::string out;
  const Json* content = Field(delta, "content");
  if (content != nullptr && content->is_string() &&
      !content->get_ref<const std::string&>().empty()) {
    const std::string& text = content->get_ref<const std::string&>();
    if (open_ != Block::kText) {
      out += CloseBlock();
      blocks_.push_back({{"type", "text"}, {"text", ""}});
      out += Event("content_block_start",
                   {{"index", blocks_.size() - 1}, {"content_block", blocks_.back()}});
      open_ = Block::kText;
    }
    blocks_.back()["text"].get_ref<std::string&>() += text;
    out += Event("content_block_delta", {{"index", blocks_.size() - 1},
                                         {"delta", {{"type", "text_delta"}, {"text", text}}}});
  }
  const Json* calls = Field(delta, "tool_calls");
  if (calls == nullptr) return out;
  for (size_t i = 0; i < calls->size(); ++i) {
    const Json& call = (*calls)[i];
    // Chunks name a call by its index; a completion lists each once.
    const size_t index = call.contains("index") ? call["index"].get<size_t>() : i;
    const Json* function = Field(call, "function");
    if (index >= tool_uses_.size()) {
      out += CloseBlock();
      tool_uses_.resize(index + 1);
      ToolUse& use = tool_uses_[index];
      if (const Json* id = Field(call, "id")) use.id = id->get<std::string>();
      if (const Json* name = function ? Field(*function, "name") : nullptr)
        use.name = name->get<std::string>();
      tool_use_block_.resize(index + 1, static_cast<int>(blocks_.size()));
      blocks_.push_back(
          {{"type", "tool_use"}, {"id", use.id}, {"name", use.name}, {"input", Json::object()}});
      out += Event("content_block_start",
                   {{"index", blocks_.size() - 1}, {"content_block", blocks_.back()}});
      open_ = Block::kToolUse;
    }
    const Json* args = function ? Field(*function, "arguments") : nullptr;
    if (args == nullptr || !args->is_string() || args->get_ref<const std::string&>().empty())
      continue;
    tool_uses_[index].arguments += args->get<std::string>();
    out += Event("content_block_delta",
                 {{"index", tool_use_block_[index]},
                  {"delta", {{"type", "input_json_delta"}, {"partial_json", *args}}}});
  }
  return out;
}

std::string MessagesShaper::FromChunk(std::string_view payload) {
  const Json chunk = Json::parse(payload);
  if (const Json* error = Field(chunk, "error")) {
    const std::string type = error->value("type", std::string());
    error_ = Serialize(ErrorJson(AnthropicType(type, type == "invalid_request_error" ? 400 : 500),
                                 error->value("message", std::string())));
    return "";
  }
  std::string out = Start();
  const Json* choices = Field(chunk, "choices");
  if (choices == nullptr || choices->empty()) {
    if (const Json* usage = Field(chunk, "usage")) TakeUsage(*usage);
    return out;
  }
  const Json& choice = (*choices)[0];
  if (const Json* delta = Field(choice, "delta")) out += TakeDelta(*delta);
  TakeFinish(choice);
  return out;
}

std::string MessagesShaper::Finish() {
  std::string out = Start();
  // A failure ends the stream with Anthropic's error event, which the SDKs raise.
  if (!error_.empty()) return out + fmt::format("event: error\ndata: {}\n\n", error_);
  out += CloseBlock();
  Json usage = Usage();
  usage.erase("cache_creation_input_tokens");
  out +=
      Event("message_delta",
            {{"delta",
              {{"stop_reason", StopReason()},
               {"stop_sequence", stop_sequence_.empty() ? Json(nullptr) : Json(stop_sequence_)}}},
             {"usage", std::move(usage)}});
  return out + Event("message_stop", Json::object());
}

}  // namespace tinyserve
