// Element types of stored tensors. Values equal ggml's type ids so GGUF files map directly.
// Block-quantized types store `BlockSize()` weights in `BlockBytes()` bytes (ggml layouts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tinyserve {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kQ1_0 = 41,
  kQ2_0 = 42,
};

// A ggml type id tinyserve recognises by name and geometry but cannot compute with (IQ2_*,
// IQ3_XXS, IQ1_*, NVFP4, ...): the name ("iq2_xs") for error messages; empty for ids it does not
// know at all.
std::string_view GgmlTypeNameOfUnsupported(uint32_t id);

// "f32", "bf16", "q4_k", ... ; "unknown" for values outside the enum.
std::string_view DTypeName(DType t);
// Parses the names above (case-insensitive) and safetensors names ("F32", "BF16", "F16", "I32").
std::optional<DType> DTypeFromName(std::string_view name);
// Maps a raw ggml type id; nullopt for ids tinyserve does not support.
std::optional<DType> DTypeFromGgmlId(uint32_t id);

// Weights per block: 1 for plain types, 32 for Q4_0..Q8_0, IQ4_NL and MXFP4, 64 for Q2_0,
// 128 for Q1_0, 256 for k-quants, IQ3_S, IQ4_XS and TQ1_0/TQ2_0.
int64_t BlockSize(DType t);
// Bytes per block.
int64_t BlockBytes(DType t);
bool IsQuantized(DType t);

// Bytes for `num_elements` weights; nullopt if num_elements is not a multiple of the block size
// or the result overflows.
std::optional<uint64_t> RowBytes(DType t, int64_t num_elements);

}  // namespace tinyserve
