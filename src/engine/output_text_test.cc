#include "engine/output_text.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

// Feeds `pieces` and returns the concatenated stream, checking no delta ever contains `stop`.
std::string Feed(OutputText& t, const std::vector<std::string>& pieces, bool* stopped,
                 const std::string& forbidden = "") {
  std::string stream;
  *stopped = false;
  for (const std::string& p : pieces) {
    OutputText::Update u = t.Append(p, true);
    stream += u.delta;
    if (!forbidden.empty()) {
      EXPECT_EQ(stream.find(forbidden), std::string::npos) << stream;
    }
    if (u.stopped) {
      *stopped = true;
      return stream;
    }
  }
  return stream + t.Flush();
}

TEST(OutputTextTest, StopStringSplitAcrossTokensNeverLeaks) {
  OutputText t({"</stop>"}, false);
  bool stopped;
  // Every prefix of the stop string is held back until the match completes.
  std::string s = Feed(t, {"Hello <", "/st", "op", "> tail"}, &stopped, "<");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(s, "Hello ");
}

TEST(OutputTextTest, HeldBackTextIsReleasedWhenItCannotBecomeAStop) {
  OutputText t({"abc"}, false);
  OutputText::Update u1 = t.Append("xa", true);
  EXPECT_EQ(u1.delta, "x");
  OutputText::Update u2 = t.Append("b", true);
  EXPECT_EQ(u2.delta, "");
  OutputText::Update u3 = t.Append("d", true);
  EXPECT_EQ(u3.delta, "abd");
  EXPECT_FALSE(u3.stopped);
}

TEST(OutputTextTest, IncludeStopStringKeepsIt) {
  OutputText t({"END"}, true);
  bool stopped;
  EXPECT_EQ(Feed(t, {"okE", "ND more"}, &stopped), "okEND");
  EXPECT_TRUE(stopped);
}

TEST(OutputTextTest, EarliestOfSeveralStopsWins) {
  OutputText t({"cd", "b"}, false);
  bool stopped;
  EXPECT_EQ(Feed(t, {"abcd"}, &stopped), "a");
}

TEST(OutputTextTest, Utf8CharacterSplitAcrossTokensIsEmittedWhole) {
  OutputText t({}, false);
  // U+20AC (euro sign) is E2 82 AC.
  EXPECT_EQ(t.Append("a\xE2", true).delta, "a");
  EXPECT_EQ(t.Append("\x82", true).delta, "");
  EXPECT_EQ(t.Append("\xAC", true).delta, "\xE2\x82\xAC");
  // A dangling partial character at the end becomes U+FFFD; invalid bytes too.
  EXPECT_EQ(t.Append("\xF0\x9F", true).delta, "");
  EXPECT_EQ(t.Flush(), "\xEF\xBF\xBD");
  OutputText bad({}, false);
  EXPECT_EQ(bad.Append("\xFFok", true).delta, "\xEF\xBF\xBDok");
}

TEST(OutputTextTest, StopsAreIgnoredUntilCheckingStarts) {
  OutputText t({"x"}, false);
  OutputText::Update u = t.Append("axb", /*check_stop=*/false);
  EXPECT_FALSE(u.stopped);
  EXPECT_EQ(u.delta, "axb");
}

// The engine decodes through the tokenizer's streaming decoder: invalid bytes follow the
// maximal-subpart rule (RepairUtf8), the same text Hugging Face's decode gives.
TEST(OutputTextTest, InvalidBytesBecomeOneReplacementPerMaximalSubpart) {
  OutputText t({}, false);
  std::string out = t.Append("a\xF0\x9F", true).delta;
  out += t.Append("x\xED\xA0\x80", true).delta;
  out += t.Flush();
  EXPECT_EQ(out, "a\uFFFDx\uFFFD\uFFFD\uFFFD");
}

}  // namespace
}  // namespace tinyserve
