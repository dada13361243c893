#include "structured/regex.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "structured/test_byte_vocab.h"

namespace tinyserve::structured {
namespace {

using testing::Accepts;
using testing::ByteVocab;

std::shared_ptr<const CompiledGrammar> CompileRegex(const std::string& pattern) {
  auto g = CompileGrammar(GrammarKind::kRegex, pattern, ByteVocab());
  EXPECT_TRUE(g.ok()) << pattern << ": " << g.status().ToString();
  return g.ok() ? *g : nullptr;
}

// The automaton accepts exactly what std::regex (ECMAScript, full match) accepts, on random
// strings over the characters that matter to each pattern.
TEST(RegexTest, AcceptsExactlyWhatStdRegexFullMatches) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ab*c", "abcx"},   {"(a|bc)+d?", "abcd"},          {"[a-c]{2,4}x", "abcx"},
      {"[^ab]c", "abcz"}, {"(ab|a)(bc|c)", "abc"},        {"\\d{3}-\\d{2}", "0123-a"},
      {"x(a+)+y", "axy"}, {"\\w+@\\w+\\.com", "a@.com_"}, {"(foo|bar){1,2}(baz)?", "fobarz"},
      {"a.b", "ab\n."},   {"[-a]\\s?[0-9]*", "-a 09"},    {"(a{2}|b{3}){2}", "ab"},
      {"^a|b$", "ab"},
  };
  std::mt19937_64 rng(11);
  for (const auto& [pattern, alphabet] : cases) {
    SCOPED_TRACE(pattern);
    auto g = CompileRegex(pattern);
    ASSERT_NE(g, nullptr);
    const std::regex re(pattern, std::regex::ECMAScript);
    for (int i = 0; i < 400; ++i) {
      std::string s;
      const int len = static_cast<int>(rng() % 9);
      for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
      ASSERT_EQ(Accepts(g, s), std::regex_match(s, re)) << "'" << s << "'";
    }
  }
}

TEST(RegexTest, MatchesUtf8ClassesByCodePoint) {
  auto g = CompileRegex("[α-ω]{2}[^é]");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(Accepts(g, "αβx"));
  EXPECT_TRUE(Accepts(g, "ωωü"));
  EXPECT_FALSE(Accepts(g, "αβé"));
  EXPECT_FALSE(Accepts(g, "abx"));
  EXPECT_FALSE(Accepts(g, "α\xce\xb2"));  // incomplete: β then nothing
}

TEST(RegexTest, UnsupportedSyntaxIsAnError) {
  for (const char* p : {"(a)\\1", "a(?=b)", "(?i)a", "\\bword", "a{3,1}", "[z-a]", "(ab", "ab)",
                        "*a", "a++", "a^b", "\\q"}) {
    auto e = ParseRegex(p);
    EXPECT_FALSE(e.ok()) << p;
  }
}

TEST(RegexTest, PathologicalPatternsCompileOrFailQuickly) {
  // Catastrophic-backtracking shapes are plain automata here: matching stays linear.
  auto g = CompileRegex("(a+)+$");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(Accepts(g, std::string(5000, 'a')));
  EXPECT_FALSE(Accepts(g, std::string(5000, 'a') + "b"));
  auto g2 = CompileRegex("(a|aa)*(b|a*)*c");
  ASSERT_NE(g2, nullptr);
  EXPECT_FALSE(Accepts(g2, std::string(3000, 'a')));
  // Huge counted repetitions are refused instead of expanded.
  for (const char* p :
       {"a{100000}", "(a{1000}){1000}", "((a{100}){100}){100}", "(((x{999}){999}){999}){999}"}) {
    auto c = CompileGrammar(GrammarKind::kRegex, p, ByteVocab());
    EXPECT_FALSE(c.ok()) << p;
  }
}

}  // namespace
}  // namespace tinyserve::structured
