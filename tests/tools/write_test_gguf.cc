// Writes a small GGUF with every metadata value type and tensors of several types, for
// tests/node/gguf_interop.test.mjs, which reads it with @huggingface/gguf and checks the values
// it hard-codes. Tensor k's byte j is (7*j + 13*k) % 256.
// Usage: tool_write_test_gguf OUT.gguf
#include <cstdio>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace tinyserve {
namespace {

struct Spec {
  const char* name;
  DType dtype;
  std::vector<int64_t> shape;  // outermost first
};

Status WriteTestGguf(const std::string& path) {
  GgufWriter w;
  w.SetString("general.architecture", "qwen2");
  w.SetString("general.name", "tinyserve interop");
  w.SetUint32("general.alignment", 64);
  w.SetUint32("qwen2.block_count", 1);
  w.SetUint32("qwen2.context_length", 32768);
  w.SetFloat32("qwen2.rope.freq_base", 1000000.0f);
  w.SetFloat32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  w.Set("test.uint8", GgufValue::Uint8(200));
  w.Set("test.int8", GgufValue::Int8(-100));
  w.Set("test.uint16", GgufValue::Uint16(60000));
  w.Set("test.int16", GgufValue::Int16(-30000));
  w.Set("test.uint32", GgufValue::Uint32(4000000000u));
  w.Set("test.int32", GgufValue::Int32(-2000000000));
  w.Set("test.uint64", GgufValue::Uint64(18000000000000000000ull));
  w.Set("test.int64", GgufValue::Int64(-9000000000000000000ll));
  w.Set("test.float32", GgufValue::Float32(0.15625f));
  w.Set("test.float64", GgufValue::Float64(3.141592653589793));
  w.Set("test.bool", GgufValue::Bool(true));
  w.Set("test.string", GgufValue::String("h\xC3\xA9llo \xE4\xBD\xA0\xE5\xA5\xBD"));
  w.SetStringArray("test.string_array", {"a", "",
                                         "\xC4\xA0"
                                         "c"});
  const int32_t ints[] = {1, -2, 3};
  w.SetInt32Array("test.int32_array", ints);
  const float floats[] = {0.5f, -1.25f};
  w.SetFloat32Array("test.float32_array", floats);
  const int32_t more[] = {4};
  w.Set(
      "test.nested_array",
      GgufValue::Array(GgufType::kArray, {GgufValue::Int32Array(ints), GgufValue::Int32Array(more),
                                          GgufValue::StringArray({"x", "y"})}));

  const std::vector<Spec> specs = {
      {"token_embd.weight", DType::kF32, {4, 8}},
      {"blk.0.attn_q.weight", DType::kQ8_0, {2, 64}},
      {"blk.0.attn_q.bias", DType::kBF16, {3, 2}},
      {"blk.0.ffn_down.weight", DType::kQ4_K, {1, 256}},
      {"blk.0.ffn_up.weight", DType::kQ6_K, {2, 256}},
      {"blk.0.ffn_gate.weight", DType::kQ5_0, {3, 32}},
      {"blk.0.attn_k.weight", DType::kQ4_0, {1, 32}},
      {"output_norm.weight", DType::kF16, {8}},
  };
  for (size_t k = 0; k < specs.size(); ++k) {
    const Spec& s = specs[k];
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < s.shape.size(); ++d) rows *= s.shape[d];
    std::vector<uint8_t> bytes(*RowBytes(s.dtype, s.shape.back()) * rows);
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<uint8_t>(7 * j + 13 * k);
    TS_RETURN_IF_ERROR(w.AddTensor(s.name, s.dtype, s.shape, bytes));
  }
  return w.Write(path);
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.gguf\n", argv[0]);
    return 2;
  }
  const tinyserve::Status s = tinyserve::WriteTestGguf(argv[1]);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
