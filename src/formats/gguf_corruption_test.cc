// Each test writes a valid GGUF with GgufWriter, corrupts it byte-wise, and expects the specific
// error (naming the file and the key or tensor) instead of a crash or a huge allocation.
#include <gtest/gtest.h>

#include <random>

#include "formats/format_test_util.h"
#include "formats/gguf.h"
#include "util/check.h"

namespace tinyserve {
namespace {

using testing_util::FindAfter;
using testing_util::Patch;
using testing_util::ReadBytes;
using testing_util::ScopedTempDir;
using testing_util::WriteBytes;

constexpr size_t kTensorCountAt = 8;
constexpr size_t kKvCountAt = 16;

class GgufCorruptionTest : public ::testing::Test {
 protected:
  // Metadata: k.aa uint32, k.bb string, k.arr int32[3], k.flag bool, k.nest [[u8]].
  // Tensors: t_aa F32 [2, 8] at offset 0, t_bb Q8_0 [2, 32] at offset 64.
  void SetUp() override {
    GgufWriter w;
    w.SetUint32("k.aa", 7);
    w.SetString("k.bb", "hello");
    const int32_t ints[] = {1, 2, 3};
    w.SetInt32Array("k.arr", ints);
    w.SetBool("k.flag", true);
    w.Set("k.nest", GgufValue::Array(GgufType::kArray,
                                     {GgufValue::Array(GgufType::kUint8, {GgufValue::Uint8(9)})}));
    const std::vector<uint8_t> a(2 * 8 * 4, 0x11), b(2 * 34, 0x22);
    ASSERT_TRUE(w.AddTensor("t_aa", DType::kF32, {2, 8}, a).ok());
    ASSERT_TRUE(w.AddTensor("t_bb", DType::kQ8_0, {2, 32}, b).ok());
    path_ = dir_.File("m.gguf");
    ASSERT_TRUE(w.Write(path_).ok());
    bytes_ = ReadBytes(path_);
    ASSERT_TRUE(GgufFile::Open(path_).ok());
  }

  // Offset just past the tensor name `name` in its tensor info (where n_dims is).
  size_t TensorInfo(std::string_view name) {
    const size_t at = FindAfter(bytes_, name);
    TS_CHECK(at != std::string::npos);  // a test bug: fail loudly before indexing with it
    return at;
  }
  // Offset just past key `key` (where its value type is).
  size_t Key(std::string_view key) { return TensorInfo(key); }

  void ExpectError(StatusCode code, std::string_view fragment) {
    WriteBytes(path_, bytes_);
    auto f = GgufFile::Open(path_);
    ASSERT_FALSE(f.ok()) << "expected an error containing: " << fragment;
    EXPECT_EQ(f.status().code(), code) << f.status().ToString();
    EXPECT_NE(f.status().message().find(fragment), std::string::npos) << f.status().ToString();
    EXPECT_NE(f.status().message().find(path_), std::string::npos) << f.status().ToString();
  }

  ScopedTempDir dir_;
  std::string path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(GgufCorruptionTest, EmptyFileIsTruncated) {
  bytes_.clear();
  ExpectError(StatusCode::kInvalidArgument, "truncated");
}

TEST_F(GgufCorruptionTest, BadMagic) {
  bytes_[0] = 'X';
  ExpectError(StatusCode::kInvalidArgument, "bad magic");
}

TEST_F(GgufCorruptionTest, Version1IsRejected) {
  Patch<uint32_t>(bytes_, 4, 1);
  ExpectError(StatusCode::kUnimplemented, "version 1");
}

TEST_F(GgufCorruptionTest, UnknownVersionIsRejected) {
  Patch<uint32_t>(bytes_, 4, 4);
  ExpectError(StatusCode::kUnimplemented, "version 4");
}

TEST_F(GgufCorruptionTest, BigEndianIsRejected) {
  Patch<uint32_t>(bytes_, 4, 0x03000000u);
  ExpectError(StatusCode::kUnimplemented, "big-endian");
}

TEST_F(GgufCorruptionTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = bytes_;
  // The padding after the last tensor (68 bytes at offset 64) may go; anything shorter cuts
  // into a tensor or the header.
  auto intact = GgufFile::Open(path_);
  ASSERT_TRUE(intact.ok());
  const size_t last_needed = intact->data_offset() + 64 + 68;
  for (size_t len = 0; len < last_needed; ++len) {
    bytes_.assign(full.begin(), full.begin() + len);
    WriteBytes(path_, bytes_);
    auto f = GgufFile::Open(path_);
    EXPECT_FALSE(f.ok()) << "prefix of " << len << " bytes was accepted";
    if (!f.ok()) {
      EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << f.status().ToString();
    }
  }
}

TEST_F(GgufCorruptionTest, HugeTensorCount) {
  Patch<uint64_t>(bytes_, kTensorCountAt, uint64_t{1} << 60);
  ExpectError(StatusCode::kInvalidArgument, "tensor count");
}

TEST_F(GgufCorruptionTest, HugeMetadataCount) {
  Patch<uint64_t>(bytes_, kKvCountAt, uint64_t{1} << 60);
  ExpectError(StatusCode::kInvalidArgument, "metadata count");
}

TEST_F(GgufCorruptionTest, HugeKeyLength) {
  Patch<uint64_t>(bytes_, 24, uint64_t{1} << 62);
  ExpectError(StatusCode::kInvalidArgument, "metadata key #0: string length");
}

TEST_F(GgufCorruptionTest, HugeStringValueLength) {
  Patch<uint64_t>(bytes_, Key("k.bb") + 4, uint64_t{1} << 40);
  ExpectError(StatusCode::kInvalidArgument, "value of 'k.bb': string length");
}

TEST_F(GgufCorruptionTest, HugeArrayLength) {
  Patch<uint64_t>(bytes_, Key("k.arr") + 8, uint64_t{1} << 61);
  ExpectError(StatusCode::kInvalidArgument, "'k.arr': array length");
}

TEST_F(GgufCorruptionTest, UnknownValueType) {
  Patch<uint32_t>(bytes_, Key("k.aa"), 13);
  ExpectError(StatusCode::kInvalidArgument, "'k.aa': unknown value type 13");
}

TEST_F(GgufCorruptionTest, UnknownArrayElementType) {
  Patch<uint32_t>(bytes_, Key("k.arr") + 4, 99);
  ExpectError(StatusCode::kInvalidArgument, "'k.arr': unknown value type 99");
}

TEST_F(GgufCorruptionTest, InvalidBoolByte) {
  Patch<uint8_t>(bytes_, Key("k.flag") + 4, 2);
  ExpectError(StatusCode::kInvalidArgument, "'k.flag': invalid bool");
}

TEST_F(GgufCorruptionTest, NestedArraysTooDeep) {
  // Make the inner array's element type "array" again, repeatedly: each level reads another
  // array header from the following bytes until the depth limit or the end trips.
  GgufWriter w;
  GgufValue v = GgufValue::Array(GgufType::kUint8, {});
  for (int i = 0; i < 12; ++i) v = GgufValue::Array(GgufType::kArray, {v});
  w.Set("k.deep", v);
  ASSERT_TRUE(w.Write(path_).ok());
  bytes_ = ReadBytes(path_);
  ExpectError(StatusCode::kInvalidArgument, "'k.deep': arrays nested deeper than");
}

TEST_F(GgufCorruptionTest, DuplicateKey) {
  const size_t end = Key("k.bb");
  bytes_[end - 2] = 'a';
  bytes_[end - 1] = 'a';
  ExpectError(StatusCode::kInvalidArgument, "duplicate metadata key 'k.aa'");
}

TEST_F(GgufCorruptionTest, DuplicateTensorName) {
  const size_t end = TensorInfo("t_bb");
  bytes_[end - 2] = 'a';
  bytes_[end - 1] = 'a';
  ExpectError(StatusCode::kInvalidArgument, "duplicate tensor name 't_aa'");
}

TEST_F(GgufCorruptionTest, TensorNameTooLong) {
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") - 4 - 8, 64);
  ExpectError(StatusCode::kInvalidArgument, "name of tensor #0: string length 64 exceeds");
}

TEST_F(GgufCorruptionTest, TooManyDims) {
  Patch<uint32_t>(bytes_, TensorInfo("t_aa"), 5);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': 5 dimensions");
}

TEST_F(GgufCorruptionTest, ZeroDims) {
  Patch<uint32_t>(bytes_, TensorInfo("t_aa"), 0);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': 0 dimensions");
}

TEST_F(GgufCorruptionTest, ZeroDimension) {
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 12, 0);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': invalid dimension ne[1] = 0");
}

TEST_F(GgufCorruptionTest, NegativeDimension) {
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 4, uint64_t{1} << 63);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': invalid dimension ne[0]");
}

TEST_F(GgufCorruptionTest, DimensionProductOverflows) {
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 4, uint64_t{1} << 40);
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 12, uint64_t{1} << 40);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': element count overflows");
}

TEST_F(GgufCorruptionTest, ByteSizeOverflows) {
  // 2^61 f32 elements fit int64 but need 2^63 bytes... times 4 rows overflows uint64.
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 4, uint64_t{1} << 61);
  Patch<uint64_t>(bytes_, TensorInfo("t_aa") + 12, 2);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa'");
}

TEST_F(GgufCorruptionTest, UnknownTensorType) {
  Patch<uint32_t>(bytes_, TensorInfo("t_aa") + 4 + 16, 99);
  ExpectError(
      StatusCode::kUnimplemented,
      "unsupported tensor type 99 (a ggml type id this build does not know) in tensor 't_aa'");
}

TEST_F(GgufCorruptionTest, RowNotMultipleOfBlockSize) {
  Patch<uint64_t>(bytes_, TensorInfo("t_bb") + 4, 48);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb': row length 48 is not a multiple");
}

TEST_F(GgufCorruptionTest, MisalignedTensorOffset) {
  Patch<uint64_t>(bytes_, TensorInfo("t_bb") + 4 + 16 + 4, 65);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb': data offset 65 is not a multiple");
}

TEST_F(GgufCorruptionTest, TensorOffsetPastEnd) {
  Patch<uint64_t>(bytes_, TensorInfo("t_bb") + 4 + 16 + 4, uint64_t{1} << 40);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb': data");
}

TEST_F(GgufCorruptionTest, TensorOffsetNearUint64MaxDoesNotWrap) {
  Patch<uint64_t>(bytes_, TensorInfo("t_bb") + 4 + 16 + 4, UINT64_MAX - 31);
  ExpectError(StatusCode::kInvalidArgument, "runs past the end");
}

TEST_F(GgufCorruptionTest, OverlappingTensors) {
  Patch<uint64_t>(bytes_, TensorInfo("t_bb") + 4 + 16 + 4, 32);
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb' overlaps tensor 't_aa'");
}

TEST_F(GgufCorruptionTest, AlignmentNotPowerOfTwo) {
  GgufWriter w;
  w.SetUint32("general.alignment", 64);
  ASSERT_TRUE(w.Write(path_).ok());
  bytes_ = ReadBytes(path_);
  Patch<uint32_t>(bytes_, Key("general.alignment") + 4, 48);
  ExpectError(StatusCode::kInvalidArgument, "'general.alignment': 48 is not a power of two");
}

TEST_F(GgufCorruptionTest, AlignmentOfWrongType) {
  // The writer refuses non-uint32 alignments, so write another key and rename it.
  GgufWriter w2;
  w2.SetFloat32("general.alignmenX", 32.5f);
  ASSERT_TRUE(w2.Write(path_).ok());
  bytes_ = ReadBytes(path_);
  bytes_[Key("general.alignmenX") - 1] = 't';
  ExpectError(StatusCode::kInvalidArgument, "'general.alignment': expected an unsigned integer");
}

// A GGUF v3 file without tensors whose one metadata key `key` is an array of `count` elements of
// `element_type`, each `element` (raw bytes).
std::vector<uint8_t> OneArrayFile(std::string_view key, GgufType element_type, uint64_t count,
                                  std::string_view element) {
  std::vector<uint8_t> b;
  auto put = [&b](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  };
  auto u32 = [&put](uint32_t v) { put(&v, 4); };
  auto u64 = [&put](uint64_t v) { put(&v, 8); };
  put("GGUF", 4);
  u32(3);
  u64(0);  // tensors
  u64(1);  // metadata pairs
  u64(key.size());
  put(key.data(), key.size());
  u32(static_cast<uint32_t>(GgufType::kArray));
  u32(static_cast<uint32_t>(element_type));
  u64(count);
  b.reserve(b.size() + count * element.size());
  for (uint64_t i = 0; i < count; ++i) put(element.data(), element.size());
  return b;
}

TEST_F(GgufCorruptionTest, TinyArrayElementsCannotAmplifyIntoHugeParsedMemory) {
  // 8 MiB of uint8 elements (under the element-count limit) would parse into ~400 MiB of
  // GgufValues: refused before any of it is allocated.
  bytes_ = OneArrayFile("k.bytes", GgufType::kUint8, 8u << 20, std::string_view("\x01", 1));
  ExpectError(StatusCode::kInvalidArgument,
              "metadata key 'k.bytes': the metadata would take more than 256 MiB of memory parsed");
}

TEST_F(GgufCorruptionTest, ManyEmptyStringsAreBoundedByParsedMemory) {
  // 9M empty strings: 72 MiB of file, ~290 MiB of std::string.
  bytes_ =
      OneArrayFile("k.strs", GgufType::kString, 9u << 20, std::string_view("\0\0\0\0\0\0\0\0", 8));
  ExpectError(StatusCode::kInvalidArgument, "the metadata would take more than 256 MiB");
}

TEST_F(GgufCorruptionTest, AVocabularySizedStringArrayStillLoads) {
  // Like a tokenizer's 151,936 tokens: charged far below the limit.
  bytes_ = OneArrayFile("tokenizer.ggml.tokens", GgufType::kString, 151936,
                        std::string_view("\x14\0\0\0\0\0\0\0abcdefghijklmnopqrst", 28));
  WriteBytes(path_, bytes_);
  auto f = GgufFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->Find("tokenizer.ggml.tokens")->size(), 151936u);
}

TEST_F(GgufCorruptionTest, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> full = bytes_;
  std::mt19937 rng(1234);
  const size_t header_end = FindAfter(full, "t_bb") + 4 + 16 + 4 + 8;
  for (int iter = 0; iter < 300; ++iter) {
    bytes_ = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bytes_[rng() % header_end] = static_cast<uint8_t>(rng());
    WriteBytes(path_, bytes_);
    auto f = GgufFile::Open(path_);
    if (f.ok()) {
      for (const TensorView& t : f->tensors()) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        ASSERT_LE(t.num_bytes, full.size());
        volatile uint8_t sink = t.num_bytes ? p[t.num_bytes - 1] : 0;  // in bounds under ASan
        (void)sink;
      }
    }
  }
}

}  // namespace
}  // namespace tinyserve
