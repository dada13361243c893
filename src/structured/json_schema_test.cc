#include "structured/json_schema.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "structured/test_byte_vocab.h"

namespace tinyserve::structured {
namespace {

using testing::Accepts;
using testing::ByteVocab;

std::shared_ptr<const CompiledGrammar> Schema(const std::string& text) {
  auto g = CompileGrammar(GrammarKind::kJsonSchema, text, ByteVocab());
  EXPECT_TRUE(g.ok()) << text << ": " << g.status().ToString();
  return g.ok() ? *g : nullptr;
}

TEST(JsonSchemaTest, IntegerRangesAreExact) {
  struct Case {
    std::string schema;
    int64_t lo, hi;  // inclusive; +-1e9 for unbounded
  };
  const std::vector<Case> cases = {
      {R"({"type":"integer","minimum":-123,"maximum":4567})", -123, 4567},
      {R"({"type":"integer","minimum":7})", 7, 1000000000},
      {R"({"type":"integer","maximum":-15})", -1000000000, -15},
      {R"({"type":"integer","exclusiveMinimum":-1,"exclusiveMaximum":100})", 0, 99},
      {R"({"type":"integer","minimum":0,"maximum":0})", 0, 0},
      {R"({"type":"integer","minimum":1.5,"maximum":20.2})", 2, 20},
      {R"({"type":"integer","minimum":-99,"maximum":-10})", -99, -10},
      {R"({"type":"integer","minimum":95,"maximum":1005})", 95, 1005},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.schema);
    auto g = Schema(c.schema);
    ASSERT_NE(g, nullptr);
    for (int64_t n = -3000; n <= 6000; ++n) {
      ASSERT_EQ(Accepts(g, std::to_string(n)), n >= c.lo && n <= c.hi) << n;
    }
    EXPECT_FALSE(Accepts(g, "007"));
    EXPECT_FALSE(Accepts(g, "-0"));
    EXPECT_FALSE(Accepts(g, "1.0"));
  }
}

TEST(JsonSchemaTest, BoundedNumbersStayInRange) {
  auto g = Schema(R"({"type":"number","minimum":-2.5,"maximum":7.25})");
  ASSERT_NE(g, nullptr);
  std::mt19937_64 rng(3);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    const int whole = static_cast<int>(rng() % 21) - 10;
    std::string s = std::to_string(whole);
    if (rng() % 2) s += "." + std::to_string(rng() % 1000);
    if (rng() % 7 == 0) s.insert(0, "-");
    if (Accepts(g, s)) {
      ++accepted;
      const double v = std::stod(s);
      ASSERT_GE(v, -2.5) << s;
      ASSERT_LE(v, 7.25) << s;
    }
  }
  EXPECT_GT(accepted, 1000);
  for (const char* ok : {"0", "-2", "7", "6.99", "-1.5", "-0.25", "3"})
    EXPECT_TRUE(Accepts(g, ok)) << ok;
  for (const char* bad : {"8", "-3", "7.5", "1e3", "01"}) EXPECT_FALSE(Accepts(g, bad)) << bad;
}

TEST(JsonSchemaTest, ObjectsFollowPropertiesRequiredAndOrder) {
  auto g = Schema(
      R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},"required":["b"]})");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(Accepts(g, R"({"b":"x"})"));
  EXPECT_TRUE(Accepts(g, R"({"a": 1, "b": "x", "c": true})"));
  EXPECT_TRUE(Accepts(g, R"({"a":1,"b":"x"})"));
  EXPECT_TRUE(Accepts(g, R"({"b":"x","c":false})"));
  EXPECT_FALSE(Accepts(g, R"({"a":1})"));          // b required
  EXPECT_FALSE(Accepts(g, R"({"b":"x","d":1})"));  // no additional properties
  EXPECT_FALSE(Accepts(g, R"({"b":"x",})"));
  EXPECT_FALSE(Accepts(g, R"({,"b":"x"})"));
}

TEST(JsonSchemaTest, ArraysHonourPrefixItemsAndCounts) {
  auto g = Schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(Accepts(g, "[1]"));
  EXPECT_TRUE(Accepts(g, "[1,2]"));
  EXPECT_TRUE(Accepts(g, "[1, 2, 3]"));
  EXPECT_FALSE(Accepts(g, "[1,2,3,4]"));
  auto t =
      Schema(R"({"type":"array","prefixItems":[{"type":"string"},{"type":"null"}],"items":false})");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(Accepts(t, R"(["a",null])"));
  EXPECT_TRUE(Accepts(t, R"(["a"])"));
  EXPECT_TRUE(Accepts(t, "[]"));
  EXPECT_FALSE(Accepts(t, R"(["a",null,1])"));
}

TEST(JsonSchemaTest, RecursiveRefsAndStringConstraints) {
  auto g = Schema(
      R"({"$defs":{"t":{"type":"object","properties":{"n":{"type":"string","minLength":1,"maxLength":3},"c":{"type":"array","items":{"$ref":"#/$defs/t"}}},"required":["n"]}},"$ref":"#/$defs/t"})");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(Accepts(g, R"({"n":"a","c":[{"n":"bc","c":[]},{"n":"d\"e"}]})"));
  EXPECT_FALSE(Accepts(g, R"({"n":""})"));
  EXPECT_FALSE(Accepts(g, R"({"n":"abcd"})"));
  auto f = Schema(R"({"type":"string","format":"date"})");
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(Accepts(f, R"("2024-02-28")"));
  EXPECT_FALSE(Accepts(f, R"("2024-02-31")"));
  EXPECT_FALSE(Accepts(f, R"("2024-13-01")"));
}

TEST(JsonSchemaTest, UnsupportedKeywordsAreListed) {
  auto g = CompileToGrammar(
      GrammarKind::kJsonSchema,
      R"({"type":"object","minProperties":1,"properties":{"a":{"type":"string","contentEncoding":"base64"}},"patternProperties":{}})");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("/minProperties"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("/properties/a/contentEncoding"), std::string::npos);
  EXPECT_NE(g.status().message().find("/patternProperties"), std::string::npos);
  auto fmt = CompileToGrammar(GrammarKind::kJsonSchema, R"({"type":"string","format":"hostname"})");
  ASSERT_FALSE(fmt.ok());
  EXPECT_NE(fmt.status().message().find("hostname"), std::string::npos);
}

// Pydantic writes EmailStr with max_length as format + maxLength: lengths every string of the
// format meets are no constraint; narrower ones, and a pattern with lengths, are refused by name.
TEST(JsonSchemaTest, FormatWithLengthsItAlwaysMeetsIsTheFormat) {
  auto email = Schema(R"({"type":"string","format":"email","minLength":3,"maxLength":254})");
  ASSERT_NE(email, nullptr);
  EXPECT_TRUE(Accepts(email, R"("ann.lee@mail.example.org")"));
  EXPECT_FALSE(Accepts(email, R"("ann.lee")"));
  auto uuid = Schema(R"({"type":"string","format":"uuid","minLength":36,"maxLength":36})");
  ASSERT_NE(uuid, nullptr);
  EXPECT_TRUE(Accepts(uuid, R"("123e4567-e89b-12d3-a456-426614174000")"));
  for (const char* narrower : {R"({"type":"string","format":"date-time","maxLength":25})",
                               R"({"type":"string","format":"ipv4","minLength":8})"}) {
    auto g = CompileToGrammar(GrammarKind::kJsonSchema, narrower);
    ASSERT_FALSE(g.ok()) << narrower;
    EXPECT_NE(g.status().message().find("narrower"), std::string::npos) << g.status().message();
  }
  auto both = CompileToGrammar(GrammarKind::kJsonSchema,
                               R"({"type":"string","pattern":"^a+$","maxLength":4})");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("/ (pattern combined"), std::string::npos)
      << both.status().message();
}

// const and enum keep only the values of the schema's type, as a validator does
// (python-jsonschema: {"const": 1, "type": "string"} matches nothing; 1.0 is an integer).
TEST(JsonSchemaTest, ConstAndEnumKeepOnlyValuesOfTheType) {
  auto g = Schema(R"({"enum":["a",1,null,2.0,2.5],"type":["string","integer"]})");
  for (const char* ok : {R"("a")", "1", "2.0"}) EXPECT_TRUE(Accepts(g, ok)) << ok;
  for (const char* bad : {"null", "2.5"}) EXPECT_FALSE(Accepts(g, bad)) << bad;
  EXPECT_TRUE(Accepts(Schema(R"({"const":{"k":[1]},"type":"object"})"), R"({"k":[1]})"));
  EXPECT_TRUE(Accepts(Schema(R"({"enum":[true,null]})"), "null"));  // no type: all values
  for (const char* none :
       {R"({"const":1,"type":"string"})", R"({"enum":[1.5,"x"],"type":"integer"})",
        R"({"enum":[[],{}],"type":["null","boolean"]})"}) {
    auto r = CompileToGrammar(GrammarKind::kJsonSchema, none);
    ASSERT_FALSE(r.ok()) << none;
    EXPECT_NE(r.status().message().find("no value of the schema's 'type'"), std::string::npos)
        << r.status().message();
  }
}

TEST(JsonSchemaTest, BadAndOversizedSchemasAreErrors) {
  for (const char* bad :
       {"{", "[]", R"({"$ref":"#/$defs/missing"})", R"({"$ref":"http://x/y"})", "false",
        R"({"type":"integer","minimum":5,"maximum":1})", R"({"type":"bogus"})", R"({"enum":[]})",
        R"({"type":"string","maxLength":99999999})",
        R"({"type":"object","properties":{"a":{}},"required":["b"]})",
        R"({"type":"array","minItems":3,"maxItems":2})",
        R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})"}) {
    EXPECT_FALSE(CompileToGrammar(GrammarKind::kJsonSchema, bad).ok()) << bad;
  }
  std::string deep = R"({"type":"string"})";
  for (int i = 0; i < 40; ++i) deep = fmt::format(R"({{"type":"array","items":{}}})", deep);
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kJsonSchema, deep).ok());
  std::string wide = R"({"type":"object","properties":{)";
  for (int i = 0; i < 20000; ++i)
    wide += (i ? "," : "") + std::string("\"p") + std::to_string(i) + "\":{\"type\":\"integer\"}";
  wide += "}}";
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kJsonSchema, wide).ok());
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kJsonSchema, std::string(300 * 1024, ' ')).ok());
}

TEST(JsonSchemaTest, AnyJsonObjectAcceptsObjectsOnly) {
  auto g = CompileGrammar(GrammarKind::kJsonObject, "", ByteVocab());
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(Accepts(*g, R"({"a": [1, -2.5e3, {"b": null}], "c": "\u00e9"})"));
  EXPECT_TRUE(Accepts(*g, "{}"));
  EXPECT_FALSE(Accepts(*g, "[1]"));
  EXPECT_FALSE(Accepts(*g, R"({"a":01})"));
}

}  // namespace
}  // namespace tinyserve::structured
