// /v1/responses translation: input items to chat messages, field renames in errors, and the
// event stream a chat stream becomes (tool calls and failures included). The SDK's view of the
// same is tests/node/server_responses.test.mjs.
#include "server/openai_responses.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tinyserve {
namespace {

using OrderedJson = nlohmann::ordered_json;

OrderedJson TranslateOrFail(const char* body) {
  auto chat = ResponsesToChatBody(OrderedJson::parse(body));
  if (auto* error = std::get_if<ApiError>(&chat)) {
    ADD_FAILURE() << error->message;
    return nullptr;
  }
  return std::get<OrderedJson>(chat);
}

// The `type` of each event in an SSE text ("event: T\ndata: {...}\n\n" each), checking that the
// event line and the data's type agree and that sequence numbers count from `first`.
std::vector<std::string> EventTypes(const std::string& sse, int64_t first,
                                    std::vector<OrderedJson>* data) {
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
    EXPECT_EQ(j["sequence_number"], first + static_cast<int64_t>(types.size()));
    types.push_back(type);
    data->push_back(std::move(j));
  }
  return types;
}

TEST(OpenAiResponses, InputItemsBecomeTheChatTurnsTheyMean) {
  const OrderedJson chat = TranslateOrFail(R"({
    "model": "m", "instructions": "Be brief.", "max_output_tokens": 9, "stream": true,
    "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
    "tools": [{"type": "function", "name": "add", "parameters": {"type": "object"}}],
    "tool_choice": {"type": "function", "name": "add"},
    "input": [
      {"role": "user", "content": [{"type": "input_text", "text": "2+3?"}]},
      {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "{\"a\":2}"},
      {"type": "function_call", "call_id": "c2", "name": "add", "arguments": "{\"a\":3}"},
      {"type": "function_call_output", "call_id": "c1", "output": "5"},
      {"type": "message", "role": "assistant", "content": "It is 5."}]})");
  EXPECT_EQ(chat["model"], "m");
  EXPECT_EQ(chat["max_completion_tokens"], 9);
  EXPECT_EQ(chat["stream_options"], OrderedJson::parse(R"({"include_usage": true})"));
  EXPECT_EQ(chat["response_format"], OrderedJson::parse(R"({"type": "json_schema",
      "json_schema": {"name": "n", "schema": {"type": "object"}}})"));
  EXPECT_EQ(chat["tools"], OrderedJson::parse(R"([{"type": "function",
      "function": {"name": "add", "parameters": {"type": "object"}}}])"));
  EXPECT_EQ(chat["tool_choice"],
            OrderedJson::parse(R"({"type": "function", "function": {"name": "add"}})"));
  // Instructions first; calls in a row are one assistant turn.
  EXPECT_EQ(chat["messages"], OrderedJson::parse(R"([
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "2+3?"}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":2}"}},
        {"id": "c2", "type": "function", "function": {"name": "add", "arguments": "{\"a\":3}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "5"},
      {"role": "assistant", "content": "It is 5."}])"));
}

TEST(OpenAiResponses, ChatErrorsNameTheResponsesField) {
  EXPECT_EQ(ResponsesError(BadRequest("x", "max_completion_tokens")).param, "max_output_tokens");
  EXPECT_EQ(ResponsesError(BadRequest("x", "response_format")).param, "text.format");
  EXPECT_EQ(ResponsesError(BadRequest("x", "messages")).param, "input");
  EXPECT_EQ(ResponsesError(BadRequest("x", "temperature")).param, "temperature");
  auto refused = ResponsesToChatBody(OrderedJson::parse(R"({"input": [{"type": "reasoning"}]})"));
  ASSERT_TRUE(std::holds_alternative<ApiError>(refused));
  EXPECT_EQ(std::get<ApiError>(refused).param, "input[0]");
}

TEST(OpenAiResponses, AChatStreamBecomesTheResponsesEvents) {
  ResponsesShaper shaper(OrderedJson::parse(R"({"input": "hi", "tools": []})"), "m", "resp_1", 7);
  std::string sse;
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "Let me "}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "add."}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
      "id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{\"a\":"}}]}}]})");
  sse += shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
      "function": {"arguments": "1}"}}]}, "finish_reason": "tool_calls"}]})");
  EXPECT_EQ(shaper.FromChunk(R"({"choices": [], "usage": {"prompt_tokens": 3,
      "completion_tokens": 4, "total_tokens": 7}})"),
            "");
  sse += shaper.Finish();
  std::vector<OrderedJson> data;
  const std::vector<std::string> want = {"response.created",
                                         "response.in_progress",
                                         "response.output_item.added",
                                         "response.content_part.added",
                                         "response.output_text.delta",
                                         "response.output_text.delta",
                                         "response.output_text.done",
                                         "response.content_part.done",
                                         "response.output_item.done",
                                         "response.output_item.added",
                                         "response.function_call_arguments.delta",
                                         "response.function_call_arguments.done",
                                         "response.output_item.done",
                                         "response.completed"};
  EXPECT_EQ(EventTypes(sse, 0, &data), want);
  const OrderedJson& response = data.back()["response"];
  EXPECT_EQ(response["status"], "completed");
  EXPECT_EQ(response["output"][0]["content"][0]["text"], "Let me add.");
  EXPECT_EQ(response["output"][1]["call_id"], "call_a");
  EXPECT_EQ(response["output"][1]["arguments"], "{\"a\":1}");
  EXPECT_EQ(data[11]["arguments"], "{\"a\":1}");
  EXPECT_EQ(response["usage"]["total_tokens"], 7);
}

TEST(OpenAiResponses, AFailedChoiceEndsTheStreamWithResponseFailed) {
  ResponsesShaper shaper(OrderedJson::parse(R"({"input": "hi"})"), "m", "resp_2", 7);
  std::string sse = shaper.FromChunk(R"({"choices": [{"index": 0, "delta": {"content": "a"}}]})");
  EXPECT_EQ(shaper.FromChunk(R"({"error": {"message": "boom", "type": "x", "code": null}})"), "");
  sse += shaper.Finish();
  std::vector<OrderedJson> data;
  const std::vector<std::string> types = EventTypes(sse, 0, &data);
  EXPECT_EQ(types.back(), "response.failed");
  EXPECT_EQ(data.back()["response"]["status"], "failed");
  EXPECT_EQ(data.back()["response"]["error"]["message"], "boom");
}

}  // namespace
}  // namespace tinyserve
