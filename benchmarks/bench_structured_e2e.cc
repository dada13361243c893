// What structured output costs end to end: the stress test's 10 schema tasks (data/workload/
// structured_tasks.jsonl, cycled to --requests prompts in the Qwen2.5 chat format) run at once
// on an in-process engine, first constrained by their schemas, then unconstrained with each
// request held to exactly the number of tokens its constrained run produced. Same prompts, same
// lengths, same batches: the difference in output tokens/s is the grammar's (mask, accept).
// Usage: bench_structured_e2e [model=dummy:qwen2.5-0.5b] [dtype=q8_0] [requests=16]
//                             [max_tokens=128] [threads=0]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/qwen2.h"
#include "structured/compiler.h"
#include "structured/tokenizer_vocabulary.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace ts = tinyserve;
using Clock = std::chrono::steady_clock;

namespace {

struct Run {
  double seconds = 0;
  int64_t output_tokens = 0;
  std::vector<int32_t> lengths;  // per request
  int64_t stopped = 0;
};

Run Generate(ts::Engine& engine, const std::vector<ts::GenerateRequest>& requests) {
  const auto start = Clock::now();
  std::vector<std::shared_ptr<ts::RequestStream>> streams;
  for (const ts::GenerateRequest& r : requests) {
    auto s = engine.Submit(r);
    if (!s.ok()) {
      std::fprintf(stderr, "submit: %s\n", s.status().ToString().c_str());
      std::exit(1);
    }
    streams.push_back(*s);
  }
  Run run;
  for (auto& s : streams) {
    int32_t n = 0;
    while (auto e = s->Next()) {
      n += static_cast<int32_t>(e->token_ids.size());
      if (e->finish_reason == ts::FinishReason::kError) {
        std::fprintf(stderr, "request failed: %s\n", e->error.ToString().c_str());
        std::exit(1);
      }
      if (e->finish_reason == ts::FinishReason::kStop) ++run.stopped;
    }
    run.lengths.push_back(n);
    run.output_tokens += n;
  }
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return run;
}

template <typename T>
T Check(ts::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*v);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_name = argc > 1 ? argv[1] : "dummy:qwen2.5-0.5b";
  const std::string dtype = argc > 2 ? argv[2] : "q8_0";
  const int num_requests = argc > 3 ? std::atoi(argv[3]) : 16;
  const int max_tokens = argc > 4 ? std::atoi(argv[4]) : 128;
  const int threads = argc > 5 ? std::atoi(argv[5]) : 0;

  ts::LoadOptions load;
  load.dtype = dtype;
  std::shared_ptr<ts::Model> model = Check(ts::Qwen2Model::Load(model_name, load), "load");
  auto tokenizer = Check(ts::Tokenizer::Qwen25FromNpmDir(ts::QwenTokenizerDir()), "tokenizer");
  ts::EngineOptions options;
  options.threads = threads;
  options.max_num_batched_tokens = 2048;
  auto engine = Check(ts::Engine::Create(model, options), "engine");
  auto vocab = Check(
      ts::structured::VocabularyFromTokenizer(
          *tokenizer, static_cast<int32_t>(model->config().vocab_size), engine->eos_token_ids()),
      "vocabulary");
  ts::structured::GrammarCache grammars(vocab, 64);

  std::ifstream in(std::string(TINYSERVE_SOURCE_DIR) + "/data/workload/structured_tasks.jsonl");
  std::vector<nlohmann::json> tasks;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) tasks.push_back(nlohmann::json::parse(line));
  }
  if (tasks.empty()) {
    std::fprintf(stderr, "no tasks in data/workload/structured_tasks.jsonl\n");
    return 1;
  }
  double compile_seconds = 0;
  std::vector<ts::GenerateRequest> constrained;
  for (int i = 0; i < num_requests; ++i) {
    const nlohmann::json& task = tasks[i % tasks.size()];
    ts::ChatConversation conv;
    conv.messages.push_back({"user", task["input"].get<std::string>(), nullptr, ""});
    const std::string prompt = Check(ts::RenderQwen25Chat(conv), "template");
    ts::GenerateRequest r;
    r.prompt_token_ids = tokenizer->Encode(prompt);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = static_cast<uint64_t>(i);
    r.stop.max_tokens = max_tokens;
    r.detokenize = false;
    r.cache_salt = "structured";  // each run computes its own prefill (no prefix-cache help)
    const auto c0 = Clock::now();
    r.grammar = Check(grammars.Get(ts::structured::GrammarKind::kJsonSchema, task["schema"].dump()),
                      "compile");
    compile_seconds += std::chrono::duration<double>(Clock::now() - c0).count();
    constrained.push_back(std::move(r));
  }
  std::printf(
      "%s %s, %d concurrent requests, max_tokens %d, threads %d; grammar compile %.1f ms "
      "total (off the engine thread in the server)\n",
      model_name.c_str(), dtype.c_str(), num_requests, max_tokens, engine->limits().threads,
      compile_seconds * 1e3);

  // Warm-up (first-touch of weights and KV pages) with a short unconstrained pass.
  std::vector<ts::GenerateRequest> warm = constrained;
  for (auto& r : warm) {
    r.grammar = nullptr;
    r.stop.max_tokens = 4;
    r.cache_salt = "warmup";
  }
  Generate(*engine, warm);

  const ts::EngineStats before = engine->Stats();
  const Run with_grammar = Generate(*engine, constrained);
  const ts::EngineStats after = engine->Stats();
  std::vector<ts::GenerateRequest> free = constrained;
  for (size_t i = 0; i < free.size(); ++i) {
    free[i].grammar = nullptr;
    free[i].stop.ignore_eos = true;
    free[i].stop.max_tokens = with_grammar.lengths[i];
    free[i].cache_salt = "unconstrained";
  }
  const Run without = Generate(*engine, free);

  const double masks = double(after.structured_masks - before.structured_masks);
  const double mask_s = after.structured_mask_seconds_sum - before.structured_mask_seconds_sum;
  const double tps_with = with_grammar.output_tokens / with_grammar.seconds;
  const double tps_without = without.output_tokens / without.seconds;
  std::printf("%-14s %8s %10s %12s\n", "run", "tokens", "seconds", "output tok/s");
  std::printf("%-14s %8lld %10.2f %12.1f   (%lld of %d finished with stop)\n", "structured",
              static_cast<long long>(with_grammar.output_tokens), with_grammar.seconds, tps_with,
              static_cast<long long>(with_grammar.stopped), num_requests);
  std::printf("%-14s %8lld %10.2f %12.1f\n", "unconstrained",
              static_cast<long long>(without.output_tokens), without.seconds, tps_without);
  std::printf(
      "structured / unconstrained output tok/s: %.3f; grammar mask: %.1f us mean over "
      "%.0f masks (their sum is %.2f%% of the structured run's wall time)\n",
      tps_with / tps_without, masks > 0 ? mask_s / masks * 1e6 : 0.0, masks,
      100.0 * mask_s / with_grammar.seconds);
  return 0;
}
