// `tinyserve bench throughput` (like `vllm bench throughput`): N requests of random prompt
// token ids submitted to an in-process engine at once (no HTTP), each generating exactly
// --output-len tokens; reports requests/s and input / output tokens/s.
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "engine/engine.h"
#include "model/qwen2.h"

namespace tinyserve::cli {
namespace {

struct ThroughputFlags {
  std::string model = "dummy:qwen2.5-0.5b";
  std::string dtype;
  int num_prompts = 64;
  int input_len = 512;
  int output_len = 128;
  uint64_t seed = 0;
  EngineFlags engine;
};

Status RunThroughput(const ThroughputFlags& f) {
  using Clock = std::chrono::steady_clock;
  if (f.num_prompts < 1 || f.input_len < 1 || f.output_len < 1) {
    return InvalidArgumentError("--num-prompts, --input-len and --output-len must be >= 1");
  }
  LoadOptions load;
  load.dtype = f.dtype;
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Qwen2Model> loaded, Qwen2Model::Load(f.model, load));
  const GenerationDefaults defaults =
      loaded->generation_defaults().value_or(GenerationDefaults{});
  std::shared_ptr<Model> model = std::move(loaded);
  TS_ASSIGN_OR_RETURN(EngineOptions options, EngineOptionsFromFlags(f.engine));
  // Every request is in flight at once.
  options.max_queue_len = std::max(options.max_queue_len, f.num_prompts);
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                      Engine::Create(model, options, defaults, TokenText{}));
  fmt::print(stderr, "{}\n", DescribeEngine(engine->options(), engine->limits()));

  // Random prompts (vLLM's random dataset): ids drawn uniformly below the vocabulary size.
  std::mt19937_64 rng(f.seed);
  const int64_t vocab = model->config().vocab_size;
  std::vector<GenerateRequest> requests(f.num_prompts);
  for (GenerateRequest& r : requests) {
    r.prompt_token_ids.resize(f.input_len);
    for (int32_t& t : r.prompt_token_ids) t = static_cast<int32_t>(rng() % vocab);
    r.sampling.temperature = 1.0f;  // vLLM's bench throughput samples at temperature 1
    r.sampling.top_p = 1.0f;
    r.sampling.top_k = 0;
    r.sampling.seed = rng();
    r.stop.ignore_eos = true;
    r.stop.max_tokens = f.output_len;
    r.detokenize = false;
  }
  const auto start = Clock::now();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (GenerateRequest& r : requests) {
    TS_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine->Submit(std::move(r)));
    streams.push_back(std::move(s));
  }
  int64_t output_tokens = 0;
  double ttft_sum = 0;
  for (auto& s : streams) {
    while (std::optional<RequestEvent> e = s->Next()) {
      output_tokens += static_cast<int64_t>(e->token_ids.size());
      if (e->finish_reason == FinishReason::kError) {
        return InternalError("request {} failed: {}", s->request_id(), e->error.ToString());
      }
      if (e->usage) ttft_sum += e->usage->queue_time_s + e->usage->prefill_time_s;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const EngineStats stats = engine->Stats();
  const int64_t input_tokens = int64_t{f.num_prompts} * f.input_len;
  fmt::print(
      "Throughput: {:.2f} requests/s, {:.2f} total tokens/s, {:.2f} output tokens/s, "
      "{:.2f} input tokens/s\n",
      f.num_prompts / elapsed, (input_tokens + output_tokens) / elapsed, output_tokens / elapsed,
      input_tokens / elapsed);
  fmt::print(
      "requests {} x ({} in, {} out); elapsed {:.2f} s; mean time to first token {:.2f} s; "
      "steps {}; preemptions {}; prefix-cache hits {}/{} tokens\n",
      f.num_prompts, f.input_len, f.output_len, elapsed, ttft_sum / f.num_prompts,
      stats.num_steps, stats.num_preemptions, stats.prefix_cache_hits,
      stats.prefix_cache_queries);
  return OkStatus();
}

}  // namespace

void AddBenchThroughputCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ThroughputFlags>();
  CLI::App* cmd = BenchGroup(app)->add_subcommand(
      "throughput", "Offline throughput: N random-prompt requests at once through the engine");
  cmd->add_option("--model", flags->model, "Model directory, .gguf file or dummy:<preset>")
      ->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "Dummy models: weight type (f32 f16 bf16 q8_0 ...)");
  cmd->add_option("--num-prompts", flags->num_prompts, "Requests")->capture_default_str();
  cmd->add_option("--input-len", flags->input_len, "Prompt tokens per request")
      ->capture_default_str();
  cmd->add_option("--output-len", flags->output_len, "Generated tokens per request")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the random prompts")->capture_default_str();
  flags->engine.options.threads = 2;
  AddEngineFlags(cmd, &flags->engine);
  cmd->callback([flags, exit_code] {
    Status s = RunThroughput(*flags);
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace tinyserve::cli
