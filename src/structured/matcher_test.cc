#include "structured/matcher.h"

#include <gtest/gtest.h>

#include <random>

#include "structured/compiler.h"
#include "structured/test_util.h"

namespace tinyserve::structured {
namespace {

using testing::BitSet;
using testing::QwenVocabOrNull;

struct Spec {
  GrammarKind kind;
  std::string text;
};

std::vector<Spec> Specs() {
  return {
      {GrammarKind::kJsonObject, ""},
      {GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"type":"string"},"maxItems":3}},"required":["name","age"]})"},
      {GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"a":{"type":"number"},"b":{"enum":["x","y",1,null]},"c":{"type":["string","null"],"maxLength":5}},"required":["a"]})"},
      {GrammarKind::kJsonSchema,
       R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v","kids"]}},"$ref":"#/$defs/node"})"},
      {GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"when":{"type":"string","format":"date-time"},"id":{"type":"string","format":"uuid"},"ip":{"type":"string","format":"ipv4"}},"required":["when","id","ip"]})"},
      {GrammarKind::kJsonSchema,
       R"({"anyOf":[{"type":"object","properties":{"k":{"const":"a"},"n":{"type":"number","minimum":-2.5,"maximum":7}},"required":["k","n"]},{"type":"array","prefixItems":[{"type":"boolean"},{"type":"string","pattern":"^[a-z]+\\d{2}$"}],"items":false,"minItems":2}]})"},
      {GrammarKind::kRegex, R"((\+\d{1,3} )?\(?\d{3}\)?[ -]?\d{3}-\d{4})"},
      {GrammarKind::kRegex, R"([A-Z][a-z]{2,8}( [A-Z][a-z]{2,8})*\.)"},
      {GrammarKind::kRegex, R"((a+)+b|[^x]{3,})"},
      {GrammarKind::kChoice, R"(["positive","negative","neutral","neg"])"},
      {GrammarKind::kGbnf,
       "root ::= \"SELECT \" cols \" FROM \" ident (\" WHERE \" ident \" = \" num)? \";\"\n"
       "cols ::= ident (\", \" ident)* | \"*\"\nident ::= [a-z_] [a-z0-9_]{0,10}\nnum ::= "
       "[0-9]+\n"},
      {GrammarKind::kGbnf,
       "root ::= value\nvalue ::= object | array | string | number | \"true\" | \"false\" | "
       "\"null\"\n"
       "object ::= \"{\" ws (string \":\" ws value (\",\" ws string \":\" ws value)*)? \"}\"\n"
       "array ::= \"[\" ws (value (\",\" ws value)*)? \"]\"\n"
       "string ::= \"\\\"\" ([^\"\\\\] | \"\\\\\" [\"\\\\nt])* \"\\\"\"\n"
       "number ::= \"-\"? [0-9]+ (\".\" [0-9]+)?\nws ::= [ \\n]?\n"},
      {GrammarKind::kToolCalls,
       R"({"functions":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city"]}},{"name":"now","parameters":{"type":"object","properties":{}}}],"multiple":true})"},
  };
}

TEST(MatcherTest, FastMaskEqualsBruteForceMaskOnRandomWalks) {
  auto vocab = QwenVocabOrNull();
  if (!vocab) GTEST_FAIL() << "Qwen tokenizer files not found (run scripts/setup.sh)";
  const int checks_per_spec = testing::UnderSanitizer() ? 1 : 4;
  std::mt19937_64 rng(7);
  std::vector<uint32_t> fast(vocab->mask_words()), slow(vocab->mask_words());
  for (const Spec& spec : Specs()) {
    SCOPED_TRACE(spec.text);
    auto g = CompileGrammar(spec.kind, spec.text, vocab);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    GrammarMatcher m(*g);
    // Random walk of random length; compare the masks at `checks_per_spec` points on the way.
    int compared = 0;
    for (int step = 0; step < 60 && compared < checks_per_spec; ++step) {
      m.FillNextTokenBitmask(fast.data());
      if (step % 3 == 0 || step < 2) {
        m.FillNextTokenBitmaskBruteForce(slow.data());
        ++compared;
        for (int32_t t = 0; t < vocab->size(); ++t) {
          ASSERT_EQ(BitSet(fast, t), BitSet(slow, t))
              << "token " << t << " '" << vocab->TokenBytes(t) << "' at step " << step;
        }
      }
      const int32_t t = testing::PickAllowed(*vocab, fast, &rng);
      if (t < 0 || vocab->IsEos(t)) break;
      ASSERT_TRUE(m.AcceptToken(t));
    }
  }
}

}  // namespace
}  // namespace tinyserve::structured
