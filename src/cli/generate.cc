// `tinyserve generate`: loads a model, runs one prompt through the engine core (stepped on this
// thread) and streams the generated text (or token ids), then reports prompt and decode speed.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_loader.h"
#include "engine/engine_core.h"
#include "engine/kv_cache.h"
#include "model/qwen2.h"
#include "tokenizer/chat_template.h"
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

  std::shared_ptr<const Tokenizer> tokenizer;
  GenerateRequest request;
  if (!o.prompt_ids.empty()) {
    TS_ASSIGN_OR_RETURN(request.prompt_token_ids, ParseIds(o.prompt_ids, c.vocab_size));
  } else {
    TS_ASSIGN_OR_RETURN(tokenizer, LoadTokenizerFor(*model));
    std::string text = o.prompt;
    if (o.chat) {
      ChatConversation conv;
      conv.messages.push_back(ChatMessage{"user", o.prompt, nullptr, ""});
      TS_ASSIGN_OR_RETURN(text, RenderQwen25Chat(conv));
    }
    request.prompt_token_ids = tokenizer->Encode(text);
    if (request.prompt_token_ids.empty()) {
      return InvalidArgumentError("the prompt encodes to no tokens");
    }
  }
  if (o.max_tokens < 1) return InvalidArgumentError("--max-tokens must be at least 1");
  const int32_t prompt_len = static_cast<int32_t>(request.prompt_token_ids.size());
  request.sampling.temperature = o.temperature;
  request.sampling.top_p = o.top_p;
  request.sampling.top_k = o.top_k;
  request.sampling.seed = o.seed;
  request.stop.max_tokens = o.max_tokens;
  request.stop.ignore_eos = o.ignore_eos;
  request.detokenize = tokenizer != nullptr;

  // One sequence through the engine core: the whole prompt in one step, a KV cache that holds
  // exactly prompt + max_tokens, no prefix cache (nothing to share).
  EngineOptions options;
  options.max_num_seqs = 1;
  options.max_num_batched_tokens = prompt_len;
  options.max_model_len = prompt_len + o.max_tokens;
  options.enable_prefix_caching = false;
  options.threads = o.threads;
  const int64_t num_blocks = (options.max_model_len + options.block_size - 1) / options.block_size;
  options.kv_cache_memory_bytes =
      num_blocks * KvCache::BlockBytes(c, options.block_size, options.kv_cache_dtype);
  const GenerationDefaults defaults = model->generation_defaults().value_or(GenerationDefaults{});
  TS_ASSIGN_OR_RETURN(
      std::unique_ptr<EngineCore> core,
      EngineCore::Create(std::shared_ptr<Model>(std::move(model)), options, defaults,
                         tokenizer ? TokenTextFromTokenizer(tokenizer) : TokenText{}));
  TS_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, core->AddRequest(std::move(request)));

  // The first step computes the prompt and samples the first token; each later step decodes.
  int generated = 0;
  double prefill_s = 0;
  Status error;
  const auto start = Clock::now();
  Clock::time_point decode_start = start;
  while (core->has_work()) {
    if (!core->Step()) return InternalError("the engine could not schedule the prompt");
    if (generated == 0) {
      decode_start = Clock::now();
      prefill_s = std::chrono::duration<double>(decode_start - start).count();
    }
    while (std::optional<RequestEvent> e = stream->TryNext()) {
      if (tokenizer) fmt::print("{}", e->text);
      for (int32_t id : e->token_ids) {
        if (!tokenizer) fmt::print("{}{}", generated > 0 ? "," : "", id);
        ++generated;
      }
      if (e->finish_reason == FinishReason::kError) error = e->error;
    }
    std::fflush(stdout);
  }
  fmt::print("\n");
  TS_RETURN_IF_ERROR(error);
  const double decode_s = std::chrono::duration<double>(Clock::now() - decode_start).count();
  fmt::print(stderr,
             "prompt: {} tokens in {:.3f} s ({:.1f} tokens/s); decode: {} tokens in {:.3f} s "
             "({:.1f} tokens/s); threads {}\n",
             prompt_len, prefill_s, prompt_len / prefill_s, generated, decode_s,
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
