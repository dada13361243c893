#include "model/dummy.h"

#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/quant_formats.h"
#include "model/qwen2_weights.h"
#include "util/mix.h"
#include "util/thread_pool.h"

namespace tinyserve {
namespace {

// FNV-1a: a stable hash of the tensor name (std::hash may differ between builds).
uint64_t HashName(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// How a tensor's values are drawn: uniform in [center - half_width, center + half_width).
struct Distribution {
  float center;
  float half_width;
};

Distribution DistributionFor(const std::string& name, const std::vector<int64_t>& shape) {
  const bool is_norm = name.find("norm") != std::string::npos;
  if (is_norm) return {1.0f, 0.2f};
  // A uniform of half-width a has standard deviation a / sqrt(3).
  const float std_dev = shape.size() == 1 ? 0.1f : 1.0f / std::sqrt(float(shape.back()));
  return {0.0f, std_dev * std::sqrt(3.0f)};
}

// Value `index` of the tensor `name_hash`, a pure function of (seed, name, index).
inline float DrawValue(uint64_t key, int64_t index, const Distribution& d) {
  const uint64_t bits = SplitMix64(key ^ SplitMix64(static_cast<uint64_t>(index)));
  const float u = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return d.center + (2.0f * u - 1.0f) * d.half_width;
}

// Layers that llama.cpp's Q4_K_M gives more bits (its use_more_bits).
bool UseMoreBits(int64_t layer, int64_t num_layers) {
  return layer < num_layers / 8 || layer >= 7 * num_layers / 8 || (layer - num_layers / 8) % 3 == 2;
}

// k-quants need rows that are whole 256-element blocks; llama.cpp falls back otherwise.
DType KQuantOrFallback(DType t, int64_t cols) {
  if (cols % 256 == 0) return t;
  if (t == DType::kQ4_K) return DType::kQ5_0;
  if (t == DType::kQ6_K) return DType::kQ8_0;
  return t;
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<TensorSpec> Qwen2TensorSpecs(const ModelConfig& c) {
  std::vector<TensorSpec> specs;
  const auto hf = Qwen2Naming::kHuggingFace;
  specs.push_back(
      {Qwen2GlobalTensorName(hf, Qwen2GlobalRole::kEmbed), {c.vocab_size, c.hidden_size}});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (int r = 0; r < kNumQwen2LayerRoles; ++r) {
      const auto role = static_cast<Qwen2LayerRole>(r);
      specs.push_back({Qwen2LayerTensorName(hf, l, role), Qwen2LayerTensorShape(c, role)});
    }
  }
  specs.push_back({Qwen2GlobalTensorName(hf, Qwen2GlobalRole::kFinalNorm), {c.hidden_size}});
  if (!c.tie_word_embeddings)
    specs.push_back(
        {Qwen2GlobalTensorName(hf, Qwen2GlobalRole::kOutput), {c.vocab_size, c.hidden_size}});
  return specs;
}

}  // namespace

StatusOr<ModelConfig> DummyPresetConfig(std::string_view preset) {
  ModelConfig c;  // the defaults are Qwen2.5-0.5B-Instruct's published config
  if (preset == "qwen2.5-0.5b") return c;
  // The other sizes, from their published config.json files (Qwen2.5-*-Instruct, Qwen2-0.5B).
  auto shape = [&](int64_t hidden, int64_t ffn, int64_t layers, int64_t heads, int64_t kv_heads) {
    c.hidden_size = hidden;
    c.intermediate_size = ffn;
    c.num_layers = layers;
    c.num_heads = heads;
    c.num_kv_heads = kv_heads;
    c.head_dim = hidden / heads;
  };
  if (preset == "qwen2.5-1.5b") {
    shape(1536, 8960, 28, 12, 2);
    return c;
  }
  if (preset == "qwen2.5-3b") {
    shape(2048, 11008, 36, 16, 2);
    return c;
  }
  if (preset == "qwen2.5-7b") {
    shape(3584, 18944, 28, 28, 4);
    c.vocab_size = 152064;
    c.tie_word_embeddings = false;
    return c;
  }
  if (preset == "qwen2-0.5b") {  // the base model: 128k context, eos <|endoftext|>
    c.max_position_embeddings = 131072;
    c.eos_token_ids = {151643};
    return c;
  }
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.max_position_embeddings = 4096;
    return c;
  }
  return InvalidArgumentError(
      "unknown dummy preset \"{}\" (known: qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen2.5-7b, "
      "qwen2-0.5b, tiny)",
      preset);
}

Status OverrideDummyLayers(int64_t num_layers, ModelConfig* config) {
  if (num_layers == 0) return OkStatus();
  if (num_layers < 0 || num_layers > config->num_layers)
    return InvalidArgumentError("--num-layers {}: the preset has 1..{} layers", num_layers,
                                config->num_layers);
  config->num_layers = num_layers;
  return OkStatus();
}

StatusOr<DummyDType> ParseDummyDType(std::string_view name) {
  for (DummyDType t : {DummyDType::kF32, DummyDType::kF16, DummyDType::kBF16, DummyDType::kQ8_0,
                       DummyDType::kQ4_0, DummyDType::kQ4_K_M}) {
    if (DummyDTypeName(t) == name) return t;
  }
  return InvalidArgumentError("unknown dtype \"{}\" (known: f32 f16 bf16 q8_0 q4_0 q4_k_m)", name);
}

std::string_view DummyDTypeName(DummyDType t) {
  switch (t) {
    case DummyDType::kF32:
      return "f32";
    case DummyDType::kF16:
      return "f16";
    case DummyDType::kBF16:
      return "bf16";
    case DummyDType::kQ8_0:
      return "q8_0";
    case DummyDType::kQ4_0:
      return "q4_0";
    case DummyDType::kQ4_K_M:
      return "q4_k_m";
  }
  return "unknown";
}

DType DummyTensorDType(DummyDType t, const ModelConfig& c, const std::string& name,
                       const std::vector<int64_t>& shape) {
  const bool quantized =
      t == DummyDType::kQ8_0 || t == DummyDType::kQ4_0 || t == DummyDType::kQ4_K_M;
  if (shape.size() == 1) {
    if (quantized || t == DummyDType::kF32) return DType::kF32;
    return t == DummyDType::kF16 ? DType::kF16 : DType::kBF16;
  }
  switch (t) {
    case DummyDType::kF32:
      return DType::kF32;
    case DummyDType::kF16:
      return DType::kF16;
    case DummyDType::kBF16:
      return DType::kBF16;
    case DummyDType::kQ8_0:
      return DType::kQ8_0;
    default:
      break;
  }
  const bool is_output =
      name == "lm_head.weight" || (c.tie_word_embeddings && name == "model.embed_tokens.weight");
  const int64_t cols = shape.back();
  // llama.cpp quantizes the output matrix (or the tied embedding) as Q6_K.
  if (is_output) return KQuantOrFallback(DType::kQ6_K, cols);
  if (t == DummyDType::kQ4_0) return DType::kQ4_0;
  // Q4_K_M.
  int64_t layer = -1;
  if (name.rfind("model.layers.", 0) == 0) layer = std::stoll(name.substr(13));
  const bool more_bits_role =
      name.find("v_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
  if (layer >= 0 && more_bits_role && UseMoreBits(layer, c.num_layers))
    return KQuantOrFallback(DType::kQ6_K, cols);
  return KQuantOrFallback(DType::kQ4_K, cols);
}

const TensorView* DummyWeights::Find(const std::string& name) const {
  for (const TensorView& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

StatusOr<std::unique_ptr<DummyWeights>> MakeDummyWeights(const ModelConfig& config,
                                                         DummyDType dtype, uint64_t seed,
                                                         int num_threads) {
  TS_RETURN_IF_ERROR(ValidateModelConfig(config));
  auto out = std::make_unique<DummyWeights>();
  out->config = config;
  out->dtype = dtype;
  // Round 1-D tensors through the model's 16-bit type, so the f32 copies GGUF keeps hold the
  // same numbers as the 16-bit tensors of safetensors.
  const DType vector_rounding = dtype == DummyDType::kF16    ? DType::kF16
                                : dtype == DummyDType::kBF16 ? DType::kBF16
                                                             : DType::kF32;
  ThreadPool pool(std::max(1, num_threads));
  for (const TensorSpec& spec : Qwen2TensorSpecs(config)) {
    const DType type = DummyTensorDType(dtype, config, spec.name, spec.shape);
    const int64_t cols = spec.shape.back();
    const int64_t rows = spec.shape.size() == 1 ? 1 : spec.shape[0];
    std::optional<uint64_t> row_bytes = RowBytes(type, cols);
    if (!row_bytes)
      return InvalidArgumentError("dummy tensor {}: {} columns do not fit {} blocks", spec.name,
                                  cols, DTypeName(type));
    AlignedBuffer<uint8_t> bytes(*row_bytes * rows);
    const uint64_t key = SplitMix64(seed ^ HashName(spec.name));
    const Distribution dist = DistributionFor(spec.name, spec.shape);
    std::vector<Status> errors(pool.num_threads());
    pool.ParallelFor(rows, 1, [&](int64_t begin, int64_t end, int thread_idx) {
      std::vector<float> row(cols);
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t i = 0; i < cols; ++i) row[i] = DrawValue(key, r * cols + i, dist);
        uint8_t* dst = bytes.data() + r * *row_bytes;
        if (vector_rounding == DType::kF16) {
          for (float& v : row) v = Fp16ToF32(F32ToFp16(v));
        } else if (vector_rounding == DType::kBF16) {
          for (float& v : row) v = Bf16ToF32(F32ToBf16(v));
        }
        if (type == DType::kF32) {
          std::memcpy(dst, row.data(), cols * sizeof(float));
        } else if (type == DType::kF16 || type == DType::kBF16) {
          auto* d16 = reinterpret_cast<uint16_t*>(dst);
          for (int64_t i = 0; i < cols; ++i)
            d16[i] = type == DType::kF16 ? F32ToFp16(row[i]) : F32ToBf16(row[i]);
        } else {
          Status s = kernels::QuantizeRow(type, row.data(), dst, cols);
          if (!s.ok()) errors[thread_idx] = s;
        }
      }
    });
    for (const Status& s : errors)
      if (!s.ok()) return s.WithPrefix("dummy tensor " + spec.name);
    out->tensors.push_back(TensorView{spec.name, type, spec.shape, bytes.data(), bytes.size()});
    out->storage.push_back(std::move(bytes));
  }
  return out;
}

}  // namespace tinyserve
