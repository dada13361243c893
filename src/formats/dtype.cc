#include "formats/dtype.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace tinyserve {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  int64_t block_size;
  int64_t block_bytes;
};

constexpr DTypeInfo kInfos[] = {
    {DType::kF32, "f32", 1, 4},         {DType::kF16, "f16", 1, 2},
    {DType::kBF16, "bf16", 1, 2},       {DType::kQ4_0, "q4_0", 32, 18},
    {DType::kQ4_1, "q4_1", 32, 20},     {DType::kQ5_0, "q5_0", 32, 22},
    {DType::kQ5_1, "q5_1", 32, 24},     {DType::kQ8_0, "q8_0", 32, 34},
    {DType::kQ2_K, "q2_k", 256, 84},    {DType::kQ3_K, "q3_k", 256, 110},
    {DType::kQ4_K, "q4_k", 256, 144},   {DType::kQ5_K, "q5_k", 256, 176},
    {DType::kQ6_K, "q6_k", 256, 210},   {DType::kIQ4_NL, "iq4_nl", 32, 18},
    {DType::kIQ3_S, "iq3_s", 256, 110}, {DType::kIQ4_XS, "iq4_xs", 256, 136},
    {DType::kTQ1_0, "tq1_0", 256, 54},  {DType::kTQ2_0, "tq2_0", 256, 66},
    {DType::kMXFP4, "mxfp4", 32, 17},   {DType::kQ1_0, "q1_0", 128, 18},
    {DType::kQ2_0, "q2_0", 64, 18},     {DType::kI8, "i8", 1, 1},
    {DType::kI16, "i16", 1, 2},         {DType::kI32, "i32", 1, 4},
    {DType::kI64, "i64", 1, 8},         {DType::kF64, "f64", 1, 8},
};

const DTypeInfo* Find(DType t) {
  for (const auto& info : kInfos)
    if (info.type == t) return &info;
  return nullptr;
}

// ggml types that files may hold but tinyserve does not decode (ids from ggml.h).
struct UnsupportedGgml {
  uint32_t id;
  std::string_view name;
};
constexpr UnsupportedGgml kUnsupportedGgml[] = {
    {4, "q4_2"},        {5, "q4_3"},      {9, "q8_1"},      {15, "q8_k"},       {16, "iq2_xxs"},
    {17, "iq2_xs"},     {18, "iq3_xxs"},  {19, "iq1_s"},    {22, "iq2_s"},      {29, "iq1_m"},
    {31, "q4_0_4_4"},   {32, "q4_0_4_8"}, {33, "q4_0_8_8"}, {36, "iq4_nl_4_4"}, {37, "iq4_nl_4_8"},
    {38, "iq4_nl_8_8"}, {40, "nvfp4"},
};

}  // namespace

std::string_view GgmlTypeNameOfUnsupported(uint32_t id) {
  for (const auto& u : kUnsupportedGgml)
    if (u.id == id) return u.name;
  return {};
}

std::string_view DTypeName(DType t) {
  const DTypeInfo* info = Find(t);
  return info ? info->name : "unknown";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const auto& info : kInfos)
    if (info.name == lower) return info.type;
  return std::nullopt;
}

std::optional<DType> DTypeFromGgmlId(uint32_t id) {
  for (const auto& info : kInfos)
    if (static_cast<uint32_t>(info.type) == id) return info.type;
  return std::nullopt;
}

int64_t BlockSize(DType t) {
  const DTypeInfo* info = Find(t);
  return info ? info->block_size : 0;
}

int64_t BlockBytes(DType t) {
  const DTypeInfo* info = Find(t);
  return info ? info->block_bytes : 0;
}

bool IsQuantized(DType t) { return BlockSize(t) > 1; }

std::optional<uint64_t> RowBytes(DType t, int64_t num_elements) {
  const int64_t bs = BlockSize(t);
  if (bs == 0 || num_elements < 0 || num_elements % bs != 0) return std::nullopt;
  const uint64_t blocks = static_cast<uint64_t>(num_elements / bs);
  const uint64_t bb = static_cast<uint64_t>(BlockBytes(t));
  if (blocks != 0 && bb > UINT64_MAX / blocks) return std::nullopt;
  return blocks * bb;
}

}  // namespace tinyserve
