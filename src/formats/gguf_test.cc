#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cstring>

#include "formats/format_test_util.h"

namespace tinyserve {
namespace {

using testing_util::FindAfter;
using testing_util::Patch;
using testing_util::RandomBytes;
using testing_util::ReadBytes;
using testing_util::ScopedTempDir;
using testing_util::WriteBytes;

std::vector<std::pair<std::string, GgufValue>> EveryValueType() {
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("general.architecture", GgufValue::String("qwen2"));
  kv.emplace_back("t.u8", GgufValue::Uint8(250));
  kv.emplace_back("t.i8", GgufValue::Int8(-100));
  kv.emplace_back("t.u16", GgufValue::Uint16(65000));
  kv.emplace_back("t.i16", GgufValue::Int16(-32000));
  kv.emplace_back("t.u32", GgufValue::Uint32(4000000000u));
  kv.emplace_back("t.i32", GgufValue::Int32(-2000000000));
  kv.emplace_back("t.u64", GgufValue::Uint64(18000000000000000000ull));
  kv.emplace_back("t.i64", GgufValue::Int64(-9000000000000000000ll));
  kv.emplace_back("t.f32", GgufValue::Float32(1e-6f));
  kv.emplace_back("t.f64", GgufValue::Float64(1000000.0));
  kv.emplace_back("t.bool_true", GgufValue::Bool(true));
  kv.emplace_back("t.bool_false", GgufValue::Bool(false));
  kv.emplace_back("t.empty_string", GgufValue::String(""));
  kv.emplace_back("t.utf8", GgufValue::String("你好, <|im_end|>\n"));
  kv.emplace_back("t.strings", GgufValue::StringArray({"a", "", "Ġhello", "你好"}));
  const int32_t ints[] = {1, -2, 3};
  kv.emplace_back("t.i32s", GgufValue::Int32Array(ints));
  const float floats[] = {0.5f, -1.25f};
  kv.emplace_back("t.f32s", GgufValue::Float32Array(floats));
  kv.emplace_back("t.empty_array", GgufValue::Array(GgufType::kUint8, {}));
  kv.emplace_back(
      "t.nested",
      GgufValue::Array(GgufType::kArray,
                       {GgufValue::Int32Array(ints), GgufValue::StringArray({"x"}),
                        GgufValue::Array(GgufType::kArray, {GgufValue::Float32Array(floats)})}));
  return kv;
}

struct TestTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

std::vector<uint8_t> BytesFor(const TestTensor& t, uint32_t seed) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
  return RandomBytes(*RowBytes(t.dtype, t.shape.back()) * rows, seed);
}

TEST(GgufValueTest, NumericAccessorsConvertOnlyExactValues) {
  EXPECT_EQ(GgufValue::Int32(-1).AsU64(), std::nullopt);
  EXPECT_EQ(GgufValue::Int32(7).AsU64(), 7u);
  EXPECT_EQ(GgufValue::Uint64(UINT64_MAX).AsI64(), std::nullopt);
  EXPECT_EQ(GgufValue::Float32(3.0f).AsU64(), 3u);
  EXPECT_EQ(GgufValue::Float32(3.5f).AsI64(), std::nullopt);
  EXPECT_EQ(GgufValue::Float64(-4.0).AsI64(), -4);
  EXPECT_EQ(GgufValue::Float64(1e30).AsI64(), std::nullopt);
  EXPECT_EQ(GgufValue::Uint32(5).AsF64(), 5.0);
  EXPECT_EQ(GgufValue::Uint64((1ull << 53) + 1).AsF64(), std::nullopt);
  EXPECT_EQ(GgufValue::Bool(true).AsU64(), std::nullopt);
  EXPECT_EQ(GgufValue::Bool(true).AsBool(), true);
  EXPECT_EQ(GgufValue::Uint8(1).AsBool(), std::nullopt);
  EXPECT_EQ(GgufValue::String("x").AsString(), "x");
  EXPECT_EQ(GgufValue::Int32(1).AsString(), std::nullopt);
}

TEST(GgufValueTest, ArraysExposeElementsAndConversions) {
  const int32_t ints[] = {4, -5};
  const GgufValue a = GgufValue::Int32Array(ints);
  EXPECT_TRUE(a.is_array());
  EXPECT_EQ(a.element_type(), GgufType::kInt32);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.At(1).AsI64(), -5);
  EXPECT_EQ(a.AsI64Array(), (std::vector<int64_t>{4, -5}));
  EXPECT_EQ(a.AsF64Array(), (std::vector<double>{4.0, -5.0}));
  const GgufValue s = GgufValue::StringArray({"p", "q"});
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.At(0).AsString(), "p");
  EXPECT_EQ(s.strings()[1], "q");
  EXPECT_EQ(s.AsI64Array(), std::nullopt);
}

TEST(GgufTest, RoundTripPreservesEveryMetadataTypeAndTensorType) {
  ScopedTempDir dir;
  const std::vector<TestTensor> specs = {
      {"f32", DType::kF32, {3, 5}},      {"f16", DType::kF16, {7}},
      {"bf16", DType::kBF16, {2, 3, 4}}, {"q8_0", DType::kQ8_0, {3, 64}},
      {"q4_0", DType::kQ4_0, {2, 32}},   {"q4_1", DType::kQ4_1, {1, 32}},
      {"q5_0", DType::kQ5_0, {5, 96}},   {"q5_1", DType::kQ5_1, {2, 32}},
      {"q2_k", DType::kQ2_K, {2, 256}},  {"q3_k", DType::kQ3_K, {1, 512}},
      {"q4_k", DType::kQ4_K, {3, 256}},  {"q5_k", DType::kQ5_K, {2, 256}},
      {"q6_k", DType::kQ6_K, {2, 256}},  {"i8", DType::kI8, {9}},
      {"i16", DType::kI16, {2, 2}},      {"i32", DType::kI32, {1, 1, 1, 3}},
      {"i64", DType::kI64, {2}},         {"f64", DType::kF64, {3}},
  };
  GgufWriter w;
  const auto kv = EveryValueType();
  for (const auto& [k, v] : kv) w.Set(k, v);
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    data.push_back(BytesFor(specs[i], static_cast<uint32_t>(i)));
    ASSERT_TRUE(w.AddTensor(specs[i].name, specs[i].dtype, specs[i].shape, data.back()).ok());
  }
  ASSERT_TRUE(w.Write(dir.File("m.gguf")).ok());

  auto f = GgufFile::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(f->metadata()[i].first, kv[i].first);
    EXPECT_TRUE(f->metadata()[i].second == kv[i].second) << kv[i].first;
  }
  EXPECT_EQ(f->GetString("general.architecture"), "qwen2");
  EXPECT_EQ(f->GetUint("t.u32"), 4000000000u);
  EXPECT_EQ(f->GetUint("t.i32"), std::nullopt);
  EXPECT_FLOAT_EQ(*f->GetFloat("t.f32"), 1e-6f);
  EXPECT_EQ(f->GetBool("t.bool_true"), true);
  EXPECT_EQ(f->Find("missing"), nullptr);
  const GgufValue* nested = f->Find("t.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->At(2).At(0).At(1).AsF64(), -1.25);

  ASSERT_EQ(f->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorView& t = f->tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.dtype, specs[i].dtype);
    EXPECT_EQ(t.shape, specs[i].shape);
    ASSERT_EQ(t.num_bytes, data[i].size());
    EXPECT_EQ(std::memcmp(t.data, data[i].data(), t.num_bytes), 0) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;
    EXPECT_EQ(f->FindTensor(t.name), &t);
  }
  EXPECT_EQ(f->FindTensor("absent"), nullptr);
}

TEST(GgufTest, DimsAreStoredInnermostFirstOnDisk) {
  ScopedTempDir dir;
  GgufWriter w;
  const std::vector<uint8_t> bytes(2 * 3 * 4 * 4);
  ASSERT_TRUE(w.AddTensor("t", DType::kF32, {2, 3, 4}, bytes).ok());
  ASSERT_TRUE(w.Write(dir.File("m.gguf")).ok());
  const std::vector<uint8_t> file = ReadBytes(dir.File("m.gguf"));
  const size_t at = FindAfter(file, std::string_view("\x01\0\0\0\0\0\0\0t", 9));
  ASSERT_NE(at, std::string::npos);
  uint32_t n_dims;
  uint64_t ne[3];
  std::memcpy(&n_dims, &file[at], 4);
  std::memcpy(ne, &file[at + 4], sizeof(ne));
  EXPECT_EQ(n_dims, 3u);
  EXPECT_EQ(ne[0], 4u);
  EXPECT_EQ(ne[1], 3u);
  EXPECT_EQ(ne[2], 2u);
}

TEST(GgufTest, CustomAlignmentAlignsEveryTensor) {
  ScopedTempDir dir;
  GgufWriter w;
  w.SetUint32("general.alignment", 256);
  const std::vector<uint8_t> small(3 * 2), big(100 * 4);
  ASSERT_TRUE(w.AddTensor("a", DType::kF16, {3}, small).ok());
  ASSERT_TRUE(w.AddTensor("b", DType::kF32, {100}, big).ok());
  ASSERT_TRUE(w.Write(dir.File("m.gguf")).ok());
  auto f = GgufFile::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->data_offset() % 256, 0u);
  for (const auto& t : f->tensors()) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 256, 0u);
}

TEST(GgufTest, Version2FilesAreAccepted) {
  ScopedTempDir dir;
  GgufWriter w;
  w.SetString("general.architecture", "qwen2");
  ASSERT_TRUE(w.Write(dir.File("m.gguf")).ok());
  std::vector<uint8_t> bytes = ReadBytes(dir.File("m.gguf"));
  Patch<uint32_t>(bytes, 4, 2);
  WriteBytes(dir.File("m.gguf"), bytes);
  auto f = GgufFile::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->GetString("general.architecture"), "qwen2");
}

TEST(GgufTest, SetReplacesExistingKeyInPlace) {
  ScopedTempDir dir;
  GgufWriter w;
  w.SetUint32("a", 1);
  w.SetUint32("b", 2);
  w.SetString("a", "x");
  ASSERT_TRUE(w.Write(dir.File("m.gguf")).ok());
  auto f = GgufFile::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(f->GetString("a"), "x");
}

TEST(GgufWriterTest, RejectsInvalidTensors) {
  GgufWriter w;
  const std::vector<uint8_t> b16(16);
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {5}, b16).ok());              // wrong byte count
  EXPECT_FALSE(w.AddTensor("x", DType::kQ8_0, {16}, b16).ok());            // partial block
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {}, b16).ok());               // no dims
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {1, 1, 1, 1, 4}, b16).ok());  // too many dims
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {0, 4}, b16).ok());           // zero dim
  EXPECT_FALSE(w.AddTensor(std::string(64, 'n'), DType::kF32, {4}, b16).ok());
  EXPECT_TRUE(w.AddTensor("x", DType::kF32, {4}, b16).ok());
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {4}, b16).ok());  // duplicate
}

TEST(GgufWriterTest, RejectsBadAlignmentSetting) {
  ScopedTempDir dir;
  GgufWriter w;
  w.SetUint32("general.alignment", 12);
  EXPECT_FALSE(w.Write(dir.File("m.gguf")).ok());
  w.SetString("general.alignment", "32");
  EXPECT_FALSE(w.Write(dir.File("m.gguf")).ok());
}

TEST(GgufTest, OpenMissingFileFails) {
  ScopedTempDir dir;
  EXPECT_FALSE(GgufFile::Open(dir.File("nope.gguf")).ok());
}

}  // namespace
}  // namespace tinyserve
