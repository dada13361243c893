#include "model/qwen2_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "kernels/quant_formats.h"
#include "util/split_over_threads.h"

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
  auto packed = kernels::PackedMatrix::Pack(view);
  if (!packed.ok()) return packed.status().WithPrefix("tensor " + name);
  // Float matrices are read in place; block types were copied into the packed layout.
  if (IsFloatType(view.dtype)) w->owned.push_back(std::move(buf));
  return packed;
}

// Float matrix `t` quantized to QuantizationFor(type), in a buffer appended to `scratch`.
StatusOr<TensorView> QuantizeMatrix(const TensorView& t, DType type,
                                    std::vector<AlignedBuffer<uint8_t>>* scratch) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const DType target = QuantizationFor(type, cols);
  const std::optional<uint64_t> row_bytes = RowBytes(target, cols);
  if (!row_bytes)
    return InvalidArgumentError("tensor {}: {} columns cannot be quantized to {}", t.name, cols,
                                DTypeName(target));
  AlignedBuffer<uint8_t> buf(*row_bytes * static_cast<uint64_t>(rows));
  const uint64_t src_row = *RowBytes(t.dtype, cols);
  // Rows are independent: split them over the cores (load time is the user's wait).
  const int64_t parts = LoadThreadsFor(rows, buf.size());
  std::vector<Status> status(parts);
  SplitOverThreads(rows, parts, [&](int64_t part, int64_t begin, int64_t end) {
    std::vector<float> row(cols);
    for (int64_t r = begin; r < end; ++r) {
      kernels::DequantizeRow(t.dtype, static_cast<const uint8_t*>(t.data) + r * src_row, row.data(),
                             cols);
      Status s = kernels::QuantizeRow(target, row.data(), buf.data() + r * *row_bytes, cols);
      if (!s.ok()) {
        status[part] = s.WithPrefix(fmt::format("tensor {} row {}", t.name, r));
        return;
      }
    }
  });
  for (const Status& s : status) TS_RETURN_IF_ERROR(s);
  TensorView view{t.name, target, t.shape, buf.data(), buf.size()};
  scratch->push_back(std::move(buf));
  return view;
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
  TS_ASSIGN_OR_RETURN(
      out.final_norm,
      get(Qwen2GlobalTensorName(naming, Qwen2GlobalRole::kFinalNorm), {c.hidden_size}, true));
  const std::string output_name = Qwen2GlobalTensorName(naming, Qwen2GlobalRole::kOutput);
  if (!c.tie_word_embeddings || lookup(output_name) != nullptr) {
    TS_ASSIGN_OR_RETURN(TensorView output, get(output_name, {c.vocab_size, c.hidden_size}, false));
    out.output = output;
  }
  out.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Qwen2LayerTensors& L = out.layers[l];
    TensorView* slots[kNumQwen2LayerRoles] = {&L.attn_norm, &L.q,      &L.k,      &L.v,
                                              &L.q_bias,    &L.k_bias, &L.v_bias, &L.o,
                                              &L.ffn_norm,  &L.gate,   &L.up,     &L.down};
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

StatusOr<std::optional<DType>> ParseQuantization(std::string_view name) {
  if (name.empty() || name == "none") return std::optional<DType>();
  const std::optional<DType> t = DTypeFromName(name);
  static constexpr DType kQuantizable[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                                           DType::kQ5_1, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                                           DType::kQ5_K, DType::kQ6_K};
  if (t &&
      std::find(std::begin(kQuantizable), std::end(kQuantizable), *t) != std::end(kQuantizable))
    return std::optional<DType>(*t);
  return InvalidArgumentError(
      "--quantization {}: expected one of q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k", name);
}

DType QuantizationFor(DType type, int64_t cols) {
  if (cols % BlockSize(type) == 0) return type;
  switch (type) {
    case DType::kQ4_K:
      return DType::kQ5_0;
    case DType::kQ5_K:
      return DType::kQ5_1;
    case DType::kQ6_K:
      return DType::kQ8_0;
    default:
      return DType::kQ4_0;  // q2_k, q3_k
  }
}

StatusOr<Qwen2Weights> PrepareQwen2Weights(const Qwen2Tensors& tensors,
                                           const Qwen2PrepareOptions& options) {
  // Quantized copies of float matrices; each lives only until it is packed.
  std::vector<AlignedBuffer<uint8_t>> scratch;
  int64_t num_quantized = 0;
  auto source = [&](const TensorView& m) -> StatusOr<TensorView> {
    if (!options.quantization || !IsFloatType(m.dtype)) return m;
    ++num_quantized;
    return QuantizeMatrix(m, *options.quantization, &scratch);
  };
  Qwen2Weights w;
  w.embed = tensors.embed;
  TS_ASSIGN_OR_RETURN(w.final_norm, TensorToF32(tensors.final_norm));
  {
    TS_ASSIGN_OR_RETURN(TensorView lm_head, source(tensors.lm_head()));
    TS_ASSIGN_OR_RETURN(w.lm_head, PackOne(lm_head));
    scratch.clear();
  }
  w.layers.resize(tensors.layers.size());
  for (size_t l = 0; l < tensors.layers.size(); ++l) {
    Qwen2LayerTensors s = tensors.layers[l];
    for (TensorView* m : {&s.q, &s.k, &s.v, &s.o, &s.gate, &s.up, &s.down}) {
      TS_ASSIGN_OR_RETURN(*m, source(*m));
    }
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
    scratch.clear();
  }
  if (options.quantization && num_quantized == 0)
    return InvalidArgumentError(
        "--quantization {}: the model has no f32/f16/bf16 matrices to quantize (its matrices are "
        "{})",
        DTypeName(*options.quantization), DTypeName(tensors.lm_head().dtype));
  return w;
}

}  // namespace tinyserve
