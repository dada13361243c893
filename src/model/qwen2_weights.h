// Qwen2 weights: binding stored tensors by name (Hugging Face safetensors names or GGUF names)
// with shape checks against the config, then preparing them once for the kernels (norms and
// biases to f32, matrices packed, float matrices optionally quantized first; q/k/v and gate/up
// fused when their dtypes match).
// Built at load by one thread (which may fan out to all cores to quantize); read-only afterwards
// (any thread may read).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor_view.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "util/aligned_buffer.h"
#include "util/status.h"

namespace tinyserve {

enum class Qwen2Naming { kHuggingFace, kGguf };

// Tensor roles of one layer, in file order.
enum class Qwen2LayerRole {
  kAttnNorm,
  kQ,
  kK,
  kV,
  kQBias,
  kKBias,
  kVBias,
  kO,
  kFfnNorm,
  kGate,
  kUp,
  kDown,
};
inline constexpr int kNumQwen2LayerRoles = 12;
enum class Qwen2GlobalRole { kEmbed, kFinalNorm, kOutput };

// "model.layers.3.self_attn.q_proj.weight" or "blk.3.attn_q.weight".
std::string Qwen2LayerTensorName(Qwen2Naming naming, int64_t layer, Qwen2LayerRole role);
// "model.embed_tokens.weight" / "token_embd.weight", "model.norm.weight" / "output_norm.weight",
// "lm_head.weight" / "output.weight".
std::string Qwen2GlobalTensorName(Qwen2Naming naming, Qwen2GlobalRole role);
// The shape ([out, in] or [dim]) a role must have under `config`.
std::vector<int64_t> Qwen2LayerTensorShape(const ModelConfig& config, Qwen2LayerRole role);

// Returns the tensor called `name`, or nullptr when the file has none.
using TensorLookup = std::function<const TensorView*(const std::string& name)>;

struct Qwen2LayerTensors {
  TensorView attn_norm;  // [hidden]
  TensorView q, k, v;    // [num_heads*head_dim | num_kv_heads*head_dim, hidden]
  TensorView q_bias, k_bias, v_bias;
  TensorView o;         // [hidden, num_heads*head_dim]
  TensorView ffn_norm;  // [hidden]
  TensorView gate, up;  // [intermediate, hidden]
  TensorView down;      // [hidden, intermediate]
};

// Views of every weight of a Qwen2 model, shapes checked. The bytes belong to the caller.
struct Qwen2Tensors {
  TensorView embed;  // [vocab, hidden]
  std::vector<Qwen2LayerTensors> layers;
  TensorView final_norm;             // [hidden]
  std::optional<TensorView> output;  // [vocab, hidden]; absent when tied to embed
  const TensorView& lm_head() const { return output ? *output : embed; }
};

// Finds and checks every tensor. An untied config requires the output matrix; a tied one uses
// it when present (GGUFs that store the tied matrix twice) and the embedding otherwise. Errors
// name the missing or mis-shaped tensor.
[[nodiscard]] StatusOr<Qwen2Tensors> BindQwen2Tensors(const ModelConfig& config, Qwen2Naming naming,
                                                      const TensorLookup& lookup);

// A vector tensor (norm weight or bias, any float dtype) as f32.
[[nodiscard]] StatusOr<std::vector<float>> TensorToF32(const TensorView& t);

struct Qwen2LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> ffn_norm;   // [hidden]
  std::vector<float> qkv_bias;   // [q_dim + 2 * kv_dim]
  // Fused [q_dim + 2*kv_dim, hidden] when q, k, v share a dtype; else q, k, v on their own.
  bool fused_qkv = false;
  kernels::PackedMatrix qkv, q, k, v;
  kernels::PackedMatrix o;
  // Fused [2 * intermediate, hidden] (gate rows, then up rows) when dtypes match.
  bool fused_gate_up = false;
  kernels::PackedMatrix gate_up, gate, up;
  kernels::PackedMatrix down;
};

// The kernel-ready weights. Keeps views into the caller's bytes (embedding, packed matrices
// that point into them): the source must outlive this object.
struct Qwen2Weights {
  TensorView embed;  // [vocab, hidden] as stored (EmbeddingLookup reads any dtype)
  std::vector<Qwen2LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  kernels::PackedMatrix lm_head;  // [vocab, hidden]
  // Concatenated bytes of fused matrices (the packed matrices may point into them).
  std::vector<AlignedBuffer<uint8_t>> owned;

  // Bytes one decode step reads from the matrices (all layers + lm_head).
  uint64_t MatrixBytes() const;
};

// vLLM's --quantization for float checkpoints: every f32/f16/bf16 matrix is quantized to
// `type` at load (round to nearest per block, kernels/quant_formats.h), then packed like a GGUF
// matrix of that type. The embedding table stays as stored (it is read row by row, not
// multiplied); a tied lm_head is quantized from it. Like llama-quantize, a k-quant falls back
// for matrices whose rows are not a multiple of 256: q4_k -> q5_0, q5_k -> q5_1,
// q6_k -> q8_0, and q2_k / q3_k -> q4_0 (llama.cpp picks iq4_nl, which has no quantizer here).
struct Qwen2PrepareOptions {
  std::optional<DType> quantization;
};
// Parses a --quantization value: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k; "" or
// "none" = no quantization.
[[nodiscard]] StatusOr<std::optional<DType>> ParseQuantization(std::string_view name);
// The type a matrix with `cols` columns gets under --quantization `type` (the fallbacks above).
DType QuantizationFor(DType type, int64_t cols);

[[nodiscard]] StatusOr<Qwen2Weights> PrepareQwen2Weights(const Qwen2Tensors& tensors,
                                                         const Qwen2PrepareOptions& options = {});

}  // namespace tinyserve
