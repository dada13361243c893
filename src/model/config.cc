#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

// Reads an integer key; `required` keys that are missing are errors.
Status ReadInt(const Json& j, const char* key, bool required, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgumentError("config.json: missing key \"{}\"", key);
    return OkStatus();
  }
  if (!it->is_number_integer())
    return InvalidArgumentError("config.json: \"{}\" must be an integer", key);
  *out = it->get<int64_t>();
  return OkStatus();
}

Status ReadDouble(const Json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_number()) return InvalidArgumentError("config.json: \"{}\" must be a number", key);
  *out = it->get<double>();
  return OkStatus();
}

// An id or a list of ids (eos_token_id may be either).
Status ReadIds(const Json& j, const char* key, std::vector<int32_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  std::vector<int32_t> ids;
  auto add = [&](const Json& v) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      return InvalidArgumentError("\"{}\" must hold non-negative integer token ids", key);
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    return OkStatus();
  };
  if (it->is_array()) {
    for (const Json& v : *it) TS_RETURN_IF_ERROR(add(v));
  } else {
    TS_RETURN_IF_ERROR(add(*it));
  }
  *out = std::move(ids);
  return OkStatus();
}

StatusOr<Json> ParseObject(std::string_view text, const char* file) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgumentError("{}: not a JSON object", file);
  return j;
}

// The end-of-generation set llama.cpp derives from a GGUF vocabulary (llama-vocab.cpp): the
// eos, eot and eom ids and every token whose text is an end-of-turn marker or a FIM pad / repo /
// file-separator token (IsGgufEndOfGenerationText). Qwen2.5 gets {151643, 151645, 151662,
// 151663, 151664} plus "</s>" (128247), which the file marks NORMAL but llama.cpp treats as
// control (so does the GGUF tokenizer).
Status AddGgufEndOfGeneration(const GgufFile& f, const std::vector<std::string>& texts,
                              std::vector<int32_t>* ids) {
  auto add = [&](int64_t id) {
    if (id < 0 || id >= static_cast<int64_t>(texts.size())) return;
    if (std::find(ids->begin(), ids->end(), id) == ids->end())
      ids->push_back(static_cast<int32_t>(id));
  };
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (f.Find(key) == nullptr) continue;
    const std::optional<uint64_t> v = f.GetUint(key);
    if (!v || *v >= texts.size())
      return InvalidArgumentError("{}: {} is not a token id", f.path(), key);
    add(static_cast<int64_t>(*v));
  }
  for (size_t id = 0; id < texts.size(); ++id) {
    if (IsGgufEndOfGenerationText(texts[id])) add(static_cast<int64_t>(id));
  }
  std::sort(ids->begin() + 1, ids->end());  // the file's eos stays first
  return OkStatus();
}

}  // namespace

Status ValidateModelConfig(const ModelConfig& c) {
  if (c.architecture != "Qwen2ForCausalLM")
    return UnimplementedError("unsupported architecture \"{}\" (supported: Qwen2ForCausalLM)",
                              c.architecture);
  struct Positive {
    const char* name;
    int64_t value;
  };
  for (const Positive& p :
       {Positive{"vocab_size", c.vocab_size}, Positive{"hidden_size", c.hidden_size},
        Positive{"intermediate_size", c.intermediate_size},
        Positive{"num_hidden_layers", c.num_layers}, Positive{"num_attention_heads", c.num_heads},
        Positive{"num_key_value_heads", c.num_kv_heads}, Positive{"head_dim", c.head_dim},
        Positive{"max_position_embeddings", c.max_position_embeddings}}) {
    if (p.value <= 0) return InvalidArgumentError("model config: {} must be positive", p.name);
  }
  // Bounds keep every product of sizes far from overflow and reject garbage early.
  if (c.vocab_size > (int64_t{1} << 24))
    return InvalidArgumentError("model config: vocab_size {} is too large", c.vocab_size);
  if (c.hidden_size > 65536 || c.intermediate_size > 262144 || c.num_layers > 1024 ||
      c.num_heads > 1024)
    return InvalidArgumentError("model config: sizes are implausibly large");
  if (c.hidden_size % c.num_heads != 0)
    return InvalidArgumentError(
        "model config: num_attention_heads {} does not divide hidden_size {}", c.num_heads,
        c.hidden_size);
  if (c.head_dim != c.hidden_size / c.num_heads)
    return InvalidArgumentError("model config: head_dim {} != hidden_size / num_attention_heads",
                                c.head_dim);
  if (c.head_dim % 2 != 0)
    return InvalidArgumentError("model config: head_dim {} must be even for RoPE", c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0)
    return InvalidArgumentError(
        "model config: num_key_value_heads {} does not divide num_attention_heads {}",
        c.num_kv_heads, c.num_heads);
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    return InvalidArgumentError("model config: rope_theta must be positive");
  if (!(c.rms_norm_eps > 0) || !(c.rms_norm_eps < 1))
    return InvalidArgumentError("model config: rms_norm_eps must be in (0, 1)");
  if (c.bos_token_id < 0 || c.bos_token_id >= c.vocab_size)
    return InvalidArgumentError("model config: bos_token_id {} outside the vocabulary",
                                c.bos_token_id);
  for (int32_t id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size)
      return InvalidArgumentError("model config: eos_token_id {} outside the vocabulary", id);
  return OkStatus();
}

StatusOr<ModelConfig> ModelConfigFromJson(std::string_view json_text) {
  TS_ASSIGN_OR_RETURN(Json j, ParseObject(json_text, "config.json"));
  ModelConfig c;
  auto arch = j.find("architectures");
  if (arch != j.end()) {
    if (!arch->is_array() || arch->empty() || !(*arch)[0].is_string())
      return InvalidArgumentError("config.json: \"architectures\" must be a list of names");
    c.architecture = (*arch)[0].get<std::string>();
  } else {
    auto type = j.find("model_type");
    if (type == j.end() || !type->is_string())
      return InvalidArgumentError("config.json: missing \"architectures\" and \"model_type\"");
    c.architecture =
        type->get<std::string>() == "qwen2" ? "Qwen2ForCausalLM" : type->get<std::string>();
  }
  auto act = j.find("hidden_act");
  if (act != j.end() && (!act->is_string() || act->get<std::string>() != "silu"))
    return UnimplementedError("config.json: hidden_act must be \"silu\"");
  TS_RETURN_IF_ERROR(ReadInt(j, "vocab_size", true, &c.vocab_size));
  TS_RETURN_IF_ERROR(ReadInt(j, "hidden_size", true, &c.hidden_size));
  TS_RETURN_IF_ERROR(ReadInt(j, "intermediate_size", true, &c.intermediate_size));
  TS_RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", true, &c.num_layers));
  TS_RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", true, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  TS_RETURN_IF_ERROR(ReadInt(j, "num_key_value_heads", false, &c.num_kv_heads));
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  TS_RETURN_IF_ERROR(ReadInt(j, "head_dim", false, &c.head_dim));
  TS_RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", false, &c.max_position_embeddings));
  TS_RETURN_IF_ERROR(ReadDouble(j, "rope_theta", &c.rope_theta));
  TS_RETURN_IF_ERROR(ReadDouble(j, "rms_norm_eps", &c.rms_norm_eps));
  auto tie = j.find("tie_word_embeddings");
  if (tie != j.end()) {
    if (!tie->is_boolean())
      return InvalidArgumentError("config.json: \"tie_word_embeddings\" must be a boolean");
    c.tie_word_embeddings = tie->get<bool>();
  }
  auto sliding = j.find("use_sliding_window");
  if (sliding != j.end() && sliding->is_boolean() && sliding->get<bool>())
    return UnimplementedError("config.json: use_sliding_window true is not supported");
  int64_t bos = c.bos_token_id;
  TS_RETURN_IF_ERROR(ReadInt(j, "bos_token_id", false, &bos));
  if (bos < 0 || bos > INT32_MAX) return InvalidArgumentError("config.json: bad bos_token_id");
  c.bos_token_id = static_cast<int32_t>(bos);
  TS_RETURN_IF_ERROR(ReadIds(j, "eos_token_id", &c.eos_token_ids));
  auto dtype = j.find("torch_dtype");
  if (dtype != j.end() && dtype->is_string()) c.torch_dtype = dtype->get<std::string>();
  TS_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& f) {
  std::optional<std::string> arch = f.GetString("general.architecture");
  if (!arch) return InvalidArgumentError("{}: missing general.architecture", f.path());
  if (*arch != "qwen2")
    return UnimplementedError("{}: unsupported architecture \"{}\" (supported: qwen2)", f.path(),
                              *arch);
  ModelConfig c;
  auto get_int = [&](const char* key, bool required, int64_t* out) -> Status {
    std::optional<uint64_t> v = f.GetUint(key);
    if (!v) {
      if (required || f.Find(key) != nullptr)
        return InvalidArgumentError("{}: missing or non-integer key {}", f.path(), key);
      return OkStatus();
    }
    if (*v > (uint64_t{1} << 40)) return InvalidArgumentError("{}: {} is too large", f.path(), key);
    *out = static_cast<int64_t>(*v);
    return OkStatus();
  };
  TS_RETURN_IF_ERROR(get_int("qwen2.embedding_length", true, &c.hidden_size));
  TS_RETURN_IF_ERROR(get_int("qwen2.feed_forward_length", true, &c.intermediate_size));
  TS_RETURN_IF_ERROR(get_int("qwen2.block_count", true, &c.num_layers));
  TS_RETURN_IF_ERROR(get_int("qwen2.attention.head_count", true, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  TS_RETURN_IF_ERROR(get_int("qwen2.attention.head_count_kv", false, &c.num_kv_heads));
  TS_RETURN_IF_ERROR(get_int("qwen2.context_length", false, &c.max_position_embeddings));
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  if (auto v = f.GetFloat("qwen2.rope.freq_base")) c.rope_theta = *v;
  if (auto v = f.GetFloat("qwen2.attention.layer_norm_rms_epsilon")) c.rms_norm_eps = *v;
  const TensorView* embed = f.FindTensor("token_embd.weight");
  if (embed == nullptr)
    return InvalidArgumentError("{}: tensor token_embd.weight is missing", f.path());
  if (embed->shape.size() != 2)
    return InvalidArgumentError("{}: tensor token_embd.weight must be 2-D", f.path());
  c.vocab_size = embed->shape[0];
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  int64_t bos = c.bos_token_id, eos = c.eos_token_ids[0];
  TS_RETURN_IF_ERROR(get_int("tokenizer.ggml.bos_token_id", false, &bos));
  TS_RETURN_IF_ERROR(get_int("tokenizer.ggml.eos_token_id", false, &eos));
  c.bos_token_id = static_cast<int32_t>(std::min<int64_t>(bos, INT32_MAX));
  c.eos_token_ids = {static_cast<int32_t>(std::min<int64_t>(eos, INT32_MAX))};
  if (const GgufValue* tokens = f.Find("tokenizer.ggml.tokens")) {
    if (tokens->type() != GgufType::kArray || tokens->element_type() != GgufType::kString)
      return InvalidArgumentError("{}: tokenizer.ggml.tokens must be an array of strings",
                                  f.path());
    const std::vector<std::string>& texts = tokens->strings();
    // Every token id must have an embedding row, and every row a token (llama.cpp refuses
    // both mismatches too): the converter pads the list with [PAD] tokens to the row count.
    if (static_cast<int64_t>(texts.size()) != c.vocab_size)
      return InvalidArgumentError(
          "{}: tokenizer.ggml.tokens has {} entries but token_embd.weight has {} rows", f.path(),
          texts.size(), c.vocab_size);
    TS_RETURN_IF_ERROR(AddGgufEndOfGeneration(f, texts, &c.eos_token_ids));
  }
  c.torch_dtype = "gguf";
  Status s = ValidateModelConfig(c);
  if (!s.ok()) return s.WithPrefix(f.path());
  return c;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  Json j = {
      {"architectures", {c.architecture}},
      {"model_type", "qwen2"},
      {"hidden_act", "silu"},
      {"attention_dropout", 0.0},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id",
       c.eos_token_ids.size() == 1 ? Json(c.eos_token_ids[0]) : Json(c.eos_token_ids)},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"max_window_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_hidden_layers", c.num_layers},
      {"num_key_value_heads", c.num_kv_heads},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"sliding_window", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", c.torch_dtype},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", c.vocab_size},
  };
  return j.dump(2) + "\n";
}

StatusOr<GenerationDefaults> GenerationDefaultsFromJson(std::string_view json_text) {
  TS_ASSIGN_OR_RETURN(Json j, ParseObject(json_text, "generation_config.json"));
  GenerationDefaults d;
  auto num = [&](const char* key, auto* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return OkStatus();
    if (!it->is_number())
      return InvalidArgumentError("generation_config.json: \"{}\" must be a number", key);
    *out = it->get<typename std::remove_reference_t<decltype(*out)>::value_type>();
    return OkStatus();
  };
  TS_RETURN_IF_ERROR(num("temperature", &d.temperature));
  TS_RETURN_IF_ERROR(num("top_p", &d.top_p));
  TS_RETURN_IF_ERROR(num("top_k", &d.top_k));
  TS_RETURN_IF_ERROR(num("min_p", &d.min_p));
  TS_RETURN_IF_ERROR(num("repetition_penalty", &d.repetition_penalty));
  TS_RETURN_IF_ERROR(ReadIds(j, "eos_token_id", &d.eos_token_ids));
  std::vector<int32_t> pad;
  TS_RETURN_IF_ERROR(ReadIds(j, "pad_token_id", &pad));
  if (!pad.empty()) d.pad_token_id = pad[0];
  // do_sample false means greedy: the request default temperature becomes 0.
  auto sample = j.find("do_sample");
  if (sample != j.end() && sample->is_boolean() && !sample->get<bool>()) d.temperature = 0.0f;
  return d;
}

std::string QwenGenerationConfigJson() {
  Json j = {{"bos_token_id", 151643},
            {"pad_token_id", 151643},
            {"do_sample", true},
            {"eos_token_id", {151645, 151643}},
            {"repetition_penalty", 1.1},
            {"temperature", 0.7},
            {"top_p", 0.8},
            {"top_k", 20},
            {"transformers_version", "4.43.1"}};
  return j.dump(2) + "\n";
}

}  // namespace tinyserve
