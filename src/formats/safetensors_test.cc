#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>

#include "formats/format_test_util.h"

namespace tinyserve {
namespace {

using testing_util::RandomBytes;
using testing_util::ScopedTempDir;

struct Spec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

std::vector<uint8_t> BytesFor(const Spec& s, uint32_t seed) {
  uint64_t n = static_cast<uint64_t>(BlockBytes(s.dtype));
  for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
  return RandomBytes(n, seed);
}

const std::vector<Spec>& AllDTypes() {
  static const std::vector<Spec> specs = {
      {"model.embed_tokens.weight", DType::kBF16, {5, 3}},
      {"f32", DType::kF32, {3, 1, 7}},
      {"f16", DType::kF16, {1}},
      {"f64", DType::kF64, {2, 2}},
      {"i8", DType::kI8, {7}},
      {"i16", DType::kI16, {3}},
      {"i32", DType::kI32, {1, 5}},
      {"i64", DType::kI64, {2}},
      {"scalar", DType::kF32, {}},
      {"empty", DType::kF16, {0, 4}},
  };
  return specs;
}

// Adds every spec with seeded random bytes; returns the bytes by name.
std::map<std::string, std::vector<uint8_t>> Fill(SafetensorsWriter& w) {
  std::map<std::string, std::vector<uint8_t>> data;
  uint32_t seed = 1;
  for (const Spec& s : AllDTypes()) {
    data[s.name] = BytesFor(s, seed++);
    EXPECT_TRUE(w.AddTensor(s.name, s.dtype, s.shape, data[s.name]).ok()) << s.name;
  }
  return data;
}

void ExpectTensorsMatch(const std::map<std::string, std::vector<uint8_t>>& data,
                        const std::function<const TensorView*(const std::string&)>& find) {
  for (const Spec& s : AllDTypes()) {
    const TensorView* t = find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->dtype, s.dtype) << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
    ASSERT_EQ(t->num_bytes, data.at(s.name).size()) << s.name;
    if (t->num_bytes > 0) {
      EXPECT_EQ(std::memcmp(t->data, data.at(s.name).data(), t->num_bytes), 0) << s.name;
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % BlockBytes(s.dtype), 0u) << s.name;
  }
}

TEST(SafetensorsTest, RoundTripPreservesEveryDTypeShapeAndMetadata) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  const auto data = Fill(w);
  w.SetMetadata("format", "pt");
  w.SetMetadata("note", "tinyserve \"quoted\" 你好");
  ASSERT_TRUE(w.Write(dir.File("model.safetensors")).ok());

  auto f = SafetensorsFile::Open(dir.File("model.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->tensors().size(), AllDTypes().size());
  ExpectTensorsMatch(data, [&](const std::string& n) { return f->FindTensor(n); });
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "tinyserve \"quoted\" 你好");
  EXPECT_EQ(f->FindTensor("absent"), nullptr);
  // Views are ordered by data offset.
  for (size_t i = 1; i < f->tensors().size(); ++i) {
    EXPECT_LE(f->tensors()[i - 1].data, f->tensors()[i].data);
  }
}

TEST(SafetensorsTest, HeaderIsPaddedSoDataStartsEightByteAligned) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  const std::vector<uint8_t> b(2);
  ASSERT_TRUE(w.AddTensor("x", DType::kBF16, {1}, b).ok());
  ASSERT_TRUE(w.Write(dir.File("a.safetensors")).ok());
  const std::vector<uint8_t> bytes = testing_util::ReadBytes(dir.File("a.safetensors"));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 2);
}

TEST(SafetensorsTest, ModelDirWithSingleFile) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  const auto data = Fill(w);
  ASSERT_TRUE(w.Write(dir.File("model.safetensors")).ok());
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->tensors().size(), AllDTypes().size());
  ExpectTensorsMatch(data, [&](const std::string& n) { return m->FindTensor(n); });
}

TEST(SafetensorsTest, ShardedModelDirRoundTrips) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  const auto data = Fill(w);
  ASSERT_TRUE(w.WriteSharded(dir.path().string(), /*max_shard_bytes=*/64).ok());
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_GT(m->shards().size(), 2u);
  for (const auto& shard : m->shards()) {
    uint64_t bytes = 0;
    for (const auto& t : shard.tensors()) bytes += t.num_bytes;
    // A shard over the limit holds a single tensor.
    EXPECT_TRUE(bytes <= 64 || shard.tensors().size() == 1) << shard.path();
  }
  EXPECT_EQ(m->tensors().size(), AllDTypes().size());
  ExpectTensorsMatch(data, [&](const std::string& n) { return m->FindTensor(n); });
}

TEST(SafetensorsTest, ModelDirWithoutWeightsIsNotFound) {
  ScopedTempDir dir;
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(SafetensorsTest, IndexWithPathInShardNameIsRejected) {
  ScopedTempDir dir;
  WriteText(dir.File("model.safetensors.index.json"),
            R"({"weight_map": {"a": "../model.safetensors"}})");
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not a plain file name"), std::string::npos);
}

TEST(SafetensorsTest, IndexListingAMissingTensorIsRejected) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  Fill(w);
  ASSERT_TRUE(w.Write(dir.File("s1.safetensors")).ok());
  WriteText(dir.File("model.safetensors.index.json"),
            R"({"weight_map": {"f32": "s1.safetensors", "ghost": "s1.safetensors"}})");
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("tensor 'ghost' listed in the index is missing"),
            std::string::npos)
      << m.status().ToString();
}

TEST(SafetensorsTest, TensorInTwoShardsIsRejected) {
  ScopedTempDir dir;
  SafetensorsWriter w;
  Fill(w);
  ASSERT_TRUE(w.Write(dir.File("s1.safetensors")).ok());
  ASSERT_TRUE(w.Write(dir.File("s2.safetensors")).ok());
  WriteText(dir.File("model.safetensors.index.json"),
            R"({"weight_map": {"f32": "s1.safetensors", "i8": "s2.safetensors"}})");
  auto m = SafetensorsModel::OpenDir(dir.path().string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("also appears in another shard"), std::string::npos);
}

TEST(SafetensorsTest, MalformedIndexIsRejected) {
  ScopedTempDir dir;
  for (const char* text : {"[1]", "{", R"({"weight_map": 3})", R"({"weight_map": {"a": 1}})",
                           R"({"weight_map": {}})"}) {
    WriteText(dir.File("model.safetensors.index.json"), text);
    auto m = SafetensorsModel::OpenDir(dir.path().string());
    EXPECT_FALSE(m.ok()) << text;
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << text;
    }
  }
}

TEST(SafetensorsWriterTest, RejectsInvalidTensors) {
  SafetensorsWriter w;
  const std::vector<uint8_t> b(34);
  EXPECT_FALSE(w.AddTensor("q", DType::kQ8_0, {32}, b).ok());  // block types cannot be stored
  EXPECT_FALSE(w.AddTensor("x", DType::kF32, {4}, b).ok());    // wrong byte count
  EXPECT_FALSE(w.AddTensor("x", DType::kI8, {-34}, b).ok());   // negative dim
  EXPECT_FALSE(w.AddTensor("__metadata__", DType::kI8, {34}, b).ok());
  EXPECT_TRUE(w.AddTensor("x", DType::kI8, {2, 17}, b).ok());
  EXPECT_FALSE(w.AddTensor("x", DType::kI8, {34}, b).ok());  // duplicate
}

}  // namespace
}  // namespace tinyserve
