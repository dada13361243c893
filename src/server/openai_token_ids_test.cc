// vLLM's `return_token_ids` on the API: the prompt's and the output's token ids beside the text,
// in one body (per choice on completions, the prompt's beside the choices on chat) and streamed
// (each chunk its own tokens, the prompt's once), built from hand-made engine events. No HTTP,
// no engine.
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

class TokenIdsApiTest : public testing::OpenAiApiFixture {
 protected:
  // An event of choice `index` with tokens `ids` and their text.
  static RequestEvent Tokens(int32_t index, std::vector<int32_t> ids, bool last) {
    RequestEvent e;
    e.index = index;
    e.text = tokenizer_->Decode(ids);
    e.token_ids = std::move(ids);
    if (last) {
      e.finish_reason = FinishReason::kLength;
      e.usage = ChoiceUsage{};
    }
    return e;
  }
  static std::vector<Json> Stream(ResponseBuilder* b, const std::vector<RequestEvent>& events) {
    std::vector<Json> chunks;
    for (const RequestEvent& e : events)
      for (const std::string& c : b->StreamChunks(0, e)) chunks.push_back(Json::parse(c));
    return chunks;
  }
};

TEST_F(TokenIdsApiTest, OffUnlessAsked) {
  const ParsedRequest r = ParseOk(Endpoint::kCompletions, R"({"prompt":"one two"})");
  EXPECT_FALSE(r.return_token_ids);
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  b.Add(0, Tokens(0, {7, 8}, true));
  const Json body = Json::parse(b.FinalBody());
  EXPECT_FALSE(body["choices"][0].contains("token_ids"));
  EXPECT_FALSE(body["choices"][0].contains("prompt_token_ids"));
  ExpectBadField("\"return_token_ids\":1", "return_token_ids");
}

TEST_F(TokenIdsApiTest, CompletionsCarryBothPerChoice) {
  const ParsedRequest r =
      ParseOk(Endpoint::kCompletions, R"({"prompt":"one two","n":2,"return_token_ids":true})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  b.Add(0, Tokens(0, {7}, false));
  b.Add(0, Tokens(1, {9, 10}, true));
  b.Add(0, Tokens(0, {8}, true));
  const Json body = Json::parse(b.FinalBody());
  EXPECT_EQ(body["choices"][0]["token_ids"], (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(body["choices"][1]["token_ids"], (std::vector<int32_t>{9, 10}));
  for (const Json& choice : body["choices"]) EXPECT_EQ(choice["prompt_token_ids"], r.prompts[0]);
  EXPECT_FALSE(body.contains("prompt_token_ids"));
}

TEST_F(TokenIdsApiTest, ChatPutsThePromptsBesideTheChoices) {
  const ParsedRequest r = ParseOk(
      Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"return_token_ids":true})");
  ResponseBuilder b(r, tokenizer_, "chatcmpl-x", 1);
  b.Add(0, Tokens(0, {7, 8}, true));
  const Json body = Json::parse(b.FinalBody());
  EXPECT_EQ(body["prompt_token_ids"], r.prompts[0]);  // the rendered chat prompt
  EXPECT_EQ(body["choices"][0]["token_ids"], (std::vector<int32_t>{7, 8}));
  EXPECT_FALSE(body["choices"][0].contains("prompt_token_ids"));
}

TEST_F(TokenIdsApiTest, StreamingSendsEachChunksTokensAndThePromptOnce) {
  const ParsedRequest chat = ParseOk(
      Endpoint::kChat,
      R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"return_token_ids":true})");
  ResponseBuilder b(chat, tokenizer_, "chatcmpl-x", 1);
  const std::vector<Json> chunks = Stream(&b, {Tokens(0, {7}, false), Tokens(0, {8, 9}, true)});
  std::vector<int32_t> streamed;
  int prompt_ids = 0;
  for (const Json& chunk : chunks) {
    if (chunk.contains("prompt_token_ids")) {
      ++prompt_ids;
      EXPECT_EQ(chunk["prompt_token_ids"], chat.prompts[0]);
    }
    for (const Json& choice : chunk["choices"])
      if (choice.contains("token_ids"))
        for (int32_t id : choice["token_ids"]) streamed.push_back(id);
  }
  EXPECT_EQ(prompt_ids, 1);
  EXPECT_TRUE(chunks[0].contains("prompt_token_ids"));  // the first chunk
  EXPECT_EQ(streamed, (std::vector<int32_t>{7, 8, 9}));
}

TEST_F(TokenIdsApiTest, TokensHeldBackByAStopStringStillStream) {
  const ParsedRequest r =
      ParseOk(Endpoint::kCompletions, R"({"prompt":"x","stream":true,"return_token_ids":true})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  RequestEvent held = Tokens(0, {7}, false);
  held.text.clear();  // the engine holds text back that may start a stop string
  const std::vector<Json> chunks = Stream(&b, {held, Tokens(0, {8}, true)});
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["choices"][0]["text"], "");
  EXPECT_EQ(chunks[0]["choices"][0]["token_ids"], (std::vector<int32_t>{7}));
  EXPECT_EQ(chunks[0]["choices"][0]["prompt_token_ids"], r.prompts[0]);
  EXPECT_FALSE(chunks[1]["choices"][0].contains("prompt_token_ids"));
}

}  // namespace
}  // namespace tinyserve
