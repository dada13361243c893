// Writers of dummy models (model/dummy.h): GGUF with the official Qwen2.5 keys and tokenizer, and
// a Hugging Face safetensors directory.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/quant_formats.h"
#include "model/dummy.h"
#include "model/qwen2_weights.h"
#include "tokenizer/qwen25_files.h"

namespace tinyserve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// llama.cpp's token types.
constexpr int32_t kTokenNormal = 1;
constexpr int32_t kTokenControl = 3;
constexpr int32_t kTokenUserDefined = 4;
constexpr int32_t kTokenUnused = 5;

// llama.cpp's llama_ftype values.
uint32_t GgufFileType(DummyDType t) {
  switch (t) {
    case DummyDType::kF32:
      return 0;
    case DummyDType::kF16:
      return 1;
    case DummyDType::kQ4_0:
      return 2;
    case DummyDType::kQ8_0:
      return 7;
    case DummyDType::kQ4_K_M:
      return 15;
    case DummyDType::kBF16:
      return 32;
  }
  return 0;
}

// The GGUF name of a Hugging Face tensor name.
std::string GgufName(const ModelConfig& c, const std::string& hf) {
  using N = Qwen2Naming;
  for (auto role : {Qwen2GlobalRole::kEmbed, Qwen2GlobalRole::kFinalNorm, Qwen2GlobalRole::kOutput})
    if (hf == Qwen2GlobalTensorName(N::kHuggingFace, role))
      return Qwen2GlobalTensorName(N::kGguf, role);
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int r = 0; r < kNumQwen2LayerRoles; ++r)
      if (hf == Qwen2LayerTensorName(N::kHuggingFace, l, static_cast<Qwen2LayerRole>(r)))
        return Qwen2LayerTensorName(N::kGguf, l, static_cast<Qwen2LayerRole>(r));
  return hf;
}

Status WriteText(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) return InternalError("cannot write {}", path);
  return OkStatus();
}

// tokenizer.ggml.* from Qwen2.5's tokenizer.json, as llama.cpp's converter writes them: one
// token per embedding row ("[PAD<i>]" for rows without a token), merges as "a b".
Status AddGgufTokenizer(const ModelConfig& c, const std::string& tokenizer_dir, GgufWriter* w) {
  TS_ASSIGN_OR_RETURN(std::string text, Qwen25TokenizerJson(tokenizer_dir));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("model") || !j["model"].contains("vocab"))
    return InvalidArgumentError("{}/tokenizer.json: not a BPE tokenizer", tokenizer_dir);
  std::vector<std::string> tokens(c.vocab_size);
  std::vector<int32_t> types(c.vocab_size, kTokenUnused);
  std::vector<bool> known(c.vocab_size, false);
  for (const auto& [token, id] : j["model"]["vocab"].items()) {
    const int64_t i = id.get<int64_t>();
    if (i < 0 || i >= c.vocab_size) continue;
    tokens[i] = token;
    types[i] = kTokenNormal;
    known[i] = true;
  }
  for (const Json& added : j["added_tokens"]) {
    const int64_t i = added["id"].get<int64_t>();
    if (i < 0 || i >= c.vocab_size) continue;
    tokens[i] = added["content"].get<std::string>();
    types[i] = added.value("special", false) ? kTokenControl : kTokenUserDefined;
    known[i] = true;
  }
  for (int64_t i = 0; i < c.vocab_size; ++i)
    if (!known[i]) tokens[i] = "[PAD" + std::to_string(i) + "]";
  std::vector<std::string> merges;
  for (const Json& m : j["model"]["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    }
  }
  w->SetString("tokenizer.ggml.model", "gpt2");
  w->SetString("tokenizer.ggml.pre", "qwen2");
  w->SetStringArray("tokenizer.ggml.tokens", std::move(tokens));
  w->SetInt32Array("tokenizer.ggml.token_type", types);
  w->SetStringArray("tokenizer.ggml.merges", std::move(merges));
  w->SetUint32("tokenizer.ggml.eos_token_id", 151645);
  w->SetUint32("tokenizer.ggml.padding_token_id", 151643);
  w->SetUint32("tokenizer.ggml.bos_token_id", 151643);
  w->SetBool("tokenizer.ggml.add_bos_token", false);
  w->SetString("tokenizer.chat_template", std::string(kQwen25ChatTemplate));
  return OkStatus();
}

}  // namespace

Status WriteDummyGguf(const DummyWeights& weights, const std::string& tokenizer_dir,
                      const std::string& path) {
  const ModelConfig& c = weights.config;
  GgufWriter w;
  w.SetString("general.architecture", "qwen2");
  w.SetString("general.type", "model");
  w.SetString("general.name", "Qwen2.5 0.5B Instruct (tinyserve dummy weights)");
  w.SetUint32("general.alignment", 32);
  w.SetUint32("qwen2.block_count", static_cast<uint32_t>(c.num_layers));
  w.SetUint32("qwen2.context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.SetUint32("qwen2.embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.SetUint32("qwen2.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.SetUint32("qwen2.attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.SetUint32("qwen2.attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.SetFloat32("qwen2.rope.freq_base", static_cast<float>(c.rope_theta));
  w.SetFloat32("qwen2.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.SetUint32("general.file_type", GgufFileType(weights.dtype));
  TS_RETURN_IF_ERROR(AddGgufTokenizer(c, tokenizer_dir, &w));
  w.SetUint32("general.quantization_version", 2);
  // GGUF keeps 1-D tensors (norms, biases) in f32; the dummy values are exact in f32.
  std::vector<std::vector<float>> converted;
  converted.reserve(weights.tensors.size());
  for (const TensorView& t : weights.tensors) {
    std::span<const uint8_t> bytes(static_cast<const uint8_t*>(t.data), t.num_bytes);
    DType type = t.dtype;
    if (t.shape.size() == 1 && type != DType::kF32) {
      converted.emplace_back(t.NumElements());
      kernels::DequantizeRow(type, t.data, converted.back().data(), t.NumElements());
      bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(converted.back().data()),
                                       converted.back().size() * sizeof(float));
      type = DType::kF32;
    }
    TS_RETURN_IF_ERROR(w.AddTensorRef(GgufName(c, t.name), type, t.shape, bytes));
  }
  return w.Write(path);
}

Status WriteDummySafetensors(const DummyWeights& weights, const std::string& tokenizer_dir,
                             const std::string& dir) {
  if (weights.dtype != DummyDType::kF32 && weights.dtype != DummyDType::kF16 &&
      weights.dtype != DummyDType::kBF16)
    return InvalidArgumentError(
        "safetensors holds float weights only (f32, f16, bf16); use --format gguf for {}",
        DummyDTypeName(weights.dtype));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("cannot create directory {}: {}", dir, ec.message());
  ModelConfig config = weights.config;
  config.torch_dtype = weights.dtype == DummyDType::kF32   ? "float32"
                       : weights.dtype == DummyDType::kF16 ? "float16"
                                                           : "bfloat16";
  TS_RETURN_IF_ERROR(WriteText(dir + "/config.json", ModelConfigToJson(config)));
  TS_RETURN_IF_ERROR(WriteText(dir + "/generation_config.json", QwenGenerationConfigJson()));
  TS_ASSIGN_OR_RETURN(std::string tokenizer, Qwen25TokenizerJson(tokenizer_dir));
  TS_RETURN_IF_ERROR(WriteText(dir + "/tokenizer.json", tokenizer));
  TS_RETURN_IF_ERROR(WriteText(dir + "/tokenizer_config.json", Qwen25TokenizerConfigJson()));
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (const TensorView& t : weights.tensors) {
    TS_RETURN_IF_ERROR(
        w.AddTensorRef(t.name, t.dtype, t.shape,
                       std::span<const uint8_t>(static_cast<const uint8_t*>(t.data), t.num_bytes)));
  }
  return w.Write(dir + "/model.safetensors");
}

}  // namespace tinyserve
