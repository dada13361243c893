// The schemas tinyserve's own stress test sends (data/workload/structured_tasks.jsonl) are
// ordinary API schemas: each must compile within the server's default limits with the real Qwen
// vocabulary. The grammar limits exist to stop hostile grammars; these pin that they do not
// refuse legitimate ones (a 200-character maxLength string was once refused).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "structured/compiler.h"
#include "structured/test_util.h"

namespace tinyserve::structured {
namespace {

TEST(WorkloadSchemasTest, EveryShippedSchemaCompilesWithinTheDefaultLimits) {
  auto vocab = testing::QwenVocabOrNull();
  if (!vocab) GTEST_FAIL() << "Qwen tokenizer files not found (run scripts/setup.sh)";
  std::ifstream in(std::string(TINYSERVE_SOURCE_DIR) + "/data/workload/structured_tasks.jsonl");
  ASSERT_TRUE(in.good());
  const CompileOptions defaults;
  // The work limit is what this pins; the time limits are a safety net, which sanitizers widen.
  const CompileOptions options = testing::WithSanitizerTimeLimits(defaults);
  int schemas = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json sample = nlohmann::json::parse(line);
    const std::string id = sample.at("id");
    auto compiled =
        CompileGrammar(GrammarKind::kJsonSchema, sample.at("schema").dump(), vocab, options);
    ASSERT_TRUE(compiled.ok()) << id << ": " << compiled.status().ToString();
    // The margin left under the limit, printed so a change that eats it is seen early.
    const int64_t work = (*compiled)->precompute_work();
    std::printf("%-18s %6.1f M vocabulary-trie steps (limit %.0f M)\n", id.c_str(), work / 1e6,
                defaults.max_precompute_work / 1e6);
    EXPECT_LT(work, defaults.max_precompute_work) << id;
    ++schemas;
  }
  EXPECT_GE(schemas, 10);
}

}  // namespace
}  // namespace tinyserve::structured
