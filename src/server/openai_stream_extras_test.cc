// vLLM's additions to streamed and echoed answers: `stream_options.continuous_usage_stats` and
// chat `echo`, built from hand-made engine events. No HTTP, no engine.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/openai_api.h"
#include "server/openai_response.h"
#include "server/testing/openai_api_fixture.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

class StreamExtrasTest : public testing::OpenAiApiFixture {};

// vLLM's stream_options.continuous_usage_stats: each chunk carries the usage so far.
TEST_F(StreamExtrasTest, ContinuousUsageStatsCountEveryChunk) {
  ParsedRequest r = ParseOk(Endpoint::kCompletions, R"({"prompt":"hi","stream":true,
          "stream_options":{"include_usage":true,"continuous_usage_stats":true}})");
  ResponseBuilder b(r, tokenizer_, "cmpl-u", 5);
  const int32_t prompt = static_cast<int32_t>(r.prompts[0].size());
  int32_t generated = 0;
  for (const RequestEvent& e :
       {Event(0, {1}, "a"), Event(0, {2, 3}, "bc"), Event(0, {4}, "d", FinishReason::kLength)}) {
    generated += static_cast<int32_t>(e.token_ids.size());
    for (const std::string& c : b.StreamChunks(0, e)) {
      const Json usage = Json::parse(c)["usage"];
      ASSERT_TRUE(usage.is_object()) << c;
      EXPECT_EQ(usage["prompt_tokens"], prompt);
      EXPECT_EQ(usage["completion_tokens"], generated);
      EXPECT_EQ(usage["total_tokens"], prompt + generated);
    }
  }
  // Without include_usage the option asks for nothing.
  ParsedRequest plain = ParseOk(Endpoint::kCompletions, R"({"prompt":"hi","stream":true,
          "stream_options":{"continuous_usage_stats":true}})");
  EXPECT_FALSE(plain.continuous_usage);
}

// vLLM's chat `echo`: a final assistant message (continued with continue_final_message) comes
// back before the reply, whole and streamed; with another last role it adds nothing.
TEST_F(StreamExtrasTest, ChatEchoPutsTheFinalAssistantMessageFirst) {
  const std::string body =
      R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}],
          "continue_final_message":true,"add_generation_prompt":false,"echo":true)";
  ParsedRequest r = ParseOk(Endpoint::kChat, body + "}");
  ResponseBuilder whole(r, tokenizer_, "chatcmpl-e", 1);
  whole.Add(0, Event(0, {1}, "lo", FinishReason::kStop));
  EXPECT_EQ(Json::parse(whole.FinalBody())["choices"][0]["message"]["content"], "Hello");
  ParsedRequest rs = ParseOk(Endpoint::kChat, body + R"(,"stream":true})");
  ResponseBuilder streamed(rs, tokenizer_, "chatcmpl-e", 1);
  std::string text;
  for (const std::string& c : streamed.StreamChunks(0, Event(0, {1}, "lo", FinishReason::kStop))) {
    const Json delta = Json::parse(c)["choices"][0]["delta"];
    if (delta.contains("content")) text += delta["content"].get<std::string>();
  }
  EXPECT_EQ(text, "Hello");
  ParsedRequest user_last =
      ParseOk(Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"echo":true})");
  EXPECT_EQ(user_last.chat_echo, "");
}

}  // namespace
}  // namespace tinyserve
