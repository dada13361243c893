#include "model/qwen2.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/dummy.h"

namespace tinyserve {
namespace {

namespace fs = std::filesystem;

StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read {}", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Times a scope into one field of the profile when profiling is on.
class OpTimer {
 public:
  OpTimer(bool on, double* field) : field_(on ? field : nullptr) {
    if (field_) start_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (field_)
      *field_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  double* field_;
  std::chrono::steady_clock::time_point start_;
};

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

StatusOr<std::unique_ptr<Qwen2Model>> Qwen2Model::FromTensors(const ModelConfig& config,
                                                              Qwen2Tensors tensors,
                                                              std::shared_ptr<const void> source,
                                                              const Qwen2PrepareOptions& prepare) {
  TS_RETURN_IF_ERROR(ValidateModelConfig(config));
  std::unique_ptr<Qwen2Model> m(new Qwen2Model());
  m->config_ = config;
  m->source_ = std::move(source);
  m->tensors_ = std::move(tensors);
  TS_ASSIGN_OR_RETURN(m->weights_, PrepareQwen2Weights(m->tensors_, prepare));
  return m;
}

StatusOr<std::unique_ptr<Qwen2Model>> Qwen2Model::Load(const std::string& model,
                                                       const LoadOptions& options) {
  constexpr std::string_view kDummy = "dummy:";
  Qwen2PrepareOptions prepare;
  TS_ASSIGN_OR_RETURN(prepare.quantization, ParseQuantization(options.quantization));
  if (options.num_layers != 0 && model.rfind(kDummy, 0) != 0)
    return InvalidArgumentError("--num-layers applies to dummy models only");
  if (model.rfind(kDummy, 0) == 0) {
    TS_ASSIGN_OR_RETURN(ModelConfig config, DummyPresetConfig(model.substr(kDummy.size())));
    TS_RETURN_IF_ERROR(OverrideDummyLayers(options.num_layers, &config));
    TS_ASSIGN_OR_RETURN(DummyDType dtype,
                        ParseDummyDType(options.dtype.empty() ? "bf16" : options.dtype));
    TS_ASSIGN_OR_RETURN(std::unique_ptr<DummyWeights> dummy,
                        MakeDummyWeights(config, dtype, options.seed));
    std::shared_ptr<const DummyWeights> owner(std::move(dummy));
    TS_ASSIGN_OR_RETURN(Qwen2Tensors tensors, BindQwen2Tensors(config, Qwen2Naming::kHuggingFace,
                                                               [&](const std::string& name) {
                                                                 return owner->Find(name);
                                                               }));
    TS_ASSIGN_OR_RETURN(std::unique_ptr<Qwen2Model> m,
                        FromTensors(config, std::move(tensors), owner, prepare));
    GenerationDefaults defaults;
    TS_ASSIGN_OR_RETURN(defaults, GenerationDefaultsFromJson(QwenGenerationConfigJson()));
    m->gen_defaults_ = defaults;
    return m;
  }
  if (!options.dtype.empty())
    return InvalidArgumentError(
        "--dtype {} applies to dummy models only; {} keeps its stored types", options.dtype, model);
  if (EndsWith(model, ".gguf")) {
    TS_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(model));
    auto owner = std::make_shared<const GgufFile>(std::move(file));
    TS_ASSIGN_OR_RETURN(ModelConfig config, ModelConfigFromGguf(*owner));
    auto bound = BindQwen2Tensors(config, Qwen2Naming::kGguf,
                                  [&](const std::string& name) { return owner->FindTensor(name); });
    if (!bound.ok()) return bound.status().WithPrefix(model);
    auto m = FromTensors(config, std::move(bound).value(), owner, prepare);
    if (!m.ok()) return m.status().WithPrefix(model);
    (*m)->gguf_ = owner.get();
    return m;
  }
  if (!fs::is_directory(model))
    return NotFoundError("model {}: not a directory, a .gguf file or dummy:<preset>", model);
  TS_ASSIGN_OR_RETURN(std::string config_text, ReadTextFile(model + "/config.json"));
  auto config = ModelConfigFromJson(config_text);
  if (!config.ok()) return config.status().WithPrefix(model);
  TS_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::OpenDir(model));
  auto owner = std::make_shared<const SafetensorsModel>(std::move(st));
  auto bound = BindQwen2Tensors(*config, Qwen2Naming::kHuggingFace,
                                [&](const std::string& name) { return owner->FindTensor(name); });
  if (!bound.ok()) return bound.status().WithPrefix(model);
  auto m = FromTensors(*config, std::move(bound).value(), owner, prepare);
  if (!m.ok()) return m.status().WithPrefix(model);
  if (fs::exists(model + "/generation_config.json")) {
    TS_ASSIGN_OR_RETURN(std::string text, ReadTextFile(model + "/generation_config.json"));
    auto defaults = GenerationDefaultsFromJson(text);
    if (!defaults.ok()) return defaults.status().WithPrefix(model);
    (*m)->gen_defaults_ = *defaults;
  }
  if (fs::exists(model + "/tokenizer.json")) (*m)->tokenizer_dir_ = model;
  return m;
}

Status Qwen2Model::ValidateBatch(const ForwardBatch& b,
                                 std::span<const kernels::PagedKvLayer> kv) const {
  const int64_t num_tokens = b.num_tokens();
  const int32_t num_seqs = b.num_seqs();
  if (num_tokens == 0) return InvalidArgumentError("batch: no tokens");
  if (static_cast<int64_t>(b.positions.size()) != num_tokens ||
      static_cast<int64_t>(b.slot_mapping.size()) != num_tokens)
    return InvalidArgumentError("batch: positions and slot_mapping must have one entry per token");
  if (num_seqs == 0 || static_cast<int64_t>(b.query_start.size()) != num_seqs + 1)
    return InvalidArgumentError("batch: query_start must have num_seqs + 1 entries");
  if (b.max_blocks_per_seq <= 0 ||
      static_cast<int64_t>(b.block_tables.size()) != int64_t{num_seqs} * b.max_blocks_per_seq)
    return InvalidArgumentError("batch: block_tables must be [num_seqs, max_blocks_per_seq]");
  if (static_cast<int64_t>(kv.size()) != config_.num_layers)
    return InvalidArgumentError("batch: {} KV layers, the model has {}", kv.size(),
                                config_.num_layers);
  const kernels::PagedKvLayer& k0 = kv[0];
  if (k0.block_size <= 0 || k0.num_blocks <= 0)
    return InvalidArgumentError("KV cache: empty cache or block size");
  for (const kernels::PagedKvLayer& layer : kv) {
    if (layer.k == nullptr || layer.v == nullptr || layer.num_kv_heads != config_.num_kv_heads ||
        layer.head_dim != config_.head_dim || layer.num_blocks != k0.num_blocks ||
        layer.block_size != k0.block_size || layer.dtype != k0.dtype)
      return InvalidArgumentError("KV cache: layers must match the model's KV heads and head_dim");
    if (layer.dtype == DType::kI8 && (layer.k_scale == nullptr || layer.v_scale == nullptr))
      return InvalidArgumentError("KV cache: an int8 cache needs its scales");
  }
  const int64_t num_slots = k0.num_blocks * k0.block_size;
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (b.token_ids[t] < 0 || b.token_ids[t] >= config_.vocab_size)
      return InvalidArgumentError("batch: token id {} at row {} is outside the vocabulary",
                                  b.token_ids[t], t);
    if (b.slot_mapping[t] >= num_slots)
      return InvalidArgumentError("batch: slot {} at row {} is outside the KV cache ({} slots)",
                                  b.slot_mapping[t], t, num_slots);
  }
  if (b.query_start[0] != 0 || b.query_start[num_seqs] != num_tokens)
    return InvalidArgumentError("batch: query_start must run from 0 to num_tokens");
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t begin = b.query_start[s], end = b.query_start[s + 1];
    if (end < begin) return InvalidArgumentError("batch: query_start must not decrease");
    const int32_t q_len = end - begin, seq_len = b.seq_lens[s];
    if (seq_len < q_len)
      return InvalidArgumentError("batch: sequence {} has seq_len {} < its {} query tokens", s,
                                  seq_len, q_len);
    if (int64_t{seq_len} > int64_t{b.max_blocks_per_seq} * k0.block_size)
      return InvalidArgumentError("batch: sequence {} needs more blocks than its table holds", s);
    const int64_t used_blocks = (int64_t{seq_len} + k0.block_size - 1) / k0.block_size;
    for (int64_t i = 0; i < used_blocks; ++i) {
      const int32_t block = b.block_tables[int64_t{s} * b.max_blocks_per_seq + i];
      if (block < 0 || block >= k0.num_blocks)
        return InvalidArgumentError("batch: sequence {} names block {} outside the cache", s,
                                    block);
    }
    for (int32_t j = 0; j < q_len; ++j) {
      if (b.positions[begin + j] != seq_len - q_len + j)
        return InvalidArgumentError(
            "batch: row {} has position {}, expected {} (seq_len - query length + index)",
            begin + j, b.positions[begin + j], seq_len - q_len + j);
    }
  }
  for (size_t i = 0; i < b.logit_rows.size(); ++i) {
    if (b.logit_rows[i] < 0 || b.logit_rows[i] >= num_tokens ||
        (i > 0 && b.logit_rows[i] <= b.logit_rows[i - 1]))
      return InvalidArgumentError("batch: logit_rows must be ascending rows of the batch");
  }
  return OkStatus();
}

void Qwen2Model::EnsureScratch(int64_t t, int64_t r) {
  const ModelConfig& c = config_;
  if (t > scratch_tokens_) {
    const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
    x_.Resize(t * c.hidden_size);
    normed_.Resize(t * c.hidden_size);
    qkv_.Resize(t * (q_dim + 2 * kv_dim));
    q_.Resize(t * q_dim);
    k_.Resize(t * kv_dim);
    v_.Resize(t * kv_dim);
    attn_.Resize(t * q_dim);
    proj_.Resize(t * c.hidden_size);
    gate_up_.Resize(t * 2 * c.intermediate_size);
    act_.Resize(t * c.intermediate_size);
    up_.Resize(t * c.intermediate_size);
    cos_sin_.Resize(t * c.head_dim);
    scratch_tokens_ = t;
  }
  if (r > scratch_logit_rows_) {
    final_.Resize(r * c.hidden_size);
    scratch_logit_rows_ = r;
  }
}

Status Qwen2Model::Forward(const ForwardBatch& batch,
                           std::span<const kernels::PagedKvLayer> kv_layers, float* logits,
                           ThreadPool* pool) {
  TS_RETURN_IF_ERROR(ValidateBatch(batch, kv_layers));
  if (pool == nullptr) {
    if (!own_pool_) own_pool_ = std::make_unique<ThreadPool>(1);
    pool = own_pool_.get();
  }
  const ModelConfig& c = config_;
  const int64_t T = batch.num_tokens(), R = static_cast<int64_t>(batch.logit_rows.size());
  const int64_t H = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t q_dim = c.num_heads * D, kv_dim = c.num_kv_heads * D;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  EnsureScratch(T, R);
  Qwen2Profile& p = profile_;
  const bool prof = profiling_;
  if (prof) ++p.calls;

  float* x = x_.data();
  {
    OpTimer timer(prof, &p.embed);
    kernels::EmbeddingLookup(weights_.embed, batch.token_ids.data(), T, x);
    kernels::RopeCosSin(batch.positions.data(), T, D, static_cast<float>(c.rope_theta),
                        cos_sin_.data());
  }
  const kernels::AttentionBatch attn_batch{batch.num_seqs(), batch.query_start.data(),
                                           batch.seq_lens.data(), batch.block_tables.data(),
                                           batch.max_blocks_per_seq};
  // Each layer: norm, QKV projection, RoPE + KV store (fused), attention, o_proj, residual +
  // norm (fused), gate/up, SiLU * up, down; the last residual add is fused with the next layer's
  // first norm. Every op is one parallel region at most. For quantized weights the norms and
  // SiLU * up also quantize their output for the matmul after them (in the same region), and the
  // matmuls read those quantized rows; other matmuls quantize into the same kept buffer. Where
  // the kernels take it (FusesSiluMul), gate/up and SiLU * up are one region: the profile counts
  // it under gate_up.
  auto takes_quantized = [&](const kernels::PackedMatrix* w) {
    return w != nullptr && fuse_quantization_ && kernels::TakesQuantizedActivations(*w);
  };
  // MatMul of `in`, or of acts_ when `prequantized` (acts_ holds `in` quantized for w).
  auto matmul = [&](const kernels::PackedMatrix& w, const float* in, int64_t rows,
                    bool prequantized, const float* bias, float* out) {
    if (!prequantized && takes_quantized(&w)) {
      kernels::QuantizeActivations(w, in, rows, &acts_, pool);
      prequantized = true;
    }
    if (prequantized) {
      kernels::MatMulQuantized(w, acts_, bias, out, pool);
    } else {
      kernels::MatMul(w, in, rows, bias, out, pool);
    }
  };
  // The matmul reading the first norm's output of layer l (nullptr when q, k, v are separate).
  auto qkv_consumer = [&](int64_t l) {
    const Qwen2LayerWeights& L = weights_.layers[l];
    return L.fused_qkv ? &L.qkv : nullptr;
  };
  bool qkv_quantized = takes_quantized(qkv_consumer(0));
  {
    OpTimer timer(prof, &p.norm);
    const float* w = weights_.layers[0].attn_norm.data();
    if (qkv_quantized) {
      kernels::RmsNormQuantize(x, w, T, H, eps, normed_.data(), *qkv_consumer(0), &acts_, pool);
    } else {
      kernels::RmsNorm(x, w, T, H, eps, normed_.data(), pool);
    }
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Qwen2LayerWeights& L = weights_.layers[l];
    const float *q_src = q_.data(), *k_src = k_.data(), *v_src = v_.data();
    int64_t q_stride = q_dim, kv_stride = kv_dim;
    {
      OpTimer timer(prof, &p.qkv);
      const float* bias = L.qkv_bias.data();
      if (L.fused_qkv) {
        matmul(L.qkv, normed_.data(), T, qkv_quantized, bias, qkv_.data());
        q_src = qkv_.data();
        k_src = q_src + q_dim;
        v_src = k_src + kv_dim;
        q_stride = kv_stride = q_dim + 2 * kv_dim;
      } else {
        matmul(L.q, normed_.data(), T, false, bias, q_.data());
        matmul(L.k, normed_.data(), T, false, bias + q_dim, k_.data());
        matmul(L.v, normed_.data(), T, false, bias + q_dim + kv_dim, v_.data());
      }
    }
    {
      OpTimer timer(prof, &p.rope);
      kernels::RopeStoreKv(q_src, k_src, v_src, q_stride, kv_stride, T,
                           static_cast<int32_t>(c.num_heads), cos_sin_.data(), kv_layers[l],
                           batch.slot_mapping.data(), q_.data(), pool);
    }
    {
      OpTimer timer(prof, &p.attention);
      kernels::PagedAttention(q_.data(), kv_layers[l], attn_batch, c.num_heads, scale, attn_.data(),
                              pool);
    }
    {
      OpTimer timer(prof, &p.o_proj);
      matmul(L.o, attn_.data(), T, false, nullptr, proj_.data());
    }
    const bool gate_up_quantized = L.fused_gate_up && takes_quantized(&L.gate_up);
    const bool down_quantized = takes_quantized(&L.down);
    // gate/up, SiLU * up and the down projection's quantization in one pass (kernels/matmul.h).
    const bool fused_ffn =
        gate_up_quantized && down_quantized && kernels::FusesSiluMul(L.gate_up, L.down);
    {
      OpTimer timer(prof, &p.norm);
      if (gate_up_quantized) {
        kernels::AddRmsNormQuantize(x, proj_.data(), L.ffn_norm.data(), T, H, eps, normed_.data(),
                                    L.gate_up, &acts_, pool);
      } else {
        kernels::AddRmsNorm(x, proj_.data(), L.ffn_norm.data(), T, H, eps, normed_.data(), pool);
      }
    }
    {
      OpTimer timer(prof, &p.gate_up);
      if (fused_ffn) {
        kernels::MatMulSiluMulQuantized(L.gate_up, acts_, L.down, &ffn_acts_, pool);
      } else if (L.fused_gate_up) {
        matmul(L.gate_up, normed_.data(), T, gate_up_quantized, nullptr, gate_up_.data());
      } else {
        // Unfused (gate and up of different types): compute each, then lay them out as the
        // [T, 2F] rows SiluMul reads.
        matmul(L.gate, normed_.data(), T, false, nullptr, act_.data());
        matmul(L.up, normed_.data(), T, false, nullptr, up_.data());
        for (int64_t t = 0; t < T; ++t) {
          std::memcpy(gate_up_.data() + t * 2 * F, act_.data() + t * F, F * sizeof(float));
          std::memcpy(gate_up_.data() + t * 2 * F + F, up_.data() + t * F, F * sizeof(float));
        }
      }
    }
    if (!fused_ffn) {
      OpTimer timer(prof, &p.silu);
      if (down_quantized) {
        kernels::SiluMulQuantize(gate_up_.data(), T, F, act_.data(), L.down, &acts_, pool);
      } else {
        kernels::SiluMul(gate_up_.data(), T, F, act_.data(), pool);
      }
    }
    {
      OpTimer timer(prof, &p.down);
      if (fused_ffn) {
        kernels::MatMulQuantized(L.down, ffn_acts_, nullptr, proj_.data(), pool);
      } else {
        matmul(L.down, act_.data(), T, down_quantized, nullptr, proj_.data());
      }
    }
    if (l + 1 < c.num_layers) {
      OpTimer timer(prof, &p.norm);
      const float* w = weights_.layers[l + 1].attn_norm.data();
      qkv_quantized = takes_quantized(qkv_consumer(l + 1));
      if (qkv_quantized) {
        kernels::AddRmsNormQuantize(x, proj_.data(), w, T, H, eps, normed_.data(),
                                    *qkv_consumer(l + 1), &acts_, pool);
      } else {
        kernels::AddRmsNorm(x, proj_.data(), w, T, H, eps, normed_.data(), pool);
      }
    } else {
      OpTimer timer(prof, &p.residual);
      kernels::AddInPlace(x, proj_.data(), T * H);
    }
  }
  if (R == 0) return OkStatus();
  OpTimer timer(prof, &p.lm_head);
  for (int64_t i = 0; i < R; ++i)
    std::memcpy(final_.data() + i * H, x + int64_t{batch.logit_rows[i]} * H, H * sizeof(float));
  const bool lm_head_quantized = takes_quantized(&weights_.lm_head);
  if (lm_head_quantized) {
    kernels::RmsNormQuantize(final_.data(), weights_.final_norm.data(), R, H, eps, final_.data(),
                             weights_.lm_head, &acts_, pool);
  } else {
    kernels::RmsNorm(final_.data(), weights_.final_norm.data(), R, H, eps, final_.data(), pool);
  }
  matmul(weights_.lm_head, final_.data(), R, lm_head_quantized, nullptr, logits);
  return OkStatus();
}

}  // namespace tinyserve
