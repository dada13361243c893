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

// `{"k0":0,"k1":1,...}` with `members` members.
std::string WideObject(size_t members) {
  std::string out = "{";
  for (size_t i = 0; i < members; ++i)
    out += (i == 0 ? "\"k" : ",\"k") + std::to_string(i) + "\":" + std::to_string(i);
  return out + "}";
}

TEST(ParseUntrustedJson, WideObjectsAreRefusedWhileParsing) {
  auto widest = ParseUntrustedJson(WideObject(kMaxJsonObjectMembers));
  ASSERT_TRUE(widest.ok());
  EXPECT_EQ(widest->size(), kMaxJsonObjectMembers);
  std::string where = "unset";
  auto wide = ParseUntrustedJson(WideObject(kMaxJsonObjectMembers + 1), kMaxJsonDepth, &where);
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(where, "") << "the body itself is too wide, not one of its members";
  // Nested: the error names the top-level member that holds the wide object.
  auto nested =
      ParseUntrustedJson("{\"a\":1,\"logit_bias\":" + WideObject(kMaxJsonObjectMembers + 1) + "}",
                         kMaxJsonDepth, &where);
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(where, "logit_bias");
  // Many objects each at the cap are fine: the cap is per object.
  std::string many = "[";
  for (int i = 0; i < 4; ++i) many += (i == 0 ? "" : ",") + WideObject(kMaxJsonObjectMembers);
  EXPECT_TRUE(ParseUntrustedJson(many + "]").ok());
}

// `[x,x,...]` with `count` copies of x.
std::string ArrayOf(std::string_view x, size_t count) {
  std::string out = "[";
  for (size_t i = 0; i < count; ++i) (out += i == 0 ? "" : ",") += x;
  return out + "]";
}

TEST(ParseUntrustedJson, StringsObjectsAndArraysAreCappedInAll) {
  // The outer array is one of the counted values.
  EXPECT_TRUE(ParseUntrustedJson(ArrayOf("[\"\"]", kMaxJsonHeapValues / 2 - 1)).ok());
  for (std::string_view x : {"\"\"", "[]", "{}"}) {
    auto over = ParseUntrustedJson(ArrayOf(x, kMaxJsonHeapValues));
    ASSERT_FALSE(over.ok()) << x;
    EXPECT_EQ(over.status().code(), StatusCode::kOutOfRange) << x;
  }
  // Spread over many members and levels, the count is still one for the whole text; the error
  // names the top-level member being parsed when it ran out.
  // a and b: an eighth of the cap each in one-string arrays (two values apiece), c the rest.
  const std::string eighth = ArrayOf("[\"x\"]", kMaxJsonHeapValues / 16);
  std::string where;
  auto spread = ParseUntrustedJson("{\"a\":" + eighth + ",\"b\":" + eighth +
                                       ",\"c\":" + ArrayOf("\"x\"", kMaxJsonHeapValues) + "}",
                                   kMaxJsonDepth, &where);
  ASSERT_FALSE(spread.ok());
  EXPECT_EQ(where, "c");
  // Numbers, booleans and null live in their parent's slot and are not counted: a prompt of
  // token ids may be long.
  auto numbers = ParseUntrustedJson(ArrayOf("1", kMaxJsonHeapValues + 1));
  ASSERT_TRUE(numbers.ok());
  EXPECT_EQ(numbers->size(), kMaxJsonHeapValues + 1);
  EXPECT_TRUE(ParseUntrustedJson(ArrayOf("true,null", kMaxJsonHeapValues / 2 + 1)).ok());
}

TEST(ParseUntrustedJson, MalformedJsonMessageHasNoLibraryText) {
  auto bad = ParseUntrustedJson("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("json.exception"), std::string::npos);
}

}  // namespace
}  // namespace tinyserve
