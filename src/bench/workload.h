// Bench workloads: task types (summary, code, structured...) each with samples, the prompt
// template that turns a sample into a request, and a weight in the mix. Loaded once from a JSON
// file (format: docs/workload.md) before the run; read-only afterwards, so any thread may read.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/rng.h"
#include "util/status.h"

namespace tinyserve::bench {

// How a task's answers are judged beyond "the stream completed".
enum class AnswerCheck { kNone, kJsonSchema };

// A false positive of clang-tidy 14 (bugprone-exception-escape): it follows the implicit
// noexcept move constructor into nlohmann::json's and reports a throw there.
// NOLINTNEXTLINE(bugprone-exception-escape)
struct Sample {
  std::string id;
  std::string input;      // The article, task description, or data request.
  nlohmann::json schema;  // Set when the task's check is kJsonSchema.
  std::string prompt;     // The task's template with {input} and {schema} filled in.
};

struct TaskType {
  std::string name;
  double weight = 1.0;
  int max_tokens = 256;
  double temperature = 0.7;
  std::string system;           // Chat system message; empty for none.
  std::string prompt_template;  // Contains {input}; may contain {schema}.
  AnswerCheck check = AnswerCheck::kNone;
  std::vector<Sample> samples;
};

struct Workload {
  std::string name;
  std::vector<TaskType> tasks;
  std::map<std::string, std::map<std::string, double>> mixes;  // Named weight sets.
};

// Reads a workload file; sample files named in it are resolved relative to its folder and may
// not leave it. Every schema must pass CheckSchemaSupported.
[[nodiscard]] StatusOr<Workload> LoadWorkload(const std::string& path);
// Parses a workload from JSON text; `base_dir` resolves input_file / samples_file.
[[nodiscard]] StatusOr<Workload> ParseWorkload(const std::string& text,
                                               const std::string& base_dir);

// Sets task weights from "summary=2,code=1" or from the name of one of the workload's mixes.
// Tasks left out get weight 0; at least one weight must be positive.
[[nodiscard]] Status ApplyMix(const std::string& mix, Workload* workload);
// Lowers every task's max_tokens to at most `cap` (the quick profile's shorter outputs).
void CapMaxTokens(int cap, Workload* workload);

struct SampleRef {
  int task_idx = 0;
  int sample_idx = 0;
};

// Draws (task, sample) pairs: the task by weight, the sample uniformly. The sequence is a pure
// function of the seed. Not thread-safe: one per user.
class WorkloadSampler {
 public:
  WorkloadSampler(const Workload& workload, uint64_t seed);
  SampleRef Next();

 private:
  const Workload& workload_;
  std::vector<double> cumulative_;  // Running sum of weights, one per task.
  Rng rng_;
};

}  // namespace tinyserve::bench
