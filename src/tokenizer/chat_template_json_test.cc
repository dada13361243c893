#include "tokenizer/chat_template_json.h"

#include <gtest/gtest.h>

#include <string>

namespace tinyserve {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(ParseUntrustedJson, DeepNestingIsRefusedWithoutRecursion) {
  EXPECT_TRUE(ParseUntrustedJson(Nested(kMaxJsonDepth)).ok());
  auto deep = ParseUntrustedJson(Nested(kMaxJsonDepth + 1));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), StatusCode::kOutOfRange);
  // A million levels: refused at level 65 while parsing; no stack is used per level.
  EXPECT_FALSE(ParseUntrustedJson(Nested(1000000)).ok());
  EXPECT_FALSE(ParseUntrustedJson("{\"a\":" + Nested(100000) + "}").ok());
}

TEST(ParseUntrustedJson, DuplicateKeysAreRefusedPerObject) {
  EXPECT_FALSE(ParseUntrustedJson(R"({"a":1,"b":{"x":1,"x":2}})").ok());
  EXPECT_FALSE(ParseUntrustedJson(R"({"a":1,"a":1})").ok());
  auto ok = ParseUntrustedJson(R"({"a":{"a":1},"b":[{"a":2},{"a":3}]})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["b"][1]["a"], 3);
}

TEST(ParseUntrustedJson, MalformedJsonMessageHasNoLibraryText) {
  auto bad = ParseUntrustedJson("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("json.exception"), std::string::npos);
}

}  // namespace
}  // namespace tinyserve
