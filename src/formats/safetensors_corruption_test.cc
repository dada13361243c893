// Each test writes a valid safetensors file with SafetensorsWriter, corrupts it (header bytes or
// the JSON text), and expects the specific error naming the file and tensor, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "formats/format_test_util.h"
#include "formats/safetensors.h"
#include "util/check.h"

namespace tinyserve {
namespace {

using testing_util::Patch;
using testing_util::ReadBytes;
using testing_util::ScopedTempDir;
using testing_util::WriteBytes;

class SafetensorsCorruptionTest : public ::testing::Test {
 protected:
  // Data order (largest elements first): t_aa F32 [2,3] at [0,24], t_bb BF16 [4] at [24,32],
  // t_cc I8 [3] at [32,35]; __metadata__ {"format": "pt"}.
  void SetUp() override {
    SafetensorsWriter w;
    const std::vector<uint8_t> a(24, 1), b(8, 2), c(3, 3);
    ASSERT_TRUE(w.AddTensor("t_aa", DType::kF32, {2, 3}, a).ok());
    ASSERT_TRUE(w.AddTensor("t_bb", DType::kBF16, {4}, b).ok());
    ASSERT_TRUE(w.AddTensor("t_cc", DType::kI8, {3}, c).ok());
    w.SetMetadata("format", "pt");
    path_ = dir_.File("m.safetensors");
    ASSERT_TRUE(w.Write(path_).ok());
    bytes_ = ReadBytes(path_);
    ASSERT_TRUE(SafetensorsFile::Open(path_).ok());
  }

  std::string Header() const {
    uint64_t n;
    std::memcpy(&n, bytes_.data(), 8);
    return std::string(reinterpret_cast<const char*>(bytes_.data()) + 8, n);
  }

  // Replaces the header text (padded with spaces to a multiple of 8), keeping the data.
  void SetHeader(std::string text) {
    const std::string old = Header();
    const std::vector<uint8_t> data(bytes_.begin() + 8 + old.size(), bytes_.end());
    text.append((8 - text.size() % 8) % 8, ' ');
    bytes_.assign(8, 0);
    Patch<uint64_t>(bytes_, 0, text.size());
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }

  void ReplaceInHeader(std::string_view from, std::string_view to) {
    std::string h = Header();
    const size_t at = h.find(from);
    TS_CHECK(at != std::string::npos);  // a test bug
    h.replace(at, from.size(), to);
    SetHeader(h);
  }

  void ExpectError(StatusCode code, std::string_view fragment) {
    WriteBytes(path_, bytes_);
    auto f = SafetensorsFile::Open(path_);
    ASSERT_FALSE(f.ok()) << "expected an error containing: " << fragment;
    EXPECT_EQ(f.status().code(), code) << f.status().ToString();
    EXPECT_NE(f.status().message().find(fragment), std::string::npos) << f.status().ToString();
    EXPECT_NE(f.status().message().find(path_), std::string::npos) << f.status().ToString();
  }

  ScopedTempDir dir_;
  std::string path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(SafetensorsCorruptionTest, WriterLayoutIsAsDocumented) {
  const std::string h = Header();
  EXPECT_NE(h.find(R"("t_aa":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find(R"("data_offsets":[24,32])"), std::string::npos) << h;
  EXPECT_NE(h.find(R"("data_offsets":[32,35])"), std::string::npos) << h;
}

TEST_F(SafetensorsCorruptionTest, EmptyFileIsTruncated) {
  bytes_.clear();
  ExpectError(StatusCode::kInvalidArgument, "truncated");
}

TEST_F(SafetensorsCorruptionTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = bytes_;
  for (size_t len = 0; len < full.size(); ++len) {
    bytes_.assign(full.begin(), full.begin() + len);
    WriteBytes(path_, bytes_);
    auto f = SafetensorsFile::Open(path_);
    EXPECT_FALSE(f.ok()) << "prefix of " << len << " bytes was accepted";
  }
}

TEST_F(SafetensorsCorruptionTest, HeaderLengthPastEnd) {
  Patch<uint64_t>(bytes_, 0, bytes_.size());
  ExpectError(StatusCode::kInvalidArgument, "header length");
}

TEST_F(SafetensorsCorruptionTest, HugeHeaderLength) {
  Patch<uint64_t>(bytes_, 0, UINT64_MAX);
  ExpectError(StatusCode::kInvalidArgument, "runs past the end");
}

TEST_F(SafetensorsCorruptionTest, HeaderNotJson) {
  bytes_[8] = 'x';
  ExpectError(StatusCode::kInvalidArgument, "not valid JSON");
}

TEST_F(SafetensorsCorruptionTest, HeaderNotAnObject) {
  SetHeader("[1, 2]");
  ExpectError(StatusCode::kInvalidArgument, "header JSON is not an object");
}

TEST_F(SafetensorsCorruptionTest, HeaderNestedTooDeep) {
  SetHeader(R"({"t_aa": {"shape": [[[[[1]]]]]}})");
  ExpectError(StatusCode::kInvalidArgument, "nests deeper");
}

TEST_F(SafetensorsCorruptionTest, DuplicateTensorName) {
  ReplaceInHeader("t_bb", "t_aa");
  ExpectError(StatusCode::kInvalidArgument, "duplicate key 't_aa'");
}

TEST_F(SafetensorsCorruptionTest, EntryNotAnObject) {
  ReplaceInHeader(R"({"dtype":"I8","shape":[3],"data_offsets":[32,35]})", "7");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': entry is not an object");
}

TEST_F(SafetensorsCorruptionTest, MissingDType) {
  ReplaceInHeader(R"("dtype":"I8")", R"("dtypx":"I8")");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': missing or non-string dtype");
}

TEST_F(SafetensorsCorruptionTest, UnknownDType) {
  ReplaceInHeader(R"("BF16")", R"("XF16")");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb': unknown dtype 'XF16'");
}

TEST_F(SafetensorsCorruptionTest, U8IsRejectedClearly) {
  ReplaceInHeader(R"("I8")", R"("U8")");
  ExpectError(StatusCode::kUnimplemented, "tensor 't_cc': dtype U8 is not supported");
}

TEST_F(SafetensorsCorruptionTest, BoolIsRejectedClearly) {
  ReplaceInHeader(R"("I8")", R"("BOOL")");
  ExpectError(StatusCode::kUnimplemented, "tensor 't_cc': dtype BOOL is not supported");
}

TEST_F(SafetensorsCorruptionTest, ShapeInconsistentWithByteSize) {
  ReplaceInHeader("[2,3]", "[2,4]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': shape [2,4] of F32 needs 32 bytes");
}

TEST_F(SafetensorsCorruptionTest, NegativeDimension) {
  ReplaceInHeader("[2,3]", "[-2,3]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': shape entry -2 is not");
}

TEST_F(SafetensorsCorruptionTest, FractionalDimension) {
  ReplaceInHeader("[2,3]", "[2.5,3]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': shape entry 2.5 is not");
}

TEST_F(SafetensorsCorruptionTest, ShapeProductOverflows) {
  ReplaceInHeader("[2,3]", "[4294967296,4294967296,4]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': shape");
}

TEST_F(SafetensorsCorruptionTest, TooManyDimensions) {
  ReplaceInHeader("[2,3]", "[1,1,1,1,1,1,1,2,3]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_aa': 9 dimensions");
}

TEST_F(SafetensorsCorruptionTest, DataOffsetsPastEnd) {
  ReplaceInHeader("[32,35]", "[32,36]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': data_offsets [32,36] run past");
}

TEST_F(SafetensorsCorruptionTest, DataOffsetsHugeDoNotWrap) {
  ReplaceInHeader("[32,35]", "[18446744073709551615,18446744073709551615]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': data_offsets");
}

TEST_F(SafetensorsCorruptionTest, DataOffsetsReversed) {
  ReplaceInHeader("[32,35]", "[35,32]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': invalid data_offsets");
}

TEST_F(SafetensorsCorruptionTest, DataOffsetsWrongArity) {
  ReplaceInHeader("[32,35]", "[32]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_cc': data_offsets must be");
}

TEST_F(SafetensorsCorruptionTest, OverlappingTensors) {
  ReplaceInHeader("[24,32]", "[20,28]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb' overlaps tensor 't_aa'");
}

TEST_F(SafetensorsCorruptionTest, MisalignedTensor) {
  ReplaceInHeader("[24,32]", "[25,33]");
  ExpectError(StatusCode::kInvalidArgument, "tensor 't_bb': data at file offset");
}

TEST_F(SafetensorsCorruptionTest, MetadataValueNotAString) {
  ReplaceInHeader(R"("pt")", "12");
  ExpectError(StatusCode::kInvalidArgument, "__metadata__ key 'format' is not a string");
}

TEST_F(SafetensorsCorruptionTest, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> full = bytes_;
  uint64_t n;
  std::memcpy(&n, full.data(), 8);
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    bytes_ = full;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bytes_[rng() % (8 + n)] = static_cast<uint8_t>(rng());
    WriteBytes(path_, bytes_);
    auto f = SafetensorsFile::Open(path_);
    if (f.ok()) {
      for (const TensorView& t : f->tensors()) {
        ASSERT_LE(t.num_bytes, full.size());
        const auto* p = static_cast<const uint8_t*>(t.data);
        volatile uint8_t sink = t.num_bytes ? p[t.num_bytes - 1] : 0;  // in bounds under ASan
        (void)sink;
      }
    }
  }
}

}  // namespace
}  // namespace tinyserve
