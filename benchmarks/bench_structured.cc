// Mask time per token of structured/ on Qwen2.5's 151,936-token vocabulary: for representative
// schemas, seeded random generations pick uniformly among allowed tokens (so every step is a
// real grammar state) and each FillNextTokenBitmask call is timed. Prints compile time and the
// mean / p50 / p99 / max mask time per schema and over all steps (lazy per-state work included).
// The schemas: the representative ones below, then the stress test's (data/workload/
// structured_tasks.jsonl, or the file given as third argument).
// Usage: bench_structured [generations_per_schema=20] [max_tokens=200] [tasks.jsonl]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "structured/compiler.h"
#include "structured/matcher.h"
#include "structured/tokenizer_vocabulary.h"
#include "util/paths.h"

using namespace tinyserve::structured;  // NOLINT: benchmark
using Clock = std::chrono::steady_clock;

namespace {

struct Workload {
  std::string name;
  GrammarKind kind;
  std::string text;
};

const std::vector<Workload> kWorkloads =
    {
        {"person (nested object, enum, ints)", GrammarKind::kJsonSchema,
         R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":130},"role":{"enum":["admin","user","guest"]},"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city"]}},"required":["name","age","role","address"]})"},
        {"order (array of objects, numbers)", GrammarKind::kJsonSchema,
         R"({"type":"object","properties":{"order_id":{"type":"string","format":"uuid"},"items":{"type":"array","minItems":1,"maxItems":8,"items":{"type":"object","properties":{"sku":{"type":"string","maxLength":12},"qty":{"type":"integer","minimum":1,"maximum":99},"price":{"type":"number","minimum":0}},"required":["sku","qty","price"]}},"total":{"type":"number"},"paid":{"type":"boolean"}},"required":["order_id","items","total","paid"]})"},
        {"sentiment (enum + confidence)", GrammarKind::kJsonSchema,
         R"({"type":"object","properties":{"label":{"enum":["positive","negative","neutral"]},"confidence":{"type":"number","minimum":0,"maximum":1},"keywords":{"type":"array","items":{"type":"string"},"maxItems":5}},"required":["label","confidence","keywords"]})"},
        {"tree ($ref recursion)", GrammarKind::kJsonSchema,
         R"({"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":3}},"required":["name","children"]}},"$ref":"#/$defs/node"})"},
        {"event (date-time, anyOf)", GrammarKind::kJsonSchema,
         R"({"type":"object","properties":{"title":{"type":"string","minLength":1,"maxLength":60},"start":{"type":"string","format":"date-time"},"location":{"anyOf":[{"type":"string"},{"type":"null"}]},"attendees":{"type":"array","items":{"type":"string","format":"email"}}},"required":["title","start","location","attendees"]})"},
        {"json_object", GrammarKind::kJsonObject, ""},
        {"tool call (required)", GrammarKind::kToolCalls, R"({"functions":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"]}},{"name":"search","parameters":{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":50}},"required":["query"]}}],"multiple":true})"},
};

// CPU time of this thread: on a shared machine, wall time also counts time the thread waited.
double ThreadCpuMicros() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  const int generations = argc > 1 ? std::atoi(argv[1]) : 20;
  const int max_tokens = argc > 2 ? std::atoi(argv[2]) : 200;
  auto vocab = LoadQwen25Vocabulary(tinyserve::QwenTokenizerDir());
  if (!vocab.ok()) {
    std::fprintf(stderr, "%s\n", vocab.status().ToString().c_str());
    return 1;
  }
  std::printf("vocab %d tokens, %d generations x <= %d tokens per schema\n", (*vocab)->size(),
              generations, max_tokens);
  std::printf("%-36s %10s %7s %9s %9s %9s %9s %9s %9s\n", "workload", "compile_ms", "steps",
              "mean_us", "p50_us", "p99_us", "max_us", "cpu_mean", "cpu_p99");
  std::vector<Workload> workloads = kWorkloads;
  const std::string tasks_path =
      argc > 3 ? argv[3]
               : std::string(TINYSERVE_SOURCE_DIR) + "/data/workload/structured_tasks.jsonl";
  std::ifstream tasks(tasks_path);
  for (std::string line; std::getline(tasks, line);) {
    const auto task = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (task.is_object() && task.contains("schema")) {
      workloads.push_back({"stress test: " + task.value("id", std::string("?")),
                           GrammarKind::kJsonSchema, task["schema"].dump()});
    }
  }
  std::vector<double> all, all_cpu;
  std::vector<uint32_t> mask((*vocab)->mask_words());
  for (const Workload& w : workloads) {
    const auto c0 = Clock::now();
    auto g = CompileGrammar(w.kind, w.text, *vocab);
    const double compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - c0).count();
    if (!g.ok()) {
      std::fprintf(stderr, "%s: %s\n", w.name.c_str(), g.status().ToString().c_str());
      return 1;
    }
    std::vector<double> times, cpu;
    std::mt19937_64 rng(42);
    std::vector<int32_t> allowed;
    for (int gen = 0; gen < generations; ++gen) {
      GrammarMatcher m(*g);
      for (int i = 0; i < max_tokens; ++i) {
        const double c0 = ThreadCpuMicros();
        const auto t0 = Clock::now();
        m.FillNextTokenBitmask(mask.data(), max_tokens - i);
        times.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        cpu.push_back(ThreadCpuMicros() - c0);
        allowed.clear();
        for (int32_t t = 0; t < (*vocab)->size(); ++t) {
          if ((mask[t >> 5] >> (t & 31)) & 1) allowed.push_back(t);
        }
        if (allowed.empty()) break;
        const int32_t t = allowed[rng() % allowed.size()];
        if ((*vocab)->IsEos(t) || !m.AcceptToken(t)) break;
      }
    }
    double sum = 0, cpu_sum = 0;
    for (double t : times) sum += t;
    for (double t : cpu) cpu_sum += t;
    std::printf("%-36s %10.2f %7zu %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", w.name.c_str(),
                compile_ms, times.size(), sum / times.size(), Percentile(times, 0.5),
                Percentile(times, 0.99), Percentile(times, 1.0), cpu_sum / cpu.size(),
                Percentile(cpu, 0.99));
    all.insert(all.end(), times.begin(), times.end());
    all_cpu.insert(all_cpu.end(), cpu.begin(), cpu.end());
  }
  double sum = 0, cpu_sum = 0;
  for (double t : all) sum += t;
  for (double t : all_cpu) cpu_sum += t;
  std::printf("%-36s %10s %7zu %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", "ALL", "", all.size(),
              sum / all.size(), Percentile(all, 0.5), Percentile(all, 0.99), Percentile(all, 1.0),
              cpu_sum / all_cpu.size(), Percentile(all_cpu, 0.99));
  return 0;
}
