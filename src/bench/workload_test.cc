#include "bench/workload.h"

#include <gtest/gtest.h>

#include <map>

#include "bench/json_schema.h"

namespace tinyserve::bench {
namespace {

std::string DefaultWorkloadPath() {
  return std::string(TINYSERVE_SOURCE_DIR) + "/data/workload/default.json";
}

TEST(WorkloadTest, DefaultWorkloadHasTheThreeTasksWithTenSamplesEach) {
  StatusOr<Workload> w = LoadWorkload(DefaultWorkloadPath());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->tasks.size(), 3u);
  EXPECT_EQ(w->tasks[0].name, "summary");
  EXPECT_EQ(w->tasks[0].max_tokens, 300);
  EXPECT_DOUBLE_EQ(w->tasks[0].temperature, 0.7);
  EXPECT_EQ(w->tasks[1].name, "code");
  EXPECT_EQ(w->tasks[1].max_tokens, 200);
  EXPECT_DOUBLE_EQ(w->tasks[1].temperature, 0.2);
  EXPECT_EQ(w->tasks[2].name, "structured");
  EXPECT_EQ(w->tasks[2].check, AnswerCheck::kJsonSchema);
  int chinese = 0;
  for (const TaskType& t : w->tasks) {
    EXPECT_EQ(t.samples.size(), 10u) << t.name;
    for (const Sample& s : t.samples) {
      EXPECT_EQ(s.prompt.find("{input}"), std::string::npos);
      EXPECT_NE(s.prompt.find(s.input), std::string::npos);
    }
  }
  for (const Sample& s : w->tasks[0].samples) {
    // About 2,000 tokens: ~6,000 bytes of English or ~3,000 CJK characters (~8,000 bytes).
    EXPECT_GT(s.input.size(), 5500u) << s.id;
    chinese += s.id.rfind("zh_", 0) == 0;
  }
  EXPECT_GE(chinese, 3);
  for (const Sample& s : w->tasks[2].samples) {
    EXPECT_TRUE(s.schema.is_object()) << s.id;
    EXPECT_NE(s.prompt.find("\"properties\""), std::string::npos) << s.id;
  }
}

TEST(WorkloadTest, SamplerFollowsWeightsAndIsAFunctionOfTheSeed) {
  StatusOr<Workload> w = LoadWorkload(DefaultWorkloadPath());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(ApplyMix("summary=2,code=1", &*w).ok());
  EXPECT_EQ(w->tasks[2].weight, 0);
  WorkloadSampler a(*w, 5), b(*w, 5), c(*w, 6);
  std::map<int, int> counts;
  bool differs = false;
  const int n = 6000;
  for (int i = 0; i < n; ++i) {
    SampleRef x = a.Next(), y = b.Next(), z = c.Next();
    EXPECT_EQ(x.task_idx, y.task_idx);
    EXPECT_EQ(x.sample_idx, y.sample_idx);
    differs = differs || x.task_idx != z.task_idx || x.sample_idx != z.sample_idx;
    ++counts[x.task_idx];
    ASSERT_LT(x.sample_idx, 10);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(counts[2], 0);
  // Binomial(6000, 2/3): sd ~ 37; allow 5 sd.
  EXPECT_NEAR(counts[0], n * 2 / 3.0, 185);
}

TEST(WorkloadTest, NamedMixesAndCapsApply) {
  StatusOr<Workload> w = LoadWorkload(DefaultWorkloadPath());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(ApplyMix("structured-only", &*w).ok());
  EXPECT_EQ(w->tasks[0].weight, 0);
  EXPECT_EQ(w->tasks[2].weight, 1);
  EXPECT_FALSE(ApplyMix("nosuchtask=1", &*w).ok());
  EXPECT_FALSE(ApplyMix("summary=0", &*w).ok());
  CapMaxTokens(64, &*w);
  EXPECT_EQ(w->tasks[0].max_tokens, 64);
}

TEST(WorkloadTest, BadFilesAreRejectedWithAReason) {
  EXPECT_FALSE(ParseWorkload("[]", ".").ok());
  EXPECT_FALSE(ParseWorkload(R"({"tasks": []})", ".").ok());
  EXPECT_FALSE(ParseWorkload(R"({"tasks": [{"name": "a", "samples": []}]})", ".").ok());
  Status escape =
      ParseWorkload(
          R"({"tasks": [{"name": "a", "samples": [{"id": "x", "input_file": "../etc/passwd"}]}]})",
          ".")
          .status();
  EXPECT_FALSE(escape.ok());
  EXPECT_NE(escape.message().find(".."), std::string::npos);
  EXPECT_FALSE(
      ParseWorkload(
          R"({"tasks": [{"name": "a", "samples": [{"id": "x", "input_file": "/etc/passwd"}]}]})",
          ".")
          .ok());
  Status schema = ParseWorkload(R"({"tasks": [{"name": "s", "check": "json_schema",
      "samples": [{"id": "x", "input": "i", "schema": {"type": "string", "pattern": "a+"}}]}]})",
                                ".")
                      .status();
  EXPECT_EQ(schema.code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tinyserve::bench
