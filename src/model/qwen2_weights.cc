#include "model/qwen2_weights.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/quant_formats.h"

namespace tinyserve {
namespace {

struct RoleNames {
  const char* hf;    // after "model.layers.N."
  const char* gguf;  // after "blk.N."
};

constexpr RoleNames kLayerNames[kNumQwen2LayerRoles] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

bool IsFloatType(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

Status CheckTensor(const TensorView& t, const std::vector<int64_t>& shape, bool vector) {
  if (t.shape != shape)
    return InvalidArgumentError("tensor {}: shape [{}], expected [{}]", t.name,
                                fmt::join(t.shape, ", "), fmt::join(shape, ", "));
  if (vector && !IsFloatType(t.dtype))
    return InvalidArgumentError("tensor {}: dtype {} (a norm or bias must be f32, f16 or bf16)",
                                t.name, DTypeName(t.dtype));
  const int64_t cols = shape.back();
  if (BlockSize(t.dtype) == 0)
    return InvalidArgumentError("tensor {}: unsupported dtype {}", t.name, DTypeName(t.dtype));
  std::optional<uint64_t> row = RowBytes(t.dtype, cols);
  if (!row)
    return InvalidArgumentError("tensor {}: {} columns is not a multiple of the {} block size",
                                t.name, cols, DTypeName(t.dtype));
  const uint64_t rows = static_cast<uint64_t>(t.NumElements() / cols);
  if (t.data == nullptr || t.num_bytes < *row * rows)
    return InvalidArgumentError("tensor {}: {} bytes, expected {}", t.name, t.num_bytes,
                                *row * rows);
  return OkStatus();
}

// Row-concatenation of matrices of one dtype and width, packed; rows of every block format are
// independent, so the bytes of a stacked matrix are the bytes of its parts one after another.
StatusOr<kernels::PackedMatrix> PackConcat(const std::vector<const TensorView*>& parts,
                                           const std::string& name, Qwen2Weights* w) {
  int64_t rows = 0;
  uint64_t bytes = 0;
  for (const TensorView* p : parts) {
    rows += p->shape[0];
    bytes += *RowBytes(p->dtype, p->shape[1]) * static_cast<uint64_t>(p->shape[0]);
  }
  AlignedBuffer<uint8_t> buf(bytes);
  uint64_t at = 0;
  for (const TensorView* p : parts) {
    const uint64_t n = *RowBytes(p->dtype, p->shape[1]) * static_cast<uint64_t>(p->shape[0]);
    std::memcpy(buf.data() + at, p->data, n);
    at += n;
  }
  TensorView view{name, parts[0]->dtype, {rows, parts[0]->shape[1]}, buf.data(), bytes};
  w->owned.push_back(std::move(buf));
  auto packed = kernels::PackedMatrix::Pack(view);
  if (!packed.ok()) return packed.status().WithPrefix("tensor " + name);
  return packed;
}

StatusOr<kernels::PackedMatrix> PackOne(const TensorView& t) {
  auto packed = kernels::PackedMatrix::Pack(t);
  if (!packed.ok()) return packed.status().WithPrefix("tensor " + t.name);
  return packed;
}

}  // namespace

std::string Qwen2LayerTensorName(Qwen2Naming naming, int64_t layer, Qwen2LayerRole role) {
  const RoleNames& n = kLayerNames[static_cast<int>(role)];
  return naming == Qwen2Naming::kHuggingFace ? fmt::format("model.layers.{}.{}", layer, n.hf)
                                             : fmt::format("blk.{}.{}", layer, n.gguf);
}

std::string Qwen2GlobalTensorName(Qwen2Naming naming, Qwen2GlobalRole role) {
  const bool hf = naming == Qwen2Naming::kHuggingFace;
  switch (role) {
    case Qwen2GlobalRole::kEmbed:
      return hf ? "model.embed_tokens.weight" : "token_embd.weight";
    case Qwen2GlobalRole::kFinalNorm:
      return hf ? "model.norm.weight" : "output_norm.weight";
    case Qwen2GlobalRole::kOutput:
      return hf ? "lm_head.weight" : "output.weight";
  }
  return "";
}

std::vector<int64_t> Qwen2LayerTensorShape(const ModelConfig& c, Qwen2LayerRole role) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  switch (role) {
    case Qwen2LayerRole::kAttnNorm:
    case Qwen2LayerRole::kFfnNorm:
      return {h};
    case Qwen2LayerRole::kQ:
      return {q, h};
    case Qwen2LayerRole::kK:
    case Qwen2LayerRole::kV:
      return {kv, h};
    case Qwen2LayerRole::kQBias:
      return {q};
    case Qwen2LayerRole::kKBias:
    case Qwen2LayerRole::kVBias:
      return {kv};
    case Qwen2LayerRole::kO:
      return {h, q};
    case Qwen2LayerRole::kGate:
    case Qwen2LayerRole::kUp:
      return {c.intermediate_size, h};
    case Qwen2LayerRole::kDown:
      return {h, c.intermediate_size};
  }
  return {};
}

StatusOr<Qwen2Tensors> BindQwen2Tensors(const ModelConfig& c, Qwen2Naming naming,
                                        const TensorLookup& lookup) {
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape,
                 bool vector) -> StatusOr<TensorView> {
    const TensorView* t = lookup(name);
    if (t == nullptr) return NotFoundError("tensor {} is missing", name);
    TensorView v = *t;
    v.name = name;
    TS_RETURN_IF_ERROR(CheckTensor(v, shape, vector));
    return v;
  };
  Qwen2Tensors out;
  TS_ASSIGN_OR_RETURN(out.embed, get(Qwen2GlobalTensorName(naming, Qwen2GlobalRole::kEmbed),
                                     {c.vocab_size, c.hidden_size}, false));
  TS_ASSIGN_OR_RETURN(out.final_norm,
                      get(Qwen2GlobalTensorName(naming, Qwen2GlobalRole::kFinalNorm),
                          {c.hidden_size}, true));
  const std::string output_name = Qwen2GlobalTensorName(naming, Qwen2GlobalRole::kOutput);
  if (!c.tie_word_embeddings || lookup(output_name) != nullptr) {
    TS_ASSIGN_OR_RETURN(TensorView output,
                        get(output_name, {c.vocab_size, c.hidden_size}, false));
    out.output = output;
  }
  out.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Qwen2LayerTensors& L = out.layers[l];
    TensorView* slots[kNumQwen2LayerRoles] = {&L.attn_norm, &L.q,      &L.k,        &L.v,
                                              &L.q_bias,    &L.k_bias, &L.v_bias,   &L.o,
                                              &L.ffn_norm,  &L.gate,   &L.up,       &L.down};
    for (int r = 0; r < kNumQwen2LayerRoles; ++r) {
      const auto role = static_cast<Qwen2LayerRole>(r);
      const std::vector<int64_t> shape = Qwen2LayerTensorShape(c, role);
      TS_ASSIGN_OR_RETURN(*slots[r], get(Qwen2LayerTensorName(naming, l, role), shape,
                                         /*vector=*/shape.size() == 1));
    }
  }
  return out;
}

StatusOr<std::vector<float>> TensorToF32(const TensorView& t) {
  if (!IsFloatType(t.dtype))
    return InvalidArgumentError("tensor {}: dtype {} cannot be read as a float vector", t.name,
                                DTypeName(t.dtype));
  std::vector<float> out(t.NumElements());
  kernels::DequantizeRow(t.dtype, t.data, out.data(), t.NumElements());
  return out;
}

uint64_t Qwen2Weights::MatrixBytes() const {
  uint64_t total = lm_head.bytes();
  for (const Qwen2LayerWeights& L : layers) {
    total += L.fused_qkv ? L.qkv.bytes() : L.q.bytes() + L.k.bytes() + L.v.bytes();
    total += L.o.bytes() + L.down.bytes();
    total += L.fused_gate_up ? L.gate_up.bytes() : L.gate.bytes() + L.up.bytes();
  }
  return total;
}

StatusOr<Qwen2Weights> PrepareQwen2Weights(const Qwen2Tensors& t) {
  Qwen2Weights w;
  w.embed = t.embed;
  TS_ASSIGN_OR_RETURN(w.final_norm, TensorToF32(t.final_norm));
  TS_ASSIGN_OR_RETURN(w.lm_head, PackOne(t.lm_head()));
  w.layers.resize(t.layers.size());
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const Qwen2LayerTensors& s = t.layers[l];
    Qwen2LayerWeights& d = w.layers[l];
    TS_ASSIGN_OR_RETURN(d.attn_norm, TensorToF32(s.attn_norm));
    TS_ASSIGN_OR_RETURN(d.ffn_norm, TensorToF32(s.ffn_norm));
    TS_ASSIGN_OR_RETURN(std::vector<float> bq, TensorToF32(s.q_bias));
    TS_ASSIGN_OR_RETURN(std::vector<float> bk, TensorToF32(s.k_bias));
    TS_ASSIGN_OR_RETURN(std::vector<float> bv, TensorToF32(s.v_bias));
    d.qkv_bias = bq;
    d.qkv_bias.insert(d.qkv_bias.end(), bk.begin(), bk.end());
    d.qkv_bias.insert(d.qkv_bias.end(), bv.begin(), bv.end());
    d.fused_qkv = s.q.dtype == s.k.dtype && s.q.dtype == s.v.dtype;
    if (d.fused_qkv) {
      TS_ASSIGN_OR_RETURN(d.qkv, PackConcat({&s.q, &s.k, &s.v}, fmt::format("blk.{}.qkv", l), &w));
    } else {
      TS_ASSIGN_OR_RETURN(d.q, PackOne(s.q));
      TS_ASSIGN_OR_RETURN(d.k, PackOne(s.k));
      TS_ASSIGN_OR_RETURN(d.v, PackOne(s.v));
    }
    TS_ASSIGN_OR_RETURN(d.o, PackOne(s.o));
    d.fused_gate_up = s.gate.dtype == s.up.dtype;
    if (d.fused_gate_up) {
      TS_ASSIGN_OR_RETURN(d.gate_up,
                          PackConcat({&s.gate, &s.up}, fmt::format("blk.{}.gate_up", l), &w));
    } else {
      TS_ASSIGN_OR_RETURN(d.gate, PackOne(s.gate));
      TS_ASSIGN_OR_RETURN(d.up, PackOne(s.up));
    }
    TS_ASSIGN_OR_RETURN(d.down, PackOne(s.down));
  }
  return w;
}

}  // namespace tinyserve
