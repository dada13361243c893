// Regression tests for hostile grammars (issue 17, classes 1, 2 and 5): each test is named after
// an attack that crashed, froze or bloated the server, and checks it now fails cleanly
// (InvalidArgument at compile time, or a matcher error) or is normalised away.
#include <gtest/gtest.h>

#include <string>

#include "structured/compiler.h"
#include "structured/gbnf.h"
#include "structured/json_limits.h"
#include "structured/json_schema.h"
#include "structured/matcher.h"
#include "structured/test_byte_vocab.h"
#include "structured/test_util.h"
#include "structured/tool_calls.h"

namespace tinyserve::structured {
namespace {

using testing::Accepts;
using testing::ByteVocab;

bool IsInvalidArgument(const Status& s, std::string_view needle) {
  return s.code() == StatusCode::kInvalidArgument &&
         s.message().find(needle) != std::string_view::npos;
}

// Generous time limits: these tests check which limit fails, and a loaded machine must not turn
// a size error into a time-limit one (CompileTimeLimitIsCheckedDuringCompilation sets its own).
CompileOptions Patient() {
  CompileOptions o;
  o.time_limit = std::chrono::minutes(5);
  o.warm_time = std::chrono::minutes(5);
  return o;
}

std::string Nested(int depth, char open, char close) {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(HostileGrammarTest, GbnfRuleWith200000PostfixOperatorsIsRejected) {
  for (char op : {'*', '+', '?'}) {
    const std::string text = "root ::= \"a\"" + std::string(200000, op);
    auto g = CompileToGrammar(GrammarKind::kGbnf, text, Patient());
    ASSERT_FALSE(g.ok());
    EXPECT_TRUE(IsInvalidArgument(g.status(), "repetition operators")) << g.status().ToString();
  }
  std::string braces = "root ::= \"a\"";
  for (int i = 0; i < 50000; ++i) braces += "{1}";
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kGbnf, braces, Patient()).ok());
  // A few stacked operators still work.
  auto ok = CompileGrammar(GrammarKind::kGbnf, "root ::= (\"a\"?)*", ByteVocab(), Patient());
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(Accepts(*ok, "aaa"));
}

TEST(HostileGrammarTest, RegexOf99990QuantifiersIsRejected) {
  for (const char* q : {"*", "{1}", "+"}) {
    std::string pattern = "a";
    while (pattern.size() < 99990) pattern += q;
    auto g = CompileToGrammar(GrammarKind::kRegex, pattern, Patient());
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status().ToString();
  }
}

TEST(HostileGrammarTest, DeeplyNestedGroupsAreRejectedNotRecursed) {
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kRegex, Nested(50000, '(', ')'), Patient()).ok());
  const std::string gbnf =
      "root ::= " + std::string(100000, '(') + "\"a\"" + std::string(100000, ')');
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kGbnf, gbnf, Patient()).ok());
}

TEST(HostileGrammarTest, SchemaRefChainCountsDepthAcrossRefs) {
  auto chain = [](int links) {
    std::string defs;
    for (int i = 0; i < links; ++i) {
      defs += fmt::format("\"d{}\": {{\"$ref\": \"#/$defs/d{}\"}},", i, i + 1);
    }
    defs += fmt::format("\"d{}\": {{\"type\": \"integer\"}}", links);
    return fmt::format("{{\"$ref\": \"#/$defs/d0\", \"$defs\": {{{}}}}}", defs);
  };
  // A short chain compiles; 100 links exceed max_schema_depth (32) although no single
  // schema nests; 5,000 links must not recurse 5,000 levels.
  auto short_chain = CompileGrammar(GrammarKind::kJsonSchema, chain(8), ByteVocab(), Patient());
  ASSERT_TRUE(short_chain.ok()) << short_chain.status().ToString();
  EXPECT_TRUE(Accepts(*short_chain, "42"));
  for (int links : {100, 5000}) {
    auto g = CompileToGrammar(GrammarKind::kJsonSchema, chain(links), Patient());
    ASSERT_FALSE(g.ok()) << links;
    EXPECT_TRUE(IsInvalidArgument(g.status(), "nested deeper")) << g.status().ToString();
  }
}

TEST(HostileGrammarTest, DeeplyNestedJsonInSchemaConstIsRejected) {
  const std::string deep = Nested(100000, '[', ']');
  auto g = CompileToGrammar(GrammarKind::kJsonSchema, "{\"const\": " + deep + "}", Patient());
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(IsInvalidArgument(g.status(), "nests deeper")) << g.status().ToString();
  // Brackets inside strings do not count.
  EXPECT_EQ(JsonNestingDepth("{\"a\": \"[[[[\\\"[[\"}"), 1);
  // A tool's parameters and a choice list are checked the same way.
  EXPECT_FALSE(
      ToolCallGrammarSpec("[{\"function\": {\"name\": \"f\", \"parameters\": " + deep + "}}]",
                          std::nullopt)
          .ok());
  EXPECT_FALSE(
      CompileToGrammar(GrammarKind::kToolCalls,
                       "{\"functions\": [{\"name\": \"f\", \"parameters\": " + deep + "}]}")
          .ok());
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kChoice, "[" + deep + "]", Patient()).ok());
}

TEST(HostileGrammarTest, ModelToolCallWithDeeplyNestedArgumentsStaysContent) {
  const std::string text =
      "<tool_call>\n{\"name\": \"f\", \"arguments\": " + Nested(200000, '[', ']') +
      "}\n</tool_call>";
  const ParsedToolCalls parsed = ParseToolCalls(text);
  EXPECT_TRUE(parsed.calls.empty());
  EXPECT_FALSE(parsed.content.empty());
}

TEST(HostileGrammarTest, HugePropertyNamesDoNotMultiplyIntoRuleNames) {
  // 300 properties below one 4 KB name: each of the ~600 rules below held a copy (2.4 MB; with
  // larger schemas, gigabytes).
  std::string props;
  for (int i = 0; i < 300; ++i) props += fmt::format("\"p{}\": {{\"type\": \"integer\"}},", i);
  props.pop_back();
  const std::string schema = "{\"type\": \"object\", \"properties\": {\"" + std::string(4000, 'n') +
                             "\": {\"type\": \"object\", "
                             "\"properties\": {" +
                             props + "}}}}";
  auto g = CompileToGrammar(GrammarKind::kJsonSchema, schema, Patient());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  size_t name_bytes = 0;
  for (const GrammarRule& r : g->rules) name_bytes += r.name.size();
  EXPECT_LT(name_bytes, 300000u);  // was over 600 * 4,000
}

TEST(HostileGrammarTest, LeftRecursionThroughA20000RuleChainIsFoundIteratively) {
  std::string text = "root ::= r0\n";
  for (int i = 0; i < 19990; ++i) text += fmt::format("r{} ::= r{} \"a\"\n", i, i + 1);
  const std::string acyclic = text + "r19990 ::= \"a\"\n";
  auto ok = CompileGbnf(acyclic, GrammarLimits{});
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  auto cyclic = CompileGbnf(text + "r19990 ::= r0 \"a\" | \"b\"\n", GrammarLimits{});
  ASSERT_FALSE(cyclic.ok());
  EXPECT_TRUE(IsInvalidArgument(cyclic.status(), "left recursion")) << cyclic.status().ToString();
}

TEST(HostileGrammarTest, NullableCountedRepeatIsNormalisedToLinear) {
  auto g = CompileGrammar(GrammarKind::kRegex, "(?:a?){1000}", ByteVocab(), Patient());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // a{0,1000}: about one state per count, each with one byte edge (not 1000 each).
  EXPECT_LT((*g)->grammar().edges.size(), 3000u);
  EXPECT_TRUE(Accepts(*g, ""));
  EXPECT_TRUE(Accepts(*g, std::string(1000, 'a')));
  EXPECT_FALSE(Accepts(*g, std::string(1001, 'a')));
  auto star = CompileGrammar(GrammarKind::kRegex, "(?:a*){3,7}b", ByteVocab(), Patient());
  ASSERT_TRUE(star.ok());
  EXPECT_TRUE(Accepts(*star, "b"));
  EXPECT_TRUE(Accepts(*star, std::string(50, 'a') + "b"));
  auto zero = CompileGrammar(GrammarKind::kRegex, "(?:a*){0}b", ByteVocab(), Patient());
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(Accepts(*zero, "b"));
  EXPECT_FALSE(Accepts(*zero, "ab"));
}

TEST(HostileGrammarTest, NullableRepeatThatCannotBeNormalisedHitsTheEdgeLimit) {
  auto g = CompileToGrammar(GrammarKind::kRegex, "(?:a?b?){5000}", Patient());
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(IsInvalidArgument(g.status(), "edges")) << g.status().ToString();
}

TEST(HostileGrammarTest, CompileTimeLimitIsCheckedDuringCompilation) {
  // Thousands of rules take far more than 1 ms; the builder must stop mid-way, not finish.
  std::string text = "root ::= r0\n";
  for (int i = 0; i < 5000; ++i) text += fmt::format("r{} ::= \"x\" r{} | \"y\"\n", i, i + 1);
  text += "r5000 ::= \"z\"\n";
  CompileOptions options;
  options.time_limit = std::chrono::milliseconds(1);
  auto g = CompileToGrammar(GrammarKind::kGbnf, text, options);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(IsInvalidArgument(g.status(), "time limit")) << g.status().ToString();
}

TEST(HostileGrammarTest, WideObjectOfRequiredPropertiesCompilesWellWithinTheTimeLimit) {
  // Each required member used to copy every later one: 2,000 members took ~4 s in a step that
  // never looked at the deadline, so the 2 s limit was overshot to 4.6 s. Linear now: ~0.1 s.
  std::string properties, required;
  for (int i = 0; i < 2000; ++i) {
    properties += fmt::format("{}\"p{}\":{{\"type\":\"string\"}}", i ? "," : "", i);
    required += fmt::format("{}\"p{}\"", i ? "," : "", i);
  }
  const std::string schema = fmt::format(
      R"({{"type":"object","properties":{{{}}},"required":[{}]}})", properties, required);
  // The default limit: ~15x the time needed in a release build; sanitizers widen it.
  auto g = CompileToGrammar(GrammarKind::kJsonSchema, schema,
                            testing::WithSanitizerTimeLimits(CompileOptions{}));
  EXPECT_TRUE(g.ok()) << g.status().ToString();
}

// Two ways to continue at every 'a' ("b" or "c" expected later) and no merging of stacks: the
// live stack set doubles per byte.
constexpr char kExponentialGbnf[] =
    "root ::= x\n"
    "x ::= \"a\" x \"b\" | \"a\" x \"c\" | \"d\"\n";

TEST(HostileGrammarTest, AmbiguousRecursiveGbnfFailsTheMatcherCleanly) {
  auto g = CompileGrammar(GrammarKind::kGbnf, kExponentialGbnf, ByteVocab(), Patient());
  ASSERT_TRUE(g.ok()) << g.status().ToString();  // single-byte tokens: no deep step at compile
  GrammarMatcher m(*g);
  EXPECT_TRUE(m.AcceptBytes("aaaa"));  // 16 stacks: fine
  EXPECT_FALSE(m.AcceptBytes(std::string(40, 'a')));
  ASSERT_FALSE(m.error().ok());
  EXPECT_TRUE(IsInvalidArgument(m.error(), "ambiguous")) << m.error().ToString();
  // From then on nothing is allowed: the engine fails the request instead of spinning.
  std::vector<uint32_t> mask(ByteVocab()->mask_words(), 1);
  m.FillNextTokenBitmask(mask.data());
  for (uint32_t w : mask) EXPECT_EQ(w, 0u);
  EXPECT_FALSE(m.AcceptToken('d'));
}

TEST(HostileGrammarTest, AmbiguousRecursiveGbnfIsRejectedAtCompileTimeWhenTokensReachIt) {
  // A vocabulary with a 20-byte token of 'a's: precomputing its token sets walks 20 steps.
  std::vector<std::string> tokens(257);
  for (int b = 0; b < 256; ++b) tokens[b] = std::string(1, static_cast<char>(b));
  tokens.push_back(std::string(20, 'a'));
  auto vocab = Vocabulary::Build(std::move(tokens), {256});
  ASSERT_TRUE(vocab.ok());
  auto g = CompileGrammar(GrammarKind::kGbnf, kExponentialGbnf, *vocab, Patient());
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(IsInvalidArgument(g.status(), "ambiguous")) << g.status().ToString();
}

TEST(HostileGrammarTest, TokenSetsArePrecomputedAtCompileTimeNotOnTheEngineThread) {
  auto g =
      CompileGrammar(GrammarKind::kJsonSchema,
                     R"({"type": "object", "properties": {"a": {"type": "string"}}})", ByteVocab());
  ASSERT_TRUE(g.ok());
  int64_t with_byte_edges = 0;
  for (const GrammarState& st : (*g)->grammar().states) {
    with_byte_edges += st.byte_edge_end > st.edge_begin;
  }
  EXPECT_EQ((*g)->num_computed_states(), with_byte_edges);
  // Work past the bound is a 400 at compile time, however fast the machine is.
  CompileOptions tight = Patient();
  tight.max_precompute_work = 100;
  auto rejected =
      CompileGrammar(GrammarKind::kJsonSchema, R"({"type": "string"})", ByteVocab(), tight);
  ASSERT_FALSE(rejected.ok());
  EXPECT_TRUE(IsInvalidArgument(rejected.status(), "vocabulary-trie steps"))
      << rejected.status().ToString();
}

TEST(HostileGrammarTest, GrammarCacheIsBoundedByBytesNotCount) {
  // Each a{0,n} grammar holds about n states; a budget of ~3 small grammars keeps the cache
  // small however many large ones come through.
  auto one = CompileGrammar(GrammarKind::kRegex, "a{0,2000}", ByteVocab(), Patient());
  ASSERT_TRUE(one.ok());
  const size_t budget = (*one)->memory_bytes() * 3;
  GrammarCache cache(ByteVocab(), /*capacity=*/1000, Patient(), budget);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(cache.Get(GrammarKind::kRegex, fmt::format("a{{0,{}}}", 2000 + i)).ok());
    EXPECT_LE(cache.bytes(), budget + budget / 2);
  }
  EXPECT_LE(cache.size(), 3u);
  EXPECT_GE(cache.size(), 1u);
  // A grammar whose tables alone exceed max_grammar_bytes is refused outright.
  CompileOptions small = Patient();
  small.max_grammar_bytes = 4096;
  EXPECT_FALSE(CompileGrammar(GrammarKind::kRegex, "a{0,2000}", ByteVocab(), small).ok());
}

}  // namespace
}  // namespace tinyserve::structured
