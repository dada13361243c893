// `tinyserve generate`: loads a model, runs one prompt through it and streams the generated text
// (or token ids), then reports prompt and decode speed. One sequence in a contiguous KV cache.
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/model_loader.h"
#include "model/qwen2.h"
#include "model/simple_kv_cache.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve::cli {
namespace {

struct GenerateOptions {
  std::string model = "dummy:qwen2.5-0.5b";
  std::string dtype;
  std::string quantization;
  int64_t num_layers = 0;
  uint64_t weights_seed = 0;
  std::string prompt;
  std::string prompt_ids;
  bool chat = false;
  int max_tokens = 32;
  int threads = 2;
  std::optional<float> temperature, top_p;
  std::optional<int32_t> top_k;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;
};

StatusOr<std::vector<int32_t>> ParseIds(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(at, end - at);
    char* stop = nullptr;
    const long long v = std::strtoll(part.c_str(), &stop, 10);
    if (part.empty() || *stop != '\0' || v < 0 || v >= vocab)
      return InvalidArgumentError("--prompt-ids: \"{}\" is not a token id below {}", part, vocab);
    ids.push_back(static_cast<int32_t>(v));
    at = end + 1;
  }
  if (ids.empty()) return InvalidArgumentError("--prompt-ids: no ids");
  return ids;
}

Status RunGenerate(const GenerateOptions& o) {
  using Clock = std::chrono::steady_clock;
  LoadOptions load;
  load.dtype = o.dtype;
  load.seed = o.weights_seed;
  load.quantization = o.quantization;
  load.num_layers = o.num_layers;
  const auto load_start = Clock::now();
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Qwen2Model> model, Qwen2Model::Load(o.model, load));
  const ModelConfig& c = model->config();
  fmt::print(stderr, "loaded {} in {:.2f} s ({} layers, hidden {}, {:.0f} MB of matrices)\n",
             o.model, std::chrono::duration<double>(Clock::now() - load_start).count(),
             c.num_layers, c.hidden_size, model->weights().MatrixBytes() / 1e6);

  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.prompt_ids.empty()) {
    TS_ASSIGN_OR_RETURN(prompt, ParseIds(o.prompt_ids, c.vocab_size));
  } else {
    TS_ASSIGN_OR_RETURN(tokenizer, LoadTokenizerFor(*model));
    std::string text = o.prompt;
    if (o.chat) {
      ChatConversation conv;
      conv.messages.push_back(ChatMessage{"user", o.prompt, nullptr, ""});
      TS_ASSIGN_OR_RETURN(text, RenderQwen25Chat(conv));
    }
    prompt = tokenizer->Encode(text);
    if (prompt.empty()) return InvalidArgumentError("the prompt encodes to no tokens");
  }
  if (o.max_tokens < 1) return InvalidArgumentError("--max-tokens must be at least 1");

  SamplingParams sp;
  sp.temperature = o.temperature;
  sp.top_p = o.top_p;
  sp.top_k = o.top_k;
  sp.seed = o.seed;
  TS_RETURN_IF_ERROR(ValidateSamplingParams(sp, c.vocab_size));
  const GenerationDefaults defaults = model->generation_defaults().value_or(GenerationDefaults{});
  const ResolvedSamplingParams params = ResolveSamplingParams(sp, defaults);
  SamplerState sampler(params, prompt);
  std::vector<int32_t> stop_ids = c.eos_token_ids;
  stop_ids.insert(stop_ids.end(), defaults.eos_token_ids.begin(), defaults.eos_token_ids.end());

  constexpr int32_t kBlockSize = 16;
  const int64_t max_len = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  const int64_t num_blocks = (max_len + kBlockSize - 1) / kBlockSize;
  SimpleKvCache cache(c, num_blocks, kBlockSize, DType::kF16);
  std::vector<int32_t> table(num_blocks);
  for (int64_t i = 0; i < num_blocks; ++i) table[i] = static_cast<int32_t>(i);
  ThreadPool pool(o.threads);
  std::vector<float> logits(c.vocab_size);
  std::optional<IncrementalDetokenizer> detok;
  if (tokenizer) detok.emplace(*tokenizer, /*skip_special_tokens=*/true);

  auto forward = [&](std::span<const int32_t> tokens, int32_t start) -> Status {
    BatchBuilder builder(kBlockSize);
    builder.AddSequence(tokens, start, table, /*all_logits=*/false);
    return model->Forward(builder.Finish(), cache.layers(), logits.data(), &pool);
  };
  const auto prefill_start = Clock::now();
  TS_RETURN_IF_ERROR(forward(prompt, 0));
  const double prefill_s = std::chrono::duration<double>(Clock::now() - prefill_start).count();

  int32_t pos = static_cast<int32_t>(prompt.size());
  int generated = 0;
  const auto decode_start = Clock::now();
  while (true) {
    const int32_t token = Sample(logits, params, sampler).token_id;
    ++generated;
    const bool stop = !o.ignore_eos && std::find(stop_ids.begin(), stop_ids.end(), token) !=
                                           stop_ids.end();
    if (detok) {
      fmt::print("{}", detok->Push(token));
    } else {
      fmt::print("{}{}", generated > 1 ? "," : "", token);
    }
    std::fflush(stdout);
    if (stop || generated >= o.max_tokens) break;
    const int32_t one[1] = {token};
    TS_RETURN_IF_ERROR(forward(one, pos++));
  }
  if (detok) fmt::print("{}", detok->Flush());
  fmt::print("\n");
  const double decode_s = std::chrono::duration<double>(Clock::now() - decode_start).count();
  fmt::print(stderr,
             "prompt: {} tokens in {:.3f} s ({:.1f} tokens/s); decode: {} tokens in {:.3f} s "
             "({:.1f} tokens/s); threads {}\n",
             prompt.size(), prefill_s, prompt.size() / prefill_s, generated, decode_s,
             generated > 1 ? (generated - 1) / decode_s : 0.0, o.threads);
  return OkStatus();
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text for one prompt and report its speed");
  cmd->add_option("--model", o->model, "model dir, .gguf file, or dummy:qwen2.5-0.5b|tiny")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "dummy models: f32 f16 bf16 q8_0 q4_0 q4_k_m (bf16)");
  cmd->add_option("--weights-seed", o->weights_seed, "dummy models: seed of the weights");
  cmd->add_option("--quantization,-q", o->quantization,
                  "quantize f32/f16/bf16 matrices at load: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k "
                  "q4_k q5_k q6_k");
  cmd->add_option("--num-layers", o->num_layers, "dummy models: keep only the first N layers");
  auto* text = cmd->add_option("--prompt", o->prompt, "prompt text");
  auto* ids = cmd->add_option("--prompt-ids", o->prompt_ids, "prompt token ids: 1,2,3");
  text->excludes(ids);
  cmd->add_flag("--chat", o->chat, "wrap the prompt in the chat template as a user turn");
  cmd->add_option("--max-tokens", o->max_tokens, "tokens to generate")->capture_default_str();
  cmd->add_option("--threads", o->threads, "compute threads")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 = greedy (default: generation_config)");
  cmd->add_option("--top-p", o->top_p, "nucleus sampling");
  cmd->add_option("--top-k", o->top_k, "top-k sampling");
  cmd->add_option("--seed", o->seed, "sampling seed");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating after an end-of-sequence token");
  cmd->callback([o, exit_code] {
    if (o->prompt.empty() && o->prompt_ids.empty()) o->prompt = "Hello";
    if (o->threads < 1) o->threads = 1;
    Status s = RunGenerate(*o);
    if (!s.ok()) {
      fmt::print(stderr, "tinyserve generate: {}\n", s.ToString());
      *exit_code = 1;
      return;
    }
    *exit_code = 0;
  });
}

}  // namespace tinyserve::cli
