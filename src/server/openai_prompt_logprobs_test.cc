// The prompt tokens' log-probabilities on the API: which requests ask for them (vLLM's
// `prompt_logprobs` on completions and chat, and `echo` with `logprobs` as OpenAI's legacy
// completions did), and the response shapes built from a hand-made engine event (echoed
// `logprobs` arrays led by the prompt, vLLM's `prompt_logprobs` list per completion choice or
// beside the chat choices), streamed and not. No HTTP, no engine.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "server/openai_api.h"
#include "server/openai_response.h"
#include "server/testing/openai_api_fixture.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

class PromptLogprobsApiTest : public testing::OpenAiApiFixture {
 protected:
  ParsedRequest Completions(const std::string& body) {
    return ParseOk(Endpoint::kCompletions, body);
  }
  // Choice 0's first (and last) event: one generated token (id 7) with its logprob, and the
  // prompt tokens' entries (one per prompt token after the first).
  static RequestEvent FirstEvent(const ParsedRequest& r) {
    RequestEvent e;
    e.token_ids = {7};
    e.text = tokenizer_->Decode(std::vector<int32_t>{7});
    e.logprobs = {TokenLogprobs{{7, -0.25f}, {{7, -0.25f}}}};
    const std::vector<int32_t>& prompt = r.prompts[0];
    for (size_t i = 1; i < prompt.size(); ++i) {
      TokenLogprobs lp{{prompt[i], -1.0f - static_cast<float>(i)}, {{3, -0.5f}}};
      lp.rank = static_cast<int32_t>(i) + 1;
      e.prompt_logprobs.push_back(lp);
    }
    e.finish_reason = FinishReason::kLength;
    e.usage = ChoiceUsage{};
    return e;
  }
};

TEST_F(PromptLogprobsApiTest, EchoWithLogprobsOrPromptLogprobsAskForThem) {
  EXPECT_EQ(Completions(R"({"prompt":"hi","prompt_logprobs":5})").base.prompt_logprobs, 5);
  EXPECT_EQ(Completions(R"({"prompt":"hi","echo":true,"logprobs":2})").base.prompt_logprobs, 2);
  EXPECT_EQ(Completions(R"({"prompt":"hi","echo":true,"logprobs":2,"prompt_logprobs":4})")
                .base.prompt_logprobs,
            4);
  EXPECT_EQ(Completions(R"({"prompt":"hi","echo":true,"logprobs":0})").base.prompt_logprobs, 0);
  EXPECT_FALSE(Completions(R"({"prompt":"hi","echo":true})").base.prompt_logprobs);
  EXPECT_FALSE(Completions(R"({"prompt":"hi","logprobs":3})").base.prompt_logprobs);
  EXPECT_FALSE(Completions(R"({"prompt":"hi","prompt_logprobs":null})").base.prompt_logprobs);
}

TEST_F(PromptLogprobsApiTest, ChatAsksForThemWithTheSameField) {
  const ParsedRequest r = ParseOk(
      Endpoint::kChat, R"({"messages":[{"role":"user","content":"hi"}],"prompt_logprobs":3})");
  EXPECT_EQ(r.base.prompt_logprobs, 3);
}

TEST_F(PromptLogprobsApiTest, StreamingRefusesThemAsVllmDoes) {
  for (Endpoint e : {Endpoint::kCompletions, Endpoint::kChat}) {
    ExpectBadField("\"prompt_logprobs\":1,\"stream\":true", "prompt_logprobs", e);
    EXPECT_EQ(Error("\"prompt_logprobs\":1,\"stream\":true", e).message,
              "`prompt_logprobs` are not available when `stream=True`");
  }
  // 0 streams (vLLM's rule) and computes nothing: no place in a stream shows them.
  EXPECT_FALSE(
      Completions(R"({"prompt":"hi","prompt_logprobs":0,"stream":true})").base.prompt_logprobs);
  // echo + logprobs still streams the prompt's, in the first chunk's `logprobs`.
  EXPECT_EQ(
      Completions(R"({"prompt":"hi","echo":true,"logprobs":1,"stream":true})").base.prompt_logprobs,
      1);
}

TEST_F(PromptLogprobsApiTest, BadCountsAndOversizedAsksAre400) {
  ExpectBadField("\"prompt_logprobs\":21", "prompt_logprobs");
  ExpectBadField("\"prompt_logprobs\":-1", "prompt_logprobs");
  ExpectBadField("\"prompt_logprobs\":\"5\"", "prompt_logprobs");
  ExpectBadField("\"prompt_logprobs\":21", "prompt_logprobs", Endpoint::kChat);
  ctx_.max_prompt_logprob_entries = 100;
  // 40 prompt tokens x 2 choices x (1 + 1) = 160 entries.
  std::string prompt = "[";
  for (int i = 0; i < 40; ++i) prompt += (i ? "," : "") + std::to_string(i);
  prompt += "]";
  ExpectBadField("\"prompt\":" + prompt + ",\"prompt_logprobs\":1,\"n\":2", "prompt_logprobs");
  Completions(R"({"prompt":)" + prompt + R"(,"prompt_logprobs":0})");  // 40 entries
  // Echoed with logprobs, the prompt's entries are held twice (vLLM's list and the echoed
  // arrays): 40 x (1 + 1) x 2 = 160, over; without echo 80, under.
  Completions(R"({"prompt":)" + prompt + R"(,"logprobs":1})");
  ExpectBadField("\"prompt\":" + prompt + ",\"echo\":true,\"logprobs\":1,\"max_tokens\":1",
                 "prompt_logprobs");
  Completions(R"({"prompt":)" + prompt + R"(,"echo":true,"logprobs":0,"max_tokens":1})");
}

TEST_F(PromptLogprobsApiTest, EchoedLogprobsLeadWithThePromptTokens) {
  const ParsedRequest r = Completions(R"({"prompt":"one two three","echo":true,"logprobs":1})");
  const std::vector<int32_t>& prompt = r.prompts[0];
  ASSERT_GE(prompt.size(), 3u);
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  b.Add(0, FirstEvent(r));
  const Json choice = Json::parse(b.FinalBody())["choices"][0];
  EXPECT_EQ(choice["text"], "one two three" + tokenizer_->Decode(std::vector<int32_t>{7}));
  const Json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), prompt.size() + 1);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  size_t offset = 0;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const std::string tok = tokenizer_->Decode(std::vector<int32_t>{prompt[i]});
    EXPECT_EQ(lp["tokens"][i], tok);
    EXPECT_EQ(lp["text_offset"][i], offset);
    offset += tok.size();
    if (i == 0) continue;
    EXPECT_FLOAT_EQ(lp["token_logprobs"][i].get<float>(), -1.0f - static_cast<float>(i));
    // OpenAI: the alternatives and the token itself.
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    EXPECT_FLOAT_EQ(lp["top_logprobs"][i][tok].get<float>(), -1.0f - static_cast<float>(i));
  }
  // The generated token follows, its offset just past the echoed prompt.
  EXPECT_FLOAT_EQ(lp["token_logprobs"][prompt.size()].get<float>(), -0.25f);
  EXPECT_EQ(lp["text_offset"][prompt.size()], offset);
  // vLLM's list: null, then token id -> {logprob, rank, decoded_token}.
  const Json& plp = choice["prompt_logprobs"];
  ASSERT_EQ(plp.size(), prompt.size());
  EXPECT_TRUE(plp[0].is_null());
  const Json& second = plp[1][std::to_string(prompt[1])];
  EXPECT_FLOAT_EQ(second["logprob"].get<float>(), -2.0f);
  EXPECT_EQ(second["rank"], 2);
  EXPECT_EQ(second["decoded_token"], tokenizer_->Decode(std::vector<int32_t>{prompt[1]}));
  EXPECT_EQ(plp[1]["3"]["rank"], 1);
}

TEST_F(PromptLogprobsApiTest, StreamingCarriesThePromptPartInTheFirstChunk) {
  const ParsedRequest r =
      Completions(R"({"prompt":"one two three","echo":true,"logprobs":1,"stream":true})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  const std::vector<std::string> chunks = b.StreamChunks(0, FirstEvent(r));
  ASSERT_FALSE(chunks.empty());
  const Json first = Json::parse(chunks[0])["choices"][0];
  EXPECT_EQ(first["text"], "one two three" + tokenizer_->Decode(std::vector<int32_t>{7}));
  EXPECT_EQ(first["logprobs"]["tokens"].size(), r.prompts[0].size() + 1);
  EXPECT_TRUE(first["logprobs"]["token_logprobs"][0].is_null());
}

TEST_F(PromptLogprobsApiTest, EchoWithMaxTokensZeroReturnsThePromptAlone) {
  const ParsedRequest r =
      Completions(R"({"prompt":"one two three","echo":true,"logprobs":1,"max_tokens":0})");
  EXPECT_TRUE(r.echo_only);
  EXPECT_EQ(r.base.stop.max_tokens, 1);  // the engine draws one token, left out below
  EXPECT_EQ(r.base.prompt_logprobs, 1);
  ExpectBadField("\"max_tokens\":0", "max_tokens");  // no echo: nothing to return
  ExpectBadField("\"max_tokens\":0", "max_tokens", Endpoint::kChat);
  const size_t n = r.prompts[0].size();
  {
    ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
    b.Add(0, FirstEvent(r));
    const Json body = Json::parse(b.FinalBody());
    const Json& choice = body["choices"][0];
    EXPECT_EQ(choice["text"], "one two three");
    EXPECT_EQ(choice["logprobs"]["tokens"].size(), n);
    EXPECT_EQ(choice["logprobs"]["token_logprobs"].size(), n);
    EXPECT_EQ(choice["finish_reason"], "length");
    EXPECT_EQ(body["usage"]["completion_tokens"], 0);
    EXPECT_EQ(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"]);
  }
  ParsedRequest streamed = r;
  streamed.stream = true;
  ResponseBuilder b(streamed, tokenizer_, "cmpl-x", 1);
  const std::vector<std::string> chunks = b.StreamChunks(0, FirstEvent(streamed));
  ASSERT_FALSE(chunks.empty());
  const Json first = Json::parse(chunks[0])["choices"][0];
  EXPECT_EQ(first["text"], "one two three");
  EXPECT_EQ(first["logprobs"]["tokens"].size(), n);
  EXPECT_EQ(b.completion_tokens(), 0);
}

TEST_F(PromptLogprobsApiTest, AOneTokenPromptEchoesItsTokenWithANullLogprob) {
  const ParsedRequest r = Completions(R"({"prompt":[40],"echo":true,"logprobs":1})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  b.Add(0, FirstEvent(r));  // no prompt entries: nothing predicts the first token
  const Json choice = Json::parse(b.FinalBody())["choices"][0];
  const Json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 2u);
  EXPECT_EQ(lp["tokens"][0], tokenizer_->Decode(std::vector<int32_t>{40}));
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -0.25f);
  EXPECT_EQ(lp["text_offset"][1], lp["tokens"][0].get<std::string>().size());
  ASSERT_EQ(choice["prompt_logprobs"].size(), 1u);
  EXPECT_TRUE(choice["prompt_logprobs"][0].is_null());
}

TEST_F(PromptLogprobsApiTest, PromptLogprobsAloneLeaveTheCompletionsLogprobsAlone) {
  const ParsedRequest r = Completions(R"({"prompt":"one two three","prompt_logprobs":1})");
  ResponseBuilder b(r, tokenizer_, "cmpl-x", 1);
  RequestEvent e = FirstEvent(r);
  e.logprobs.clear();
  b.Add(0, e);
  const Json choice = Json::parse(b.FinalBody())["choices"][0];
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(choice["text"], tokenizer_->Decode(std::vector<int32_t>{7}));
  EXPECT_EQ(choice["prompt_logprobs"].size(), r.prompts[0].size());
}

TEST_F(PromptLogprobsApiTest, ChatPutsTheListBesideTheChoices) {
  const ParsedRequest r =
      ParseOk(Endpoint::kChat,
              R"({"messages":[{"role":"user","content":"one two"}],"prompt_logprobs":1,"n":2})");
  ResponseBuilder b(r, tokenizer_, "chatcmpl-x", 1);
  RequestEvent e = FirstEvent(r);
  e.logprobs.clear();
  b.Add(0, e);
  e.index = 1;
  b.Add(0, e);
  const Json body = Json::parse(b.FinalBody());
  const Json& plp = body["prompt_logprobs"];
  ASSERT_EQ(plp.size(), r.prompts[0].size());  // the rendered chat prompt, token by token
  EXPECT_TRUE(plp[0].is_null());
  EXPECT_FLOAT_EQ(plp[1][std::to_string(r.prompts[0][1])]["logprob"].get<float>(), -2.0f);
  for (const Json& choice : body["choices"]) {
    EXPECT_FALSE(choice.contains("prompt_logprobs"));
    EXPECT_TRUE(choice["logprobs"].is_null());
    EXPECT_EQ(choice["message"]["content"], tokenizer_->Decode(std::vector<int32_t>{7}));
  }
}

}  // namespace
}  // namespace tinyserve
