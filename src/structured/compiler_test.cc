#include "structured/compiler.h"

#include <gtest/gtest.h>

#include <thread>

#include "structured/test_byte_vocab.h"

namespace tinyserve::structured {
namespace {

using testing::Accepts;
using testing::ByteVocab;

TEST(GrammarCacheTest, HitsReturnTheSameGrammarAndLruEvicts) {
  GrammarCache cache(ByteVocab(), /*capacity=*/2);
  auto a1 = cache.Get(GrammarKind::kRegex, "a+");
  auto a2 = cache.Get(GrammarKind::kRegex, "a+");
  ASSERT_TRUE(a1.ok() && a2.ok());
  EXPECT_EQ(a1->get(), a2->get());
  // Same text, other kind: a different entry.
  auto c = cache.Get(GrammarKind::kChoice, R"(["a+"])");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a1->get(), c->get());
  auto b = cache.Get(GrammarKind::kRegex, "b+");  // evicts the least recent ("a+")
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(cache.size(), 2u);
  auto a3 = cache.Get(GrammarKind::kRegex, "a+");
  ASSERT_TRUE(a3.ok());
  EXPECT_NE(a1->get(), a3->get());
  const GrammarCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 4);
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, "(").ok());
  EXPECT_EQ(cache.stats().errors, 1);
}

TEST(GrammarCacheTest, ConcurrentGetsAreSafe) {
  GrammarCache cache(ByteVocab(), /*capacity=*/4);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string p = "x{" + std::to_string((i + t) % 6 + 1) + "}";
        auto g = cache.Get(GrammarKind::kRegex, p);
        ASSERT_TRUE(g.ok());
        EXPECT_TRUE(Accepts(*g, std::string((i + t) % 6 + 1, 'x')));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 4u);
}

TEST(CompilerTest, ChoiceAcceptsExactlyTheChoices) {
  auto g = CompileGrammar(GrammarKind::kChoice, R"(["cat","category","dog"])", ByteVocab());
  ASSERT_TRUE(g.ok());
  for (const char* s : {"cat", "category", "dog"}) EXPECT_TRUE(Accepts(*g, s)) << s;
  for (const char* s : {"", "ca", "cats", "dogs", "categor"}) EXPECT_FALSE(Accepts(*g, s)) << s;
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kChoice, "[]").ok());
  EXPECT_FALSE(CompileToGrammar(GrammarKind::kChoice, "[1]").ok());
}

TEST(CompilerTest, GbnfRulesGroupsAndRepetitions) {
  auto g = CompileGrammar(GrammarKind::kGbnf,
                          "# a list\nroot ::= \"[\" item (\",\" item){0,2} \"]\"\n"
                          "item ::= [a-c]+ | num\nnum ::= \"\\x31\" [0-9]?\n",
                          ByteVocab());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (const char* s : {"[a]", "[abc,1,19]", "[1,b]"}) EXPECT_TRUE(Accepts(*g, s)) << s;
  for (const char* s : {"[]", "[a,b,c,a]", "[2]", "[d]", "[a,]"}) EXPECT_FALSE(Accepts(*g, s)) << s;
  for (const char* bad :
       {"root ::= x", "r ::= \"a\"", "root ::= \"a", "root ::= [a-", "root ::= root \"a\"",
        "root ::= a\na ::= \"\" root", "root ::= (\"a\""}) {
    EXPECT_FALSE(CompileToGrammar(GrammarKind::kGbnf, bad).ok()) << bad;
  }
}

TEST(CompilerTest, BudgetSteersToAShortestClose) {
  auto g = CompileGrammar(
      GrammarKind::kJsonSchema,
      R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"string"}}},"required":["a"]})",
      ByteVocab());
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g);
  ASSERT_TRUE(m.AcceptBytes(R"({"a":["xy)"));
  EXPECT_EQ(m.ShortestCompletion(), R"("]})");
  EXPECT_EQ(m.MinCloseBytes(), 3u);
  std::vector<uint32_t> mask(ByteVocab()->mask_words());
  m.FillNextTokenBitmask(mask.data(), /*remaining_tokens=*/4);
  for (int t = 0; t < 257; ++t) {
    EXPECT_EQ((mask[t >> 5] >> (t & 31)) & 1, t == '"' ? 1u : 0u) << t;
  }
  // Far from the budget, a token that opens a value needing more bytes than remain is masked.
  GrammarMatcher n(*g);
  ASSERT_TRUE(n.AcceptBytes(R"({"a":[)"));
  n.FillNextTokenBitmask(mask.data(), /*remaining_tokens=*/40);
  EXPECT_TRUE((mask['"' >> 5] >> ('"' & 31)) & 1);
  m.FillNextTokenBitmask(mask.data());
  EXPECT_TRUE((mask['z' >> 5] >> ('z' & 31)) & 1);
  // Jump-forward: after the closing quote of a key, ':' is forced.
  GrammarMatcher k(*g);
  EXPECT_EQ(k.ForcedBytes(), R"({"a":)");
}

}  // namespace
}  // namespace tinyserve::structured
