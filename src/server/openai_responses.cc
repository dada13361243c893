#include "server/openai_responses.h"

#include <fmt/format.h>

#include <utility>

#include "server/openai_fields.h"

namespace tinyserve {
namespace {

using openai_parse::Fail;
using openai_parse::Field;
using openai_parse::Json;
using openai_parse::RequiredString;

// A message's content: a string, or its text parts as chat text parts.
Json MessageContent(const Json& content, const std::string& param) {
  if (content.is_string()) return content;
  if (!content.is_array()) Fail(param, "'content' must be a string or a list of parts");
  Json parts = Json::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const Json& part = content[j];
    const std::string where = fmt::format("{}.content[{}]", param, j);
    const Json* type = part.is_object() ? Field(part, "type") : nullptr;
    if (type == nullptr || !type->is_string())
      Fail(where, "each content part must be an object with a string 'type'");
    const std::string t = type->get<std::string>();
    if (t != "input_text" && t != "output_text" && t != "text")
      Fail(where, fmt::format("content part type '{}' is not supported: text only", t));
    parts.push_back({{"type", "text"}, {"text", RequiredString(part, "text", where)}});
  }
  return parts;
}

// `input` as chat messages, after the system message of `instructions` if any.
Json Messages(const Json& body) {
  Json messages = Json::array();
  if (const Json* instructions = Field(body, "instructions")) {
    if (!instructions->is_string()) Fail("instructions", "'instructions' must be a string");
    messages.push_back({{"role", "system"}, {"content", *instructions}});
  }
  const Json* input = Field(body, "input");
  if (input == nullptr) Fail("input", "'input' is required");
  if (input->is_string()) {
    messages.push_back({{"role", "user"}, {"content", *input}});
    return messages;
  }
  if (!input->is_array() || input->empty())
    Fail("input", "'input' must be a string or a non-empty list of items");
  for (size_t i = 0; i < input->size(); ++i) {
    const Json& item = (*input)[i];
    const std::string param = fmt::format("input[{}]", i);
    if (!item.is_object()) Fail(param, "each input item must be an object");
    const Json* type_field = Field(item, "type");
    if (type_field != nullptr && !type_field->is_string())
      Fail(param, "an input item's 'type' must be a string");
    const std::string type = type_field ? type_field->get<std::string>() : "message";
    if (type == "message") {
      const std::string role = RequiredString(item, "role", param);
      if (role != "user" && role != "system" && role != "developer" && role != "assistant")
        Fail(param, fmt::format("unknown message role '{}'", role));
      const Json* content = Field(item, "content");
      if (content == nullptr) Fail(param, "a message needs 'content'");
      messages.push_back({{"role", role}, {"content", MessageContent(*content, param)}});
    } else if (type == "function_call") {
      Json call = {{"id", RequiredString(item, "call_id", param)},
                   {"type", "function"},
                   {"function",
                    {{"name", RequiredString(item, "name", param)},
                     {"arguments", RequiredString(item, "arguments", param)}}}};
      // Calls in a row are one assistant turn, as the model made them.
      if (!messages.empty() && messages.back()["role"] == "assistant" &&
          messages.back().contains("tool_calls")) {
        messages.back()["tool_calls"].push_back(std::move(call));
      } else {
        messages.push_back(
            {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", Json::array({call})}});
      }
    } else if (type == "function_call_output") {
      messages.push_back({{"role", "tool"},
                          {"tool_call_id", RequiredString(item, "call_id", param)},
                          {"content", RequiredString(item, "output", param)}});
    } else {
      Fail(param, fmt::format("input item type '{}' is not supported", type));
    }
  }
  return messages;
}

// Responses' flat function tools as chat tools.
Json ChatTools(const Json& tools) {
  if (!tools.is_array()) Fail("tools", "'tools' must be a list");
  Json out = Json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& tool = tools[i];
    const std::string param = fmt::format("tools[{}]", i);
    if (!tool.is_object() || RequiredString(tool, "type", param) != "function")
      Fail(param, "only function tools are supported");
    Json function = {{"name", RequiredString(tool, "name", param)}};
    for (const char* key : {"description", "parameters", "strict"})
      if (const Json* v = Field(tool, key)) function[key] = *v;
    out.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

Json ChatToolChoice(const Json& choice) {
  if (choice.is_string()) return choice;
  if (choice.is_object() && choice.value("type", "") == "function")
    return {{"type", "function"},
            {"function", {{"name", RequiredString(choice, "name", "tool_choice")}}}};
  Fail("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a function");
}

// text.format as the chat response_format (null for plain text).
Json ChatResponseFormat(const Json& text) {
  if (!text.is_object()) Fail("text", "'text' must be an object");
  const Json* format = Field(text, "format");
  if (format == nullptr) return nullptr;
  if (!format->is_object()) Fail("text.format", "'text.format' must be an object");
  const std::string type = RequiredString(*format, "type", "text.format");
  if (type == "text") return nullptr;
  if (type == "json_object") return {{"type", "json_object"}};
  if (type != "json_schema")
    Fail("text.format", fmt::format("unknown text.format type '{}'", type));
  const Json* schema = Field(*format, "schema");
  if (schema == nullptr) Fail("text.format", "text.format 'json_schema' needs a 'schema'");
  Json js = {{"name", format->value("name", "response")}, {"schema", *schema}};
  if (const Json* strict = Field(*format, "strict")) js["strict"] = *strict;
  return {{"type", "json_schema"}, {"json_schema", std::move(js)}};
}

Json Translate(const Json& body) {
  if (!body.is_object()) Fail("", "the request body must be a JSON object");
  if (Field(body, "previous_response_id") != nullptr)
    Fail("previous_response_id",
         "'previous_response_id' needs stored responses, which this server does not keep: send "
         "the conversation as 'input' items");
  if (const Json* background = Field(body, "background");
      background != nullptr && *background != false)
    Fail("background", "background responses are not supported");
  if (const Json* include = Field(body, "include"); include != nullptr && !include->empty())
    Fail("include", "'include' is not supported");
  Json chat = {{"messages", Messages(body)}};
  // Fields of the same name and meaning (the sampling extras vLLM accepts here too).
  for (const char* key : {"model", "temperature", "top_p", "stream", "user", "parallel_tool_calls",
                          "seed", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                          "frequency_penalty", "stop", "priority", "timeout", "cache_salt"})
    if (const Json* v = Field(body, key)) chat[key] = *v;
  if (const Json* max = Field(body, "max_output_tokens")) chat["max_completion_tokens"] = *max;
  if (const Json* text = Field(body, "text")) {
    Json format = ChatResponseFormat(*text);
    if (!format.is_null()) chat["response_format"] = std::move(format);
  }
  if (const Json* tools = Field(body, "tools"); tools != nullptr && !tools->empty())
    chat["tools"] = ChatTools(*tools);
  if (const Json* choice = Field(body, "tool_choice"))
    chat["tool_choice"] = ChatToolChoice(*choice);
  // The usage of a stream arrives in its last chunk, for response.completed.
  if (const Json* stream = Field(body, "stream"); stream != nullptr && *stream == true)
    chat["stream_options"] = {{"include_usage", true}};
  return chat;
}

}  // namespace

std::variant<Json, ApiError> ResponsesToChatBody(const Json& body) {
  try {
    return Translate(body);
  } catch (openai_parse::Invalid& invalid) {
    return std::move(invalid.error);
  }
}

ApiError ResponsesError(ApiError chat_error) {
  std::string& param = chat_error.param;
  if (param == "max_tokens" || param == "max_completion_tokens") {
    param = "max_output_tokens";
  } else if (param == "response_format") {
    param = "text.format";
  } else if (param == "messages") {
    param = "input";
  }
  return chat_error;
}

ResponsesShaper::ResponsesShaper(const Json& request, std::string model, std::string id,
                                 int64_t created)
    : model_(std::move(model)), id_(std::move(id)), created_(created) {
  message_id_ = "msg_" + id_.substr(id_.find('_') + 1);
  auto echo = [&](const char* key, const Json& fallback) {
    const Json* v = Field(request, key);
    settings_[key] = v != nullptr ? *v : fallback;
  };
  echo("instructions", nullptr);
  echo("max_output_tokens", nullptr);
  echo("metadata", Json::object());
  echo("parallel_tool_calls", true);
  settings_["previous_response_id"] = nullptr;
  settings_["reasoning"] = nullptr;
  settings_["store"] = false;  // nothing is kept
  echo("temperature", nullptr);
  echo("text", {{"format", {{"type", "text"}}}});
  echo("tool_choice", "auto");
  echo("tools", Json::array());
  echo("top_p", nullptr);
  echo("truncation", "disabled");
  echo("user", nullptr);
}

Json ResponsesShaper::MessageItem(std::string_view status) const {
  Json content = Json::array();
  if (status != "in_progress")
    content.push_back({{"type", "output_text"}, {"text", text_}, {"annotations", Json::array()}});
  return {{"type", "message"},
          {"id", message_id_},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

Json ResponsesShaper::FunctionCallItem(size_t i) const {
  return {{"type", "function_call"},
          {"id", fmt::format("fc_{}_{}", id_.substr(id_.find('_') + 1), i)},
          {"call_id", calls_[i].call_id},
          {"name", calls_[i].name},
          {"arguments", calls_[i].arguments},
          {"status", "completed"}};
}

Json ResponsesShaper::Response(std::string_view status) const {
  Json r = {{"id", id_},        {"object", "response"}, {"created_at", created_},
            {"status", status}, {"error", error_},      {"incomplete_details", nullptr},
            {"model", model_}};
  if (status == "incomplete") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
  Json output = Json::array();
  if (status != "in_progress") {
    const std::string_view item_status = status == "incomplete" ? "incomplete" : "completed";
    if (!text_.empty() || calls_.empty()) output.push_back(MessageItem(item_status));
    for (size_t i = 0; i < calls_.size(); ++i) output.push_back(FunctionCallItem(i));
  }
  r["output"] = std::move(output);
  for (const auto& [key, value] : settings_.items()) r[key] = value;
  r["usage"] = usage_;
  return r;
}

void ResponsesShaper::Take(const Json& choice, const char* part) {
  const Json* finish = Field(choice, "finish_reason");
  if (finish != nullptr && finish->is_string()) finish_reason_ = finish->get<std::string>();
  const Json* message = Field(choice, part);
  if (message == nullptr) return;
  if (const Json* content = Field(*message, "content"); content != nullptr && content->is_string())
    text_ += content->get<std::string>();
  const Json* calls = Field(*message, "tool_calls");
  if (calls == nullptr) return;
  for (size_t i = 0; i < calls->size(); ++i) {
    const Json& call = (*calls)[i];
    // Chunks name a call by its index; a completion lists each once.
    const size_t index = call.contains("index") ? call["index"].get<size_t>() : i;
    if (calls_.size() <= index) calls_.resize(index + 1);
    ToolCall& c = calls_[index];
    if (const Json* id = Field(call, "id")) c.call_id = id->get<std::string>();
    const Json* function = Field(call, "function");
    if (function == nullptr) continue;
    if (const Json* name = Field(*function, "name")) c.name += name->get<std::string>();
    if (const Json* args = Field(*function, "arguments")) c.arguments += args->get<std::string>();
  }
}

void ResponsesShaper::TakeUsage(const Json& usage) {
  const int64_t input = usage.value("prompt_tokens", int64_t{0});
  const int64_t output = usage.value("completion_tokens", int64_t{0});
  int64_t cached = 0;
  if (const Json* details = Field(usage, "prompt_tokens_details"))
    cached = details->value("cached_tokens", int64_t{0});
  usage_ = {{"input_tokens", input},
            {"input_tokens_details", {{"cached_tokens", cached}}},
            {"output_tokens", output},
            {"output_tokens_details", {{"reasoning_tokens", 0}}},
            {"total_tokens", input + output}};
}

std::string ResponsesShaper::FromCompletion(std::string_view chat) {
  const Json completion = Json::parse(chat);
  if (const Json* choices = Field(completion, "choices"); choices != nullptr && !choices->empty())
    Take((*choices)[0], "message");
  if (const Json* usage = Field(completion, "usage")) TakeUsage(*usage);
  return Response(finish_reason_ == "length" ? "incomplete" : "completed")
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ResponsesShaper::Event(std::string_view type, Json fields) {
  Json event = {{"type", type}, {"sequence_number", sequence_++}};
  for (auto& [key, value] : fields.items()) event[key] = std::move(value);
  return fmt::format("event: {}\ndata: {}\n\n", type,
                     event.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// Each event is made in its own statement: its sequence number is taken when it is made, and
// the operands of one + are evaluated in no fixed order.
std::string ResponsesShaper::Start() {
  if (started_) return "";
  started_ = true;
  std::string out = Event("response.created", {{"response", Response("in_progress")}});
  out += Event("response.in_progress", {{"response", Response("in_progress")}});
  return out;
}

std::string ResponsesShaper::OpenMessage() {
  if (message_open_) return "";
  message_open_ = true;
  std::string out = Event("response.output_item.added",
                          {{"output_index", 0}, {"item", MessageItem("in_progress")}});
  out += Event("response.content_part.added",
               {{"item_id", message_id_},
                {"output_index", 0},
                {"content_index", 0},
                {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", Json::array()}}}});
  return out;
}

std::string ResponsesShaper::FromChunk(std::string_view payload) {
  const Json chunk = Json::parse(payload);
  if (const Json* error = Field(chunk, "error")) {
    const Json* code = Field(*error, "code");
    error_ = {{"code", code != nullptr ? *code : Json("server_error")},
              {"message", error->value("message", std::string())}};
    return "";
  }
  std::string out = Start();
  const Json* choices = Field(chunk, "choices");
  if (choices == nullptr || choices->empty()) {
    if (const Json* usage = Field(chunk, "usage")) TakeUsage(*usage);
    return out;
  }
  const size_t text_before = text_.size();
  Take((*choices)[0], "delta");
  if (text_.size() > text_before) {
    out += OpenMessage();
    out += Event("response.output_text.delta", {{"item_id", message_id_},
                                                {"output_index", 0},
                                                {"content_index", 0},
                                                {"delta", text_.substr(text_before)},
                                                {"logprobs", Json::array()}});
  }
  return out;
}

std::string ResponsesShaper::Finish() {
  std::string out = Start();
  if (!error_.is_null()) return out + Event("response.failed", {{"response", Response("failed")}});
  const std::string status = finish_reason_ == "length" ? "incomplete" : "completed";
  // The output Response() lists: the message when it has text or nothing else came.
  if (!text_.empty() || calls_.empty()) out += OpenMessage();
  int output_index = 0;
  if (message_open_) {
    const Json part = {{"type", "output_text"}, {"text", text_}, {"annotations", Json::array()}};
    out += Event("response.output_text.done", {{"item_id", message_id_},
                                               {"output_index", 0},
                                               {"content_index", 0},
                                               {"text", text_},
                                               {"logprobs", Json::array()}});
    out += Event(
        "response.content_part.done",
        {{"item_id", message_id_}, {"output_index", 0}, {"content_index", 0}, {"part", part}});
    out += Event("response.output_item.done",
                 {{"output_index", 0},
                  {"item", MessageItem(status == "incomplete" ? "incomplete" : "completed")}});
    output_index = 1;
  }
  for (size_t i = 0; i < calls_.size(); ++i, ++output_index) {
    Json item = FunctionCallItem(i);
    const std::string item_id = item["id"];
    Json added = item;
    added["arguments"] = "";
    added["status"] = "in_progress";
    out += Event("response.output_item.added",
                 {{"output_index", output_index}, {"item", std::move(added)}});
    out += Event(
        "response.function_call_arguments.delta",
        {{"item_id", item_id}, {"output_index", output_index}, {"delta", calls_[i].arguments}});
    out += Event(
        "response.function_call_arguments.done",
        {{"item_id", item_id}, {"output_index", output_index}, {"arguments", calls_[i].arguments}});
    out += Event("response.output_item.done",
                 {{"output_index", output_index}, {"item", std::move(item)}});
  }
  return out + Event(status == "incomplete" ? "response.incomplete" : "response.completed",
                     {{"response", Response(status)}});
}

}  // namespace tinyserve
