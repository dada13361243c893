// The fixture of the OpenAI protocol tests: the shared Qwen2.5 tokenizer, a small ApiContext
// (model "tiny", vocabulary 1000, context 64) and helpers that parse a body or expect its 400.
// Header-only; tests only.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "server/errors.h"
#include "server/openai_api.h"
#include "tokenizer/testing/qwen_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve::testing {

class OpenAiApiFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tokenizer_ = testing::SharedQwenTokenizer().tokenizer; }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_FAIL() << testing::SharedQwenTokenizer().error;
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
  // (`extra` may replace the prompt / messages: duplicate keys are an error of their own.)
  ApiError Error(const std::string& extra, Endpoint e = Endpoint::kCompletions) {
    const std::string key = e == Endpoint::kCompletions ? "\"prompt\"" : "\"messages\"";
    std::string base = e == Endpoint::kCompletions
                           ? "\"prompt\":\"hi\""
                           : "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    if (extra.rfind(key, 0) == 0) base.clear();
    const std::string body = "{" + base + (base.empty() || extra.empty() ? "" : ",") + extra + "}";
    auto r = Parse(e, body);
    if (!std::holds_alternative<ApiError>(r)) {
      ADD_FAILURE() << "accepted: " << body;
      return {};
    }
    return std::get<ApiError>(r);
  }
  // An engine event of choice `index`: tokens `ids` shown as `text`; a final one (finish set)
  // carries a usage with one cached prompt token.
  static RequestEvent Event(int32_t index, std::vector<int32_t> ids, std::string text,
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
  void ExpectBadField(const std::string& extra, const std::string& param,
                      Endpoint e = Endpoint::kCompletions) {
    SCOPED_TRACE(extra);
    ApiError err = Error(extra, e);
    EXPECT_EQ(err.http_status, 400);
    EXPECT_EQ(err.type, "invalid_request_error");
    EXPECT_EQ(err.param, param);
    EXPECT_FALSE(err.message.empty());
  }

  inline static const Tokenizer* tokenizer_ = nullptr;
  ApiContext ctx_;
};

}  // namespace tinyserve::testing
