// Structured output through the engine on the real Qwen2 forward pass (dummy "tiny" preset with
// the real 151,936-token vocabulary and random weights, so only the grammar mask keeps outputs
// valid): JSON Schema and choice outputs are valid, budgets end in a closed value or `length`,
// constrained and unconstrained requests batch together without changing each other's tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/engine_core.h"
#include "engine/testing/step.h"
#include "model/qwen2.h"
#include "structured/compiler.h"
#include "structured/tokenizer_vocabulary.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace tinyserve {
namespace {

using structured::GrammarKind;

struct Fixture {
  std::shared_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<structured::GrammarCache> grammars;
};

const Fixture& Shared() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    LoadOptions load;
    load.dtype = "f32";
    auto m = Qwen2Model::Load("dummy:tiny", load);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    fx->model = std::shared_ptr<Model>(std::move(*m));
    auto t = Tokenizer::Qwen25FromNpmDir(QwenTokenizerDir());
    EXPECT_TRUE(t.ok()) << t.status().ToString() << " (run scripts/setup.sh)";
    fx->tokenizer = std::move(*t);
    auto vocab = structured::VocabularyFromTokenizer(
        *fx->tokenizer, static_cast<int32_t>(fx->model->config().vocab_size),
        fx->model->config().eos_token_ids);
    EXPECT_TRUE(vocab.ok()) << vocab.status().ToString();
    fx->grammars = std::make_unique<structured::GrammarCache>(*vocab, 16);
    return fx;
  }();
  return *f;
}

std::unique_ptr<EngineCore> MakeEngine() {
  EngineOptions options;
  options.kv_cache_memory_bytes = 16 << 20;
  options.threads = 2;
  auto engine = EngineCore::Create(Shared().model, options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(*engine);
}

std::shared_ptr<const structured::CompiledGrammar> Compile(GrammarKind kind,
                                                           const std::string& text) {
  auto g = Shared().grammars->Get(kind, text);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? *g : nullptr;
}

struct Output {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  std::string text;
};

std::vector<Output> RunAll(EngineCore& engine, std::vector<GenerateRequest> requests) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (GenerateRequest& r : requests) {
    r.detokenize = false;
    auto s = engine.AddRequest(std::move(r));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) streams.push_back(*s);
  }
  testing::RunUntilIdle(engine);
  std::vector<Output> out;
  for (auto& s : streams) {
    Output o;
    while (auto e = s->TryNext()) {
      EXPECT_NE(e->finish_reason, FinishReason::kError) << e->error.ToString();
      o.tokens.insert(o.tokens.end(), e->token_ids.begin(), e->token_ids.end());
      if (e->finish_reason != FinishReason::kNone) o.finish = e->finish_reason;
    }
    std::vector<int32_t> text_tokens = o.tokens;
    if (o.finish == FinishReason::kStop && !text_tokens.empty()) text_tokens.pop_back();  // EOS
    o.text = Shared().tokenizer->Decode(text_tokens);
    out.push_back(std::move(o));
  }
  return out;
}

GenerateRequest Request(std::vector<int32_t> prompt, uint64_t seed, int32_t max_tokens,
                        std::shared_ptr<const structured::CompiledGrammar> grammar) {
  GenerateRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = seed;
  r.stop.max_tokens = max_tokens;
  r.grammar = std::move(grammar);
  return r;
}

TEST(EngineStructuredTest, SchemaOutputsAreValidJsonWithTheRequiredShape) {
  auto engine = MakeEngine();
  const std::string schema = R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":12},
      "age":{"type":"integer","minimum":0,"maximum":120},
      "tags":{"type":"array","items":{"enum":["a","b","c"]},"maxItems":3}},
      "required":["name","age","tags"],"additionalProperties":false})";
  auto grammar = Compile(GrammarKind::kJsonSchema, schema);
  ASSERT_NE(grammar, nullptr);
  std::vector<GenerateRequest> requests;
  for (uint64_t seed = 0; seed < 12; ++seed)
    requests.push_back(Request({9707, 11, 1879}, seed, 120, grammar));
  int stopped = 0;
  for (const Output& o : RunAll(*engine, std::move(requests))) {
    SCOPED_TRACE(o.text);
    ASSERT_NE(o.finish, FinishReason::kNone);
    if (o.finish != FinishReason::kStop) continue;
    ++stopped;
    auto j = nlohmann::json::parse(o.text, nullptr, false);
    ASSERT_FALSE(j.is_discarded());
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.size(), 3u);
    ASSERT_TRUE(j["name"].is_string());
    const std::string name = j["name"].get<std::string>();
    const auto code_points =
        std::count_if(name.begin(), name.end(), [](char c) { return (c & 0xC0) != 0x80; });
    EXPECT_LE(code_points, 12);
    ASSERT_TRUE(j["age"].is_number_integer());
    EXPECT_GE(j["age"].get<int64_t>(), 0);
    EXPECT_LE(j["age"].get<int64_t>(), 120);
    ASSERT_TRUE(j["tags"].is_array());
    EXPECT_LE(j["tags"].size(), 3u);
    for (const auto& t : j["tags"]) EXPECT_TRUE(t == "a" || t == "b" || t == "c");
  }
  // 120 tokens are plenty for this schema: the grammar steers every output to a close.
  EXPECT_EQ(stopped, 12);
  const EngineStats stats = engine->Stats();
  EXPECT_GT(stats.structured_masks, 12);
  EXPECT_GT(stats.structured_mask_seconds_sum, 0.0);
}

TEST(EngineStructuredTest, ChoiceOutputsAreOneOfTheChoicesAndEndWithStop) {
  auto engine = MakeEngine();
  const std::set<std::string> choices = {"red", "green", "blue", "ultraviolet light"};
  auto grammar = Compile(GrammarKind::kChoice, nlohmann::json(choices).dump());
  ASSERT_NE(grammar, nullptr);
  std::vector<GenerateRequest> requests;
  for (uint64_t seed = 0; seed < 10; ++seed)
    requests.push_back(Request({40, 41, 42}, seed, 30, grammar));
  for (const Output& o : RunAll(*engine, std::move(requests))) {
    EXPECT_EQ(o.finish, FinishReason::kStop);
    EXPECT_TRUE(choices.contains(o.text)) << o.text;
  }
}

TEST(EngineStructuredTest, TightBudgetsCloseTheValueOrFinishWithLength) {
  auto engine = MakeEngine();
  auto grammar = Compile(GrammarKind::kJsonSchema,
                         R"({"type":"object","properties":{"items":{"type":"array",
                             "items":{"type":"string"}}},"required":["items"]})");
  ASSERT_NE(grammar, nullptr);
  std::vector<GenerateRequest> requests;
  for (int32_t budget : {3, 6, 10, 16, 24})
    for (uint64_t seed = 0; seed < 3; ++seed)
      requests.push_back(Request({5, 6, 7}, seed, budget, grammar));
  int closed = 0;
  for (const Output& o : RunAll(*engine, std::move(requests))) {
    SCOPED_TRACE(o.text);
    if (o.finish == FinishReason::kStop) {
      ++closed;
      auto j = nlohmann::json::parse(o.text, nullptr, false);
      ASSERT_FALSE(j.is_discarded());
      EXPECT_TRUE(j.contains("items") && j["items"].is_array());
    } else {
      EXPECT_EQ(o.finish, FinishReason::kLength);
    }
  }
  // {"items":[]} fits in well under 16 tokens: the larger budgets must close.
  EXPECT_GE(closed, 6);
}

TEST(EngineStructuredTest, ConstrainedAndFreeRequestsBatchWithoutChangingEachOther) {
  auto grammar = Compile(GrammarKind::kRegex, "(ab|cd)[0-9]{2,6}x");
  ASSERT_NE(grammar, nullptr);
  auto make = [&] {
    std::vector<GenerateRequest> rs;
    for (int i = 0; i < 8; ++i) {
      GenerateRequest r =
          Request({100 + i, 200 + i, 300 + i}, 7 + i, 12, i % 2 ? grammar : nullptr);
      r.sampling.temperature = 0.0f;  // greedy: batch invariance is exact
      rs.push_back(std::move(r));
    }
    return rs;
  };
  auto engine = MakeEngine();
  const std::vector<Output> together = RunAll(*engine, make());
  std::vector<GenerateRequest> alone_requests = make();
  for (size_t i = 0; i < alone_requests.size(); ++i) {
    auto alone_engine = MakeEngine();
    std::vector<GenerateRequest> one;
    one.push_back(std::move(alone_requests[i]));
    const Output alone = RunAll(*alone_engine, std::move(one))[0];
    EXPECT_EQ(together[i].tokens, alone.tokens) << "request " << i;
  }
  for (size_t i = 1; i < together.size(); i += 2) {
    EXPECT_EQ(together[i].finish, FinishReason::kStop);
    const std::string& t = together[i].text;
    EXPECT_TRUE(t.size() >= 5 && (t.starts_with("ab") || t.starts_with("cd")) && t.back() == 'x')
        << t;
  }
}

}  // namespace
}  // namespace tinyserve
