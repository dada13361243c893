#include "structured/tool_calls.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "structured/compiler.h"
#include "structured/test_util.h"

namespace tinyserve::structured {
namespace {

TEST(ToolCallsTest, ParsesSeveralCallsAndKeepsContent) {
  const std::string text =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, "
      "\"b\": 2}}\n</tool_call>";
  const ParsedToolCalls p = ParseToolCalls(text);
  EXPECT_EQ(p.content, "Let me check.");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].index, 0);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(p.calls[0].arguments), nlohmann::json({{"city", "Paris"}}));
  EXPECT_EQ(p.calls[1].index, 1);
  EXPECT_EQ(p.calls[1].name, "add");
  EXPECT_EQ(nlohmann::json::parse(p.calls[1].arguments), nlohmann::json({{"a", 1}, {"b", 2}}));
}

TEST(ToolCallsTest, PlainTextHasNoCalls) {
  const ParsedToolCalls p = ParseToolCalls("  The answer is 4 < 5 and <tool is fine.  ");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "The answer is 4 < 5 and <tool is fine.");
}

TEST(ToolCallsTest, MalformedBlockStaysContent) {
  const ParsedToolCalls p = ParseToolCalls("<tool_call>\n{\"name\": oops}\n</tool_call>");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "<tool_call>\n{\"name\": oops}\n</tool_call>");
  // Unterminated but complete JSON (generation stopped at the close tag) still parses.
  const ParsedToolCalls q = ParseToolCalls("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n");
  ASSERT_EQ(q.calls.size(), 1u);
  EXPECT_EQ(q.calls[0].name, "f");
  EXPECT_EQ(q.calls[0].arguments, "{}");
}

TEST(ToolCallsTest, StreamingInAnyChunkingEqualsWholeParse) {
  const std::string text =
      "Sure<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": \"<tool_call>\"}}\n</tool_call>"
      "\n<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call> bye <tool";
  const ParsedToolCalls whole = ParseToolCalls(text);
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    ToolCallStreamParser p;
    std::string content;
    std::vector<ToolCall> calls;
    for (size_t pos = 0; pos < text.size();) {
      const size_t n = 1 + rng() % 7;
      ToolCallStreamParser::Delta d = p.Feed(std::string_view(text).substr(pos, n));
      pos += n;
      content += d.content;
      for (auto& c : d.calls) calls.push_back(c);
    }
    ToolCallStreamParser::Delta d = p.Finish();
    content += d.content;
    for (auto& c : d.calls) calls.push_back(c);
    ASSERT_EQ(calls.size(), whole.calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].name, whole.calls[i].name);
      EXPECT_EQ(calls[i].arguments, whole.calls[i].arguments);
      EXPECT_EQ(calls[i].index, static_cast<int32_t>(i));
    }
    // Streaming content is not trimmed at the end; the whole parse is.
    EXPECT_EQ(content.substr(0, whole.content.size()), whole.content);
  }
  EXPECT_EQ(whole.content, "Sure bye <tool");
}

TEST(ToolCallsTest, GrammarSpecForNamedAndRequired) {
  const std::string tools =
      R"([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}},{"type":"function","function":{"name":"g"}}])";
  auto named = ToolCallGrammarSpec(tools, "g");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  auto spec = nlohmann::json::parse(*named);
  EXPECT_EQ(spec["functions"].size(), 1u);
  EXPECT_EQ(spec["functions"][0]["name"], "g");
  EXPECT_FALSE(spec["multiple"].get<bool>());
  auto required = ToolCallGrammarSpec(tools, std::nullopt);
  ASSERT_TRUE(required.ok());
  EXPECT_EQ(nlohmann::json::parse(*required)["functions"].size(), 2u);
  EXPECT_FALSE(ToolCallGrammarSpec(tools, "missing").ok());
  EXPECT_FALSE(ToolCallGrammarSpec("{}", std::nullopt).ok());
}

TEST(ToolCallsTest, ConstrainedGenerationParsesToTheNamedCall) {
  auto vocab = testing::QwenVocabOrNull();
  if (!vocab) GTEST_FAIL() << "Qwen tokenizer files not found";
  const std::string tools =
      R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":10},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"]}}}])";
  auto spec = ToolCallGrammarSpec(tools, "get_weather");
  ASSERT_TRUE(spec.ok());
  auto g = CompileGrammar(GrammarKind::kToolCalls, *spec, vocab);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const testing::Generated out = testing::GenerateRandom(*g, seed, 80);
    ASSERT_TRUE(out.finished) << out.text;
    const ParsedToolCalls p = ParseToolCalls(out.text);
    ASSERT_EQ(p.calls.size(), 1u) << out.text;
    EXPECT_EQ(p.calls[0].name, "get_weather");
    const auto args = nlohmann::json::parse(p.calls[0].arguments);
    EXPECT_TRUE(args["city"].is_string());
    EXPECT_GE(args["days"].get<int>(), 1);
    EXPECT_LE(args["days"].get<int>(), 7);
    EXPECT_TRUE(p.content.empty()) << p.content;
  }
}

}  // namespace
}  // namespace tinyserve::structured
