// Writes safetensors files for tests/reference/test_safetensors_format.py, which parses them
// with the Python standard library and NumPy only. Tensor values follow formulas the Python test
// recomputes: element i of every tensor is f(i) below, stored in the tensor's dtype.
// Usage: tool_write_test_safetensors OUT_DIR
//   writes OUT_DIR/single.safetensors and OUT_DIR/sharded/ (shards of at most 64 data bytes).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "kernels/convert.h"

namespace tinyserve {
namespace {

// Values exact in every float type used: multiples of 1/4 of small magnitude.
double FloatValue(int64_t i) { return static_cast<double>(i) * 0.25 - 1.0; }
int64_t IntValue(int64_t i, int bits) {
  // Alternating signs reaching near the type's limits.
  const int64_t max = (bits == 64) ? INT64_MAX : (int64_t{1} << (bits - 1)) - 1;
  return (i % 2 == 0) ? max - i : -max + i - 1;
}

template <typename T>
std::vector<uint8_t> AsBytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), v.data(), out.size());  // empty tensors: no memcpy(null)
  return out;
}

std::vector<uint8_t> Values(DType dtype, int64_t n) {
  switch (dtype) {
    case DType::kF64: {
      std::vector<double> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = FloatValue(i);
      return AsBytes(v);
    }
    case DType::kF32: {
      std::vector<float> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(FloatValue(i));
      return AsBytes(v);
    }
    case DType::kF16: {
      std::vector<uint16_t> v(n);  // exact: the values are multiples of 0.25
      for (int64_t i = 0; i < n; ++i) v[i] = F32ToFp16(static_cast<float>(FloatValue(i)));
      return AsBytes(v);
    }
    case DType::kBF16: {
      // Exact values: bf16 is the high half of the f32 bit pattern.
      std::vector<uint16_t> v(n);
      for (int64_t i = 0; i < n; ++i) {
        const float f = static_cast<float>(FloatValue(i));
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        v[i] = static_cast<uint16_t>(bits >> 16);
      }
      return AsBytes(v);
    }
    case DType::kI8: {
      std::vector<int8_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int8_t>(IntValue(i, 8));
      return AsBytes(v);
    }
    case DType::kI16: {
      std::vector<int16_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(IntValue(i, 16));
      return AsBytes(v);
    }
    case DType::kI32: {
      std::vector<int32_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(IntValue(i, 32));
      return AsBytes(v);
    }
    default: {
      std::vector<int64_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = IntValue(i, 64);
      return AsBytes(v);
    }
  }
}

Status WriteAll(const std::string& out_dir) {
  struct Spec {
    const char* name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  const std::vector<Spec> specs = {
      {"model.embed_tokens.weight", DType::kBF16, {5, 3}},
      {"model.norm.weight", DType::kF32, {7}},
      {"lm_head.weight", DType::kF16, {3, 1, 3}},
      {"f64", DType::kF64, {2, 2}},
      {"i8", DType::kI8, {9}},
      {"i16", DType::kI16, {3}},
      {"i32", DType::kI32, {1, 5}},
      {"i64", DType::kI64, {3}},
      {"scalar", DType::kF32, {}},
      {"empty", DType::kF16, {0, 4}},
  };
  SafetensorsWriter w;
  for (const Spec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    TS_RETURN_IF_ERROR(w.AddTensor(s.name, s.dtype, s.shape, Values(s.dtype, n)));
  }
  w.SetMetadata("format", "pt");
  w.SetMetadata("writer", "tinyserve");
  const std::filesystem::path root(out_dir);
  TS_RETURN_IF_ERROR(w.Write((root / "single.safetensors").string()));
  std::error_code ec;
  std::filesystem::create_directories(root / "sharded", ec);
  return w.WriteSharded((root / "sharded").string(), /*max_shard_bytes=*/64);
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const tinyserve::Status s = tinyserve::WriteAll(argv[1]);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
