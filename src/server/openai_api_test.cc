// Request validation (every out-of-range field gives a 400 naming it), response shapes built from
// hand-made engine events, and SSE framing. No HTTP.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/errors.h"
#include "server/openai_api.h"
#include "server/openai_response.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

class OpenAiApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = QwenTokenizerDir();
    if (!std::filesystem::exists(dir + "/tokenizer.json")) return;
    auto t = Tokenizer::Qwen25FromNpmDir(dir);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = std::move(t).value().release();
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_SKIP() << "Qwen tokenizer files missing: run scripts/setup.sh";
    ctx_.tokenizer = tokenizer_;
    ctx_.served_model_name = "tiny";
    ctx_.vocab_size = 1000;
    ctx_.max_model_len = 64;
  }

  std::variant<ParsedRequest, ApiError> Parse(Endpoint e, const std::string& body) {
    return ParseRequest(e, body, ctx_);
  }
  ParsedRequest ParseOk(Endpoint e, const std::string& body) {
    auto r = Parse(e, body);
    if (auto* err = std::get_if<ApiError>(&r)) {
      ADD_FAILURE() << "unexpected error: " << err->message;
      return {};
    }
    return std::get<ParsedRequest>(std::move(r));
  }
  // The error of a completions request `{"prompt":"hi", <extra>}`.
  ApiError Error(const std::string& extra, Endpoint e = Endpoint::kCompletions) {
    const std::string body = e == Endpoint::kCompletions
                                 ? "{\"prompt\":\"hi\"" + (extra.empty() ? "" : "," + extra) + "}"
                                 : "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" +
                                       (extra.empty() ? "" : "," + extra) + "}";
    auto r = Parse(e, body);
    if (!std::holds_alternative<ApiError>(r)) {
      ADD_FAILURE() << "accepted: " << body;
      return {};
    }
    return std::get<ApiError>(r);
  }
  void ExpectBadField(const std::string& extra, const std::string& param,
                      Endpoint e = Endpoint::kCompletions) {
    SCOPED_TRACE(extra);
    ApiError err = Error(extra, e);
    EXPECT_EQ(err.http_status, 400);
    EXPECT_EQ(err.type, "invalid_request_error");
    EXPECT_EQ(err.param, param);
    EXPECT_FALSE(err.message.empty());
  }

  static const Tokenizer* tokenizer_;
  ApiContext ctx_;
};
const Tokenizer* OpenAiApiTest::tokenizer_ = nullptr;

TEST_F(OpenAiApiTest, ValidRequestsMapFieldsOntoTheEngineRequest) {
  ParsedRequest r = ParseOk(
      Endpoint::kCompletions,
      R"({"model":"tiny","prompt":"hello","max_tokens":5,"temperature":0.5,"top_p":0.9,
          "top_k":7,"min_p":0.1,"n":3,"seed":42,"stop":["x","yz"],"stop_token_ids":[5],
          "presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.1,
          "logit_bias":{"17":-100,"3":2.5},"logprobs":2,"echo":true,"ignore_eos":true,
          "min_tokens":2,"priority":-3,"cache_salt":"s","user":"u","unknown_field":[1]})");
  EXPECT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], tokenizer_->Encode("hello"));
  EXPECT_EQ(r.base.stop.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.base.sampling.temperature.value_or(-1), 0.5f);
  EXPECT_FLOAT_EQ(r.base.sampling.top_p.value_or(-1), 0.9f);
  EXPECT_EQ(r.base.sampling.top_k, 7);
  EXPECT_EQ(r.base.n, 3);
  EXPECT_EQ(r.base.sampling.seed, 42u);
  EXPECT_EQ(r.base.stop.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(r.base.stop.stop_token_ids, std::vector<int32_t>{5});
  EXPECT_EQ(r.base.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r.completion_logprobs, 2);
  EXPECT_TRUE(r.echo);
  EXPECT_TRUE(r.base.stop.ignore_eos);
  EXPECT_EQ(r.base.stop.min_tokens, 2);
  EXPECT_EQ(r.base.priority, -3);
  EXPECT_EQ(r.model, "tiny");
}

TEST_F(OpenAiApiTest, PromptsMayBeStringsListsOrTokenIds) {
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt":["a","b"]})").prompts.size(), 2u);
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt":[1,2,3]})").prompts[0],
            (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt":[[1],[2,3]]})").prompts.size(), 2u);
  ParsedRequest chat = ParseOk(
      Endpoint::kChat,
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})");
  EXPECT_EQ(chat.prompts.size(), 1u);
  EXPECT_FALSE(chat.base.stop.max_tokens.has_value());  // chat: the rest of the context
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt":"x"})").base.stop.max_tokens, 16);
}

TEST_F(OpenAiApiTest, MalformedJsonAndNonObjectsAre400) {
  for (const char* body : {"{", "", "[1,2]", "\"x\"", "{\"prompt\":\"a\",}"}) {
    SCOPED_TRACE(body);
    auto r = Parse(Endpoint::kCompletions, body);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r));
    EXPECT_EQ(std::get<ApiError>(r).http_status, 400);
  }
}

TEST_F(OpenAiApiTest, EachOutOfRangeFieldIs400NamingIt) {
  ExpectBadField("\"n\":0", "n");
  ExpectBadField("\"n\":17", "n");
  ExpectBadField("\"max_tokens\":0", "max_tokens");
  ExpectBadField("\"max_tokens\":-5", "max_tokens");
  ExpectBadField("\"max_completion_tokens\":0", "max_completion_tokens", Endpoint::kChat);
  ExpectBadField("\"temperature\":-0.1", "temperature");
  ExpectBadField("\"temperature\":2.5", "temperature");
  ExpectBadField("\"top_p\":0", "top_p");
  ExpectBadField("\"top_p\":1.5", "top_p");
  ExpectBadField("\"top_k\":-2", "top_k");
  ExpectBadField("\"min_p\":1.5", "min_p");
  ExpectBadField("\"presence_penalty\":2.1", "presence_penalty");
  ExpectBadField("\"presence_penalty\":-2.1", "presence_penalty");
  ExpectBadField("\"frequency_penalty\":3", "frequency_penalty");
  ExpectBadField("\"repetition_penalty\":0", "repetition_penalty");
  ExpectBadField("\"repetition_penalty\":2.5", "repetition_penalty");
  ExpectBadField("\"logit_bias\":{\"1000\":1}", "logit_bias");   // id == vocab size
  ExpectBadField("\"logit_bias\":{\"-1\":1}", "logit_bias");
  ExpectBadField("\"logit_bias\":{\"abc\":1}", "logit_bias");
  ExpectBadField("\"logit_bias\":{\"5\":101}", "logit_bias");
  ExpectBadField("\"logit_bias\":{\"5\":-100.5}", "logit_bias");
  ExpectBadField("\"logit_bias\":{\"5\":\"x\"}", "logit_bias");
  ExpectBadField("\"logprobs\":21", "logprobs");
  ExpectBadField("\"logprobs\":true,\"top_logprobs\":21", "top_logprobs", Endpoint::kChat);
  ExpectBadField("\"top_logprobs\":3", "top_logprobs", Endpoint::kChat);  // needs logprobs
  ExpectBadField("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
                 "\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]",
                 "stop");  // 17 > 16
  ExpectBadField("\"stop\":\"" + std::string(257, 'x') + "\"", "stop");
  ExpectBadField("\"stop\":\"\"", "stop");
  ExpectBadField("\"stop_token_ids\":[1000]", "stop_token_ids");
  ExpectBadField("\"min_tokens\":10,\"max_tokens\":5", "min_tokens");
  ExpectBadField("\"response_format\":{\"type\":\"json_object\"}", "response_format");
  ExpectBadField("\"stream_options\":{\"include_usage\":true}", "stream_options");
  ExpectBadField("\"prompt\":[5000]", "prompt");  // token id outside the vocabulary
}

TEST_F(OpenAiApiTest, WrongTypesAre400NamingTheField) {
  ExpectBadField("\"n\":\"2\"", "n");
  ExpectBadField("\"n\":1.5", "n");
  ExpectBadField("\"max_tokens\":\"5\"", "max_tokens");
  ExpectBadField("\"temperature\":\"hot\"", "temperature");
  ExpectBadField("\"stream\":\"yes\"", "stream");
  ExpectBadField("\"stop\":5", "stop");
  ExpectBadField("\"stop\":[1]", "stop");
  ExpectBadField("\"seed\":\"1\"", "seed");
  ExpectBadField("\"logit_bias\":[1]", "logit_bias");
  ExpectBadField("\"model\":5", "model");
  ExpectBadField("\"messages\":\"hi\"", "messages", Endpoint::kChat);
  ExpectBadField("\"messages\":[{\"content\":\"no role\"}]", "messages", Endpoint::kChat);
  auto r = Parse(Endpoint::kCompletions, R"({"prompt":5})");
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).param, "prompt");
  r = Parse(Endpoint::kCompletions, R"({"max_tokens":5})");
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).param, "prompt");
}

TEST_F(OpenAiApiTest, PromptPlusMaxTokensBeyondTheContextNamesBothNumbers) {
  const std::vector<int32_t> prompt(60, 7);
  Json body = {{"prompt", prompt}, {"max_tokens", 10}};
  auto r = Parse(Endpoint::kCompletions, body.dump());
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  const ApiError& err = std::get<ApiError>(r);
  EXPECT_EQ(err.http_status, 400);
  EXPECT_NE(err.message.find("64"), std::string::npos) << err.message;  // max_model_len
  EXPECT_NE(err.message.find("70"), std::string::npos) << err.message;  // requested total
  EXPECT_NE(err.message.find("60"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("10"), std::string::npos) << err.message;
  body["max_tokens"] = 4;  // exactly 64 fits
  EXPECT_TRUE(std::holds_alternative<ParsedRequest>(Parse(Endpoint::kCompletions, body.dump())));
}

TEST_F(OpenAiApiTest, UnknownModelIs404) {
  auto r = Parse(Endpoint::kCompletions, R"({"model":"gpt-4","prompt":"x"})");
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).http_status, 404);
  EXPECT_EQ(std::get<ApiError>(r).param, "model");
}

TEST_F(OpenAiApiTest, ErrorBodiesHaveTheOpenAiShape) {
  Json j = Json::parse(BadRequest("bad", "n").Body());
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  ApiError internal = ApiErrorFromStatus(InternalError("secret detail /path"));
  EXPECT_EQ(internal.http_status, 500);
  EXPECT_EQ(internal.message.find("secret"), std::string::npos);
  EXPECT_EQ(ApiErrorFromStatus(UnavailableError("full")).http_status, 503);
}

RequestEvent Event(int32_t index, std::vector<int32_t> ids, std::string text,
                   FinishReason finish = FinishReason::kNone) {
  RequestEvent e;
  e.index = index;
  e.token_ids = std::move(ids);
  e.text = std::move(text);
  e.finish_reason = finish;
  if (finish != FinishReason::kNone) {
    e.usage = ChoiceUsage{};
    e.usage->cached_prompt_tokens = 1;
  }
  return e;
}

TEST_F(OpenAiApiTest, NonStreamingChatBodyHasTheOpenAiShape) {
  ParsedRequest r =
      ParseOk(Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"n":2})");
  ResponseBuilder b(r, tokenizer_, "chatcmpl-x", 123);
  b.Add(0, Event(0, {1, 2}, "ab"));
  b.Add(0, Event(1, {3}, "c", FinishReason::kLength));
  b.Add(0, Event(0, {4}, "d", FinishReason::kStop));
  Json j = Json::parse(b.FinalBody());
  EXPECT_EQ(j["id"], "chatcmpl-x");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "abd");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["message"]["content"], "c");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  const int prompt_tokens = static_cast<int>(r.prompts[0].size());
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt_tokens + 4);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
}

TEST_F(OpenAiApiTest, CompletionLogprobsListEveryTokenWithOffsets) {
  ParsedRequest r = ParseOk(Endpoint::kCompletions, R"({"prompt":"hi","logprobs":1})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  RequestEvent e = Event(0, {40, 41}, tokenizer_->Decode(std::vector<int32_t>{40, 41}),
                         FinishReason::kLength);
  e.logprobs = {TokenLogprobs{{40, -0.5f}, {{40, -0.5f}}}, TokenLogprobs{{41, -1.5f}, {{7, -0.1f}}}};
  b.Add(0, e);
  Json j = Json::parse(b.FinalBody());
  EXPECT_EQ(j["object"], "text_completion");
  const Json& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 2u);
  EXPECT_EQ(lp["tokens"][0], tokenizer_->Decode(std::vector<int32_t>{40}));
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -1.5f);
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_EQ(lp["text_offset"][1], lp["tokens"][0].get<std::string>().size());
  EXPECT_EQ(lp["top_logprobs"][1].size(), 1u);
}

TEST_F(OpenAiApiTest, StreamingChatSendsRoleFirstAndFinishReasonLast) {
  ParsedRequest r = ParseOk(
      Endpoint::kChat,
      R"({"messages":[{"role":"user","content":"hi"}],"stream":true,
          "stream_options":{"include_usage":true}})");
  ResponseBuilder b(r, tokenizer_, "chatcmpl-y", 5);
  std::vector<Json> chunks;
  for (const RequestEvent& e : {Event(0, {1}, "a"), Event(0, {2}, "b", FinishReason::kStop)})
    for (const std::string& c : b.StreamChunks(0, e)) chunks.push_back(Json::parse(c));
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks.front()["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(chunks[i]["id"], "chatcmpl-y");
    EXPECT_TRUE(chunks[i]["usage"].is_null());  // include_usage: null until the last chunk
    const Json& choice = chunks[i]["choices"][0];
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (i + 1 < chunks.size()) EXPECT_TRUE(choice["finish_reason"].is_null());
  }
  EXPECT_EQ(text, "ab");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
  Json usage = Json::parse(b.UsageChunk());
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 2);
}

TEST_F(OpenAiApiTest, SseEventsAreDataLinesEndedByABlankLine) {
  EXPECT_EQ(SseEvent("{\"a\":1}"), "data: {\"a\":1}\n\n");
}

}  // namespace
}  // namespace tinyserve
