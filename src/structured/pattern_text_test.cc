#include "structured/pattern_text.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "structured/compiler.h"
#include "structured/test_byte_vocab.h"

namespace tinyserve::structured {
namespace {

TEST(PatternTextTest, ReadCodePointDecodesEachLengthAndMovesPast) {
  const std::string_view s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a, é, €, 😀
  size_t pos = 0;
  for (uint32_t want : {0x61u, 0xE9u, 0x20ACu, 0x1F600u}) {
    const std::optional<uint32_t> cp = ReadCodePoint(s, &pos);
    ASSERT_TRUE(cp.has_value()) << pos;
    EXPECT_EQ(*cp, want);
  }
  EXPECT_EQ(pos, s.size());
}

// What the parsers once decoded by the lead byte alone: each is an error now, pos unmoved.
TEST(PatternTextTest, ReadCodePointRejectsInvalidUtf8) {
  const std::string_view bads[] = {
      "\xC0\x80",          // overlong NUL
      "\xED\xA0\x80",      // a UTF-16 surrogate
      "\xF4\x90\x80\x80",  // past U+10FFFF
      "\xE2\x82",          // truncated
      "\xC3(",             // not a continuation byte
      "\x80",              // a lone continuation byte
  };
  for (std::string_view bad : bads) {
    size_t pos = 0;
    EXPECT_FALSE(ReadCodePoint(bad, &pos).has_value());
    EXPECT_EQ(pos, 0u);
  }
}

TEST(PatternTextTest, ReadHexDigits) {
  size_t pos = 1;
  EXPECT_EQ(ReadHexDigits("x00aF7", &pos, 4), std::optional<uint32_t>(0xAF));
  EXPECT_EQ(pos, 5u);
  pos = 0;
  EXPECT_FALSE(ReadHexDigits("1g", &pos, 2).has_value());
  EXPECT_EQ(pos, 1u);  // at the byte that is not a digit (the parsers' error offset)
  pos = 0;
  EXPECT_FALSE(ReadHexDigits("1", &pos, 2).has_value());
}

// Through both parsers: a pattern with an overlong or surrogate sequence is a clear error.
TEST(PatternTextTest, GrammarsWithInvalidUtf8AreErrors) {
  const struct {
    GrammarKind kind;
    std::string_view text;
  } cases[] = {
      {GrammarKind::kRegex, "a\xC0\x80"},
      {GrammarKind::kRegex, "[\xED\xA0\x80]"},
      {GrammarKind::kGbnf, "root ::= \"\xC0\x80\""},
      {GrammarKind::kGbnf, "root ::= [\xED\xA0\x80]"},
  };
  for (const auto& c : cases) {
    auto g = CompileGrammar(c.kind, c.text, testing::ByteVocab());
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_NE(g.status().message().find("invalid UTF-8"), std::string::npos)
        << g.status().ToString();
  }
  EXPECT_TRUE(CompileGrammar(GrammarKind::kRegex, "\xC3\xA9+", testing::ByteVocab()).ok());
  EXPECT_TRUE(
      CompileGrammar(GrammarKind::kGbnf, "root ::= \"\xE2\x82\xAC\"", testing::ByteVocab()).ok());
}

}  // namespace
}  // namespace tinyserve::structured
