// Requests and answers at the edges, from hand-made bodies and engine events (no HTTP, no
// engine): bodies of too many JSON values, logit_bias keys that name one token twice, a choice
// that fails, max_tokens past the context under Anthropic's rule.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "server/openai_api.h"
#include "server/openai_response.h"
#include "server/testing/openai_api_fixture.h"
#include "tokenizer/chat_template_json.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

class OpenAiEdgeCasesTest : public testing::OpenAiApiFixture {};

// A 4 MiB body of `["","",...]` or `[[],[],...]` held ~20x its size while it was parsed (a heap
// block per string or container); past kMaxJsonHeapValues of them it is refused while parsing.
TEST_F(OpenAiEdgeCasesTest, BodiesOfTooManyStringsAndContainersAre400NamingTheField) {
  std::string many = "[";
  for (size_t i = 0; i < kMaxJsonHeapValues; ++i) many += i == 0 ? "[]" : ",[]";
  ApiError unused = Error("\"unused\":" + many + "]");
  EXPECT_EQ(unused.http_status, 400);
  EXPECT_EQ(unused.param, "unused");
  EXPECT_NE(unused.message.find("strings, objects and arrays"), std::string::npos)
      << unused.message;
  // A prompt of many token ids is numbers only, not counted (the test vocabulary has 1000 ids).
  ctx_.max_model_len = 1 << 20;
  std::string ids = "[";
  for (size_t i = 0; i <= kMaxJsonHeapValues; ++i) ids += i == 0 ? "7" : ",7";
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, "{\"prompt\":" + ids + "],\"max_tokens\":1}")
                .prompts[0]
                .size(),
            kMaxJsonHeapValues + 1);
}

// Keys that read as one token id (as Python's int() reads " 5" and "+5") keep the last value, as
// vLLM's dict of int keys does, instead of biasing that token twice.
TEST_F(OpenAiEdgeCasesTest, LogitBiasKeysNamingOneTokenKeepTheLastValue) {
  const ParsedRequest r = ParseOk(Endpoint::kCompletions,
                                  R"({"prompt":"hi","logit_bias":{"5":1,"7":2," 5":3,"+5":-4}})");
  using Bias = std::vector<std::pair<int32_t, float>>;
  EXPECT_EQ(r.base.sampling.logit_bias, (Bias{{5, -4.0f}, {7, 2.0f}}));
}

// Anthropic's Messages API (cap_max_tokens_at_context) cuts a max_tokens past the context to
// what the prompt leaves; OpenAI's routes refuse it, as vLLM does. A prompt that leaves no room
// is refused either way.
TEST_F(OpenAiEdgeCasesTest, MaxTokensPastTheContextIsCutOnlyWhenAsked) {
  const std::string body = R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":1000})";
  EXPECT_EQ(Error(body.substr(1, body.size() - 2), Endpoint::kChat).param, "messages");
  ctx_.cap_max_tokens_at_context = true;
  const ParsedRequest r = ParseOk(Endpoint::kChat, body);
  EXPECT_EQ(*r.base.stop.max_tokens + static_cast<int32_t>(r.prompts[0].size()),
            ctx_.max_model_len);
  const ParsedRequest small =
      ParseOk(Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3})");
  EXPECT_EQ(small.base.stop.max_tokens, 3);
  std::string long_text(400, 'x');
  for (size_t i = 0; i < long_text.size(); i += 2) long_text[i] = ' ';
  EXPECT_EQ(Error(R"("messages":[{"role":"user","content":")" + long_text + R"("}],"max_tokens":5)",
                  Endpoint::kChat)
                .param,
            "messages");
}

// A choice that fails (the model's forward pass, or a constraint leaving no token) makes the
// call an error, as vLLM answers: no 200 body with finish_reason "error" and no reason given.
TEST_F(OpenAiEdgeCasesTest, AFailedChoiceMakesTheResponseAnError) {
  ParsedRequest r =
      ParseOk(Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"n":2})");
  ResponseBuilder whole(r, tokenizer_, "chatcmpl-x", 1);
  whole.Add(0, Event(0, {1}, "a", FinishReason::kStop));
  EXPECT_FALSE(whole.Failure().has_value());
  RequestEvent failed = Event(1, {}, "", FinishReason::kError);
  failed.error = InternalError("the model failed on this batch");
  whole.Add(0, failed);
  ASSERT_TRUE(whole.Failure().has_value());
  EXPECT_EQ(whole.Failure()->http_status, 500);
  EXPECT_EQ(whole.Failure()->type, "internal_server_error");
  // Streamed: the failed choice's last chunk is followed by an error chunk.
  r.stream = true;
  ResponseBuilder stream(r, tokenizer_, "chatcmpl-y", 1);
  stream.StreamChunks(0, Event(0, {1}, "a", FinishReason::kStop));
  const std::vector<std::string> chunks = stream.StreamChunks(0, failed);
  ASSERT_FALSE(chunks.empty());
  const Json last = Json::parse(chunks.back());
  EXPECT_EQ(last["error"]["code"], nullptr);
  EXPECT_EQ(last["error"]["type"], "internal_server_error");
  EXPECT_FALSE(last.contains("choices"));
  EXPECT_EQ(Json::parse(chunks[chunks.size() - 2])["choices"][0]["finish_reason"], "error");
  // A client-caused failure keeps its status (a refused constraint is the request's fault).
  ResponseBuilder refused(r, tokenizer_, "chatcmpl-z", 1);
  RequestEvent bad = Event(0, {}, "", FinishReason::kError);
  bad.error = InvalidArgumentError("the constraint allows no next token");
  refused.StreamChunks(0, bad);
  ASSERT_TRUE(refused.Failure().has_value());
  EXPECT_EQ(refused.Failure()->http_status, 400);
  EXPECT_EQ(refused.Failure()->message, "the constraint allows no next token");
}

}  // namespace
}  // namespace tinyserve
