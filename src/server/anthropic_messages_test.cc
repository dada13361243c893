// /v1/messages translation: turns and blocks to chat messages, tools and tool_choice, field
// renames and Anthropic-shaped errors, and the event stream a chat stream becomes (text, tool
// uses, stop sequences, failures). The SDK's view of the same is
// tests/node/server_anthropic.test.mjs.
#include "server/anthropic_messages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tinyserve {
namespace {

using OrderedJson = nlohmann::ordered_json;

OrderedJson ChatBodyOrFail(const char* body) {
  auto chat = MessagesToChatBody(OrderedJson::parse(body));
  if (auto* error = std::get_if<ApiError>(&chat)) {
    ADD_FAILURE() << error->message;
    return nullptr;
  }
  return std::get<OrderedJson>(chat);
}

ApiError RefusalOf(const char* body) {
  auto chat = MessagesToChatBody(OrderedJson::parse(body));
  if (!std::holds_alternative<ApiError>(chat)) ADD_FAILURE() << "accepted: " << body;
  return std::holds_alternative<ApiError>(chat) ? std::get<ApiError>(chat) : ApiError{};
}

// The `type` of each event in an SSE text ("event: T\ndata: {...}\n\n" each), checking that the
// event line and the data's type agree.
std::vector<std::string> SseEventTypes(const std::string& sse, std::vector<OrderedJson>* data) {
  std::vector<std::string> types;
  size_t pos = 0;
  while (pos < sse.size()) {
    const size_t end = sse.find("\n\n", pos);
    const std::string event = sse.substr(pos, end - pos);
    pos = end + 2;
    const size_t nl = event.find('\n');
    const std::string type = event.substr(7, nl - 7);          // after "event: "
    OrderedJson j = OrderedJson::parse(event.substr(nl + 7));  // after "\ndata: "
    EXPECT_EQ(j["type"], type);
    types.push_back(type);
    data->push_back(std::move(j));
  }
  return types;
}

TEST(AnthropicMessages, TurnsAndBlocksBecomeTheChatTurnsTheyMean) {
  const OrderedJson chat = ChatBodyOrFail(R"({
    "model": "m", "max_tokens": 9, "stream": true, "temperature": 0.5, "top_k": 3,
    "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
    "tools": [{"name": "add", "description": "Adds", "input_schema": {"type": "object"},
               "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "tool", "name": "add", "disable_parallel_tool_use": true},
    "messages": [
      {"role": "user", "content": "2+3?"},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hm", "signature": "s"},
        {"type": "text", "text": "Adding."},
        {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 2, "b": 3}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "5"}]},
        {"type": "text", "text": "And 1+1?"}]}]})");
  EXPECT_EQ(chat["model"], "m");
  EXPECT_EQ(chat["max_tokens"], 9);
  EXPECT_EQ(chat["temperature"], 0.5);
  EXPECT_EQ(chat["top_k"], 3);
  EXPECT_EQ(chat["stop"], OrderedJson::parse(R"(["END"])"));
  EXPECT_EQ(chat["user"], "u1");
  EXPECT_FALSE(chat.contains("thinking"));
  EXPECT_EQ(chat["stream_options"], OrderedJson::parse(R"({"include_usage": true})"));
  EXPECT_EQ(chat["tools"], OrderedJson::parse(R"([{"type": "function",
      "function": {"name": "add", "description": "Adds", "parameters": {"type": "object"}}}])"));
  EXPECT_EQ(chat["tool_choice"],
            OrderedJson::parse(R"({"type": "function", "function": {"name": "add"}})"));
  EXPECT_EQ(chat["parallel_tool_calls"], false);
  EXPECT_EQ(chat["messages"], OrderedJson::parse(R"([
      {"role": "system", "content": "Be brief.\n\nUse tools."},
      {"role": "user", "content": "2+3?"},
      {"role": "assistant", "content": "Adding.", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "add",
                                                       "arguments": "{\"a\":2,\"b\":3}"}}]},
      {"role": "tool", "tool_call_id": "t1", "content": "5"},
      {"role": "user", "content": [{"type": "text", "text": "And 1+1?"}]}])"));
}

TEST(AnthropicMessages, ToolChoiceAndOutputFormatTakeTheirChatForms) {
  OrderedJson chat = ChatBodyOrFail(R"({"max_tokens": 1, "tool_choice": {"type": "any"},
      "tools": [{"name": "f", "input_schema": {"type": "object"}}],
      "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
      "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(chat["tool_choice"], "required");
  EXPECT_FALSE(chat.contains("parallel_tool_calls"));
  EXPECT_EQ(chat["response_format"], OrderedJson::parse(R"({"type": "json_schema",
      "json_schema": {"name": "output", "schema": {"type": "object"}}})"));
  chat = ChatBodyOrFail(R"({"max_tokens": 1, "tool_choice": {"type": "none"},
      "output_format": {"type": "json_schema", "schema": {"type": "array"}},
      "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(chat["tool_choice"], "none");
  EXPECT_EQ(chat["response_format"]["json_schema"]["schema"]["type"], "array");
}

TEST(AnthropicMessages, RefusalsNameTheMessagesField) {
  EXPECT_EQ(RefusalOf(R"({"messages": [{"role": "user", "content": "x"}]})").param, "max_tokens");
  EXPECT_EQ(RefusalOf(R"({"max_tokens": 1, "messages": []})").param, "messages");
  EXPECT_EQ(RefusalOf(R"({"max_tokens": 1, "messages": [{"role": "user", "content": [
      {"type": "image", "source": {"type": "url", "url": "http://x"}}]}]})")
                .param,
            "messages[0].content[0]");
  EXPECT_EQ(RefusalOf(R"({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]})")
                .param,
            "tools[0]");
  EXPECT_EQ(RefusalOf(R"({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
      "tool_choice": {"type": "sometimes"}})")
                .param,
            "tool_choice");
  // count_tokens needs no max_tokens.
  EXPECT_TRUE(std::holds_alternative<OrderedJson>(MessagesToChatBody(
      OrderedJson::parse(R"({"messages": [{"role": "user", "content": "x"}]})"), true)));
  EXPECT_EQ(MessagesError(BadRequest("x", "stop")).param, "stop_sequences");
  EXPECT_EQ(MessagesError(BadRequest("x", "response_format")).param, "output_config.format");
  EXPECT_EQ(MessagesError(BadRequest("x", "temperature")).param, "temperature");
}

TEST(AnthropicMessages, ErrorsTakeAnthropicsShape) {
  const OrderedJson bad = OrderedJson::parse(AnthropicErrorBody(BadRequest("too big", "top_k")));
  EXPECT_EQ(bad, OrderedJson::parse(R"({"type": "error",
      "error": {"type": "invalid_request_error", "message": "top_k: too big"}})"));
  const auto type = [](int status, const char* ours) {
    return OrderedJson::parse(
        AnthropicErrorBody(ApiError{status, "m", ours, "", ""}))["error"]["type"];
  };
  EXPECT_EQ(type(401, "authentication_error"), "authentication_error");
  EXPECT_EQ(type(404, "NotFoundError"), "not_found_error");
  EXPECT_EQ(type(413, "invalid_request_error"), "request_too_large");
  EXPECT_EQ(type(429, "rate_limit_error"), "rate_limit_error");
  EXPECT_EQ(type(503, "service_unavailable"), "overloaded_error");
  EXPECT_EQ(type(504, "timeout"), "timeout_error");
  EXPECT_EQ(type(500, "internal_server_error"), "api_error");
}

TEST(AnthropicMessages, AChatStreamBecomesTheMessagesEvents) {
  MessagesShaper shaper("m", "msg_1", 12, 100);
  std::string sse;
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"role": "assistant",
      "content": ""}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "Let me "}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "add."}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
      "id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{\"a\":"}}]}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
      "function": {"arguments": "1}"}}]}, "finish_reason": "tool_calls"}]})");
  EXPECT_EQ(shaper.FromChunk(R"({"choices": [], "usage": {"prompt_tokens": 12,
      "completion_tokens": 4, "total_tokens": 16, "prompt_tokens_details": {"cached_tokens": 8}}})"),
            "");
  sse += shaper.Finish();
  std::vector<OrderedJson> data;
  const std::vector<std::string> want = {
      "message_start",      "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_stop", "message_delta",       "message_stop"};
  EXPECT_EQ(SseEventTypes(sse, &data), want);
  EXPECT_EQ(data[0]["message"]["usage"]["input_tokens"], 12);
  EXPECT_EQ(data[0]["message"]["content"], OrderedJson::array());
  EXPECT_EQ(data[2]["delta"], OrderedJson::parse(R"({"type": "text_delta", "text": "Let me "})"));
  EXPECT_EQ(data[5]["index"], 1);
  EXPECT_EQ(data[5]["content_block"], OrderedJson::parse(R"({"type": "tool_use", "id": "call_a",
      "name": "add", "input": {}})"));
  EXPECT_EQ(data[7]["delta"],
            OrderedJson::parse(R"({"type": "input_json_delta", "partial_json": "1}"})"));
  EXPECT_EQ(data[9]["delta"]["stop_reason"], "tool_use");
  // Cache reads are counted apart from the input computed afresh, as Anthropic does.
  EXPECT_EQ(data[9]["usage"], OrderedJson::parse(R"({"input_tokens": 4,
      "cache_read_input_tokens": 8, "output_tokens": 4})"));
}

TEST(AnthropicMessages, ACompletionBecomesAMessage) {
  MessagesShaper shaper("m", "msg_2", 5, 100);
  const OrderedJson message = OrderedJson::parse(shaper.FromCompletion(R"({"choices": [{
      "index": 0, "message": {"role": "assistant", "content": "Sum:", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}]},
      "finish_reason": "tool_calls", "stop_reason": null}],
      "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})"));
  EXPECT_EQ(message, OrderedJson::parse(R"({"id": "msg_2", "type": "message",
      "role": "assistant", "model": "m", "content": [{"type": "text", "text": "Sum:"},
      {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}}],
      "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 5,
      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 7}})"));
}

TEST(AnthropicMessages, StopReasonsTakeAnthropicsNames) {
  // Asked for 8 tokens; `made` came.
  const auto stop_of = [](const char* finish, const char* stop, int made = 8) {
    MessagesShaper shaper("m", "msg_3", 1, 8);
    return OrderedJson::parse(shaper.FromCompletion(
        std::string(R"({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": )") +
        finish + R"(, "stop_reason": )" + stop + R"(}], "usage": {"completion_tokens": )" +
        std::to_string(made) + "}}"));
  };
  EXPECT_EQ(stop_of(R"("stop")", "null")["stop_reason"], "end_turn");
  EXPECT_EQ(stop_of(R"("length")", "null")["stop_reason"], "max_tokens");
  // Cut by length before max_tokens: the context ended it.
  EXPECT_EQ(stop_of(R"("length")", "null", 5)["stop_reason"], "model_context_window_exceeded");
  const OrderedJson matched = stop_of(R"("stop")", R"("END")");
  EXPECT_EQ(matched["stop_reason"], "stop_sequence");
  EXPECT_EQ(matched["stop_sequence"], "END");
}

TEST(AnthropicMessages, AFailureEndsTheStreamWithAnErrorEvent) {
  MessagesShaper shaper("m", "msg_4", 1, 100);
  std::string sse = shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "a"}}]})");
  EXPECT_EQ(shaper.FromChunk(R"({"error": {"message": "busy", "type": "service_unavailable",
      "param": null, "code": null}})"),
            "");
  sse += shaper.Finish();
  std::vector<OrderedJson> data;
  const std::vector<std::string> types = SseEventTypes(sse, &data);
  EXPECT_EQ(types.back(), "error");
  EXPECT_EQ(data.back()["error"], OrderedJson::parse(R"({"type": "overloaded_error",
      "message": "busy"})"));
  EXPECT_EQ(std::count(types.begin(), types.end(), "message_stop"), 0);
}

}  // namespace
}  // namespace tinyserve
