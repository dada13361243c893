#include "bench/json_schema.h"

#include <gtest/gtest.h>

namespace tinyserve::bench {
namespace {

using nlohmann::json;

bool Valid(const json& schema, const json& instance) {
  return ValidateJsonSchema(schema, instance).ok();
}

TEST(JsonSchemaTest, TypesFollowJsonSchemaNotCpp) {
  EXPECT_TRUE(Valid({{"type", "integer"}}, json(3)));
  EXPECT_TRUE(Valid({{"type", "integer"}}, json(3.0)));  // 3.0 is an integer in JSON Schema.
  EXPECT_FALSE(Valid({{"type", "integer"}}, json(3.5)));
  EXPECT_TRUE(Valid({{"type", "number"}}, json(3)));
  EXPECT_FALSE(Valid({{"type", "number"}}, json(true)));  // Booleans are not numbers.
  EXPECT_FALSE(Valid({{"type", "integer"}}, json(false)));
  EXPECT_TRUE(Valid({{"type", json::array({"string", "null"})}}, json(nullptr)));
  EXPECT_FALSE(Valid({{"type", json::array({"string", "null"})}}, json(1)));
}

TEST(JsonSchemaTest, RequiredPropertiesAndAdditionalProperties) {
  json schema = json::parse(R"({"type":"object","required":["a"],
      "properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false})");
  EXPECT_TRUE(Valid(schema, json::parse(R"({"a":"x"})")));
  EXPECT_TRUE(Valid(schema, json::parse(R"({"a":"x","b":2})")));
  Status missing = ValidateJsonSchema(schema, json::parse(R"({"b":2})"));
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("\"a\""), std::string::npos);
  EXPECT_FALSE(Valid(schema, json::parse(R"({"a":"x","c":1})")));
  Status nested = ValidateJsonSchema(schema, json::parse(R"({"a":"x","b":"two"})"));
  EXPECT_NE(nested.message().find("$.b"), std::string::npos) << nested.message();
}

TEST(JsonSchemaTest, NumericBoundsIncludingExclusive) {
  json schema = {{"type", "number"}, {"minimum", 0}, {"maximum", 10}};
  EXPECT_TRUE(Valid(schema, 0));
  EXPECT_TRUE(Valid(schema, 10));
  EXPECT_FALSE(Valid(schema, -0.001));
  EXPECT_FALSE(Valid(schema, 10.5));
  json exclusive = {{"exclusiveMinimum", 0}, {"exclusiveMaximum", 1}};
  EXPECT_FALSE(Valid(exclusive, 0));
  EXPECT_TRUE(Valid(exclusive, 0.5));
  EXPECT_FALSE(Valid(exclusive, 1));
}

TEST(JsonSchemaTest, StringLengthCountsCharactersNotBytes) {
  json schema = {{"type", "string"}, {"minLength", 2}, {"maxLength", 3}};
  EXPECT_TRUE(Valid(schema, "数据库"));  // 3 characters, 9 bytes.
  EXPECT_FALSE(Valid(schema, "数"));
  EXPECT_FALSE(Valid(schema, "abcd"));
}

TEST(JsonSchemaTest, ArraysCheckCountsAndEveryItem) {
  json schema = json::parse(
      R"({"type":"array","minItems":1,"maxItems":2,"items":{"type":"integer","minimum":1}})");
  EXPECT_TRUE(Valid(schema, json::parse("[1,2]")));
  EXPECT_FALSE(Valid(schema, json::parse("[]")));
  EXPECT_FALSE(Valid(schema, json::parse("[1,2,3]")));
  Status bad = ValidateJsonSchema(schema, json::parse("[1,0]"));
  EXPECT_NE(bad.message().find("$[1]"), std::string::npos) << bad.message();
}

TEST(JsonSchemaTest, EnumConstAndAnyOf) {
  EXPECT_TRUE(Valid({{"enum", {"a", 1, nullptr}}}, 1.0));
  EXPECT_FALSE(Valid({{"enum", {"a", 1}}}, true));
  EXPECT_TRUE(Valid({{"const", false}}, false));
  EXPECT_FALSE(Valid({{"const", false}}, 0));
  json any = json::parse(R"({"anyOf":[{"type":"string"},{"type":"integer","minimum":5}]})");
  EXPECT_TRUE(Valid(any, "x"));
  EXPECT_TRUE(Valid(any, 7));
  EXPECT_FALSE(Valid(any, 3));
}

TEST(JsonSchemaTest, SupportCheckRejectsUnknownKeywordsButAllowsAnnotations) {
  EXPECT_TRUE(
      CheckSchemaSupported(
          json::parse(
              R"({"title":"t","description":"d","type":"object","properties":{"a":{"type":"string"}}})"))
          .ok());
  Status pattern = CheckSchemaSupported(
      json::parse(R"({"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}})"));
  EXPECT_EQ(pattern.code(), StatusCode::kUnimplemented);
  EXPECT_NE(pattern.message().find("properties.a"), std::string::npos) << pattern.message();
  EXPECT_FALSE(CheckSchemaSupported(json::parse(R"({"minimum":"3"})")).ok());
  EXPECT_FALSE(CheckSchemaSupported(json(3)).ok());
}

}  // namespace
}  // namespace tinyserve::bench
