// Block formats: the integer decomposition the matmul packer uses is exactly DequantizeRow;
// QuantizeRow round trips within half a step; float rows convert like convert.h; bad input is
// rejected. (Bit-exact layouts against an independent NumPy decoder:
// tests/reference/test_dequant.py.)
#include "kernels/quant_formats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/quant_blocks.h"

namespace tinyserve::kernels {
namespace {

constexpr DType kBlockTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                 DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                                 DType::kQ5_K, DType::kQ6_K};

// Formats read from files only (no quantizer): decoded, never encoded.
constexpr DType kDecodeOnlyTypes[] = {DType::kIQ4_NL, DType::kIQ4_XS, DType::kIQ3_S, DType::kMXFP4,
                                      DType::kTQ1_0,  DType::kTQ2_0,  DType::kQ1_0,  DType::kQ2_0};

class BlockTypeTest : public ::testing::TestWithParam<DType> {};
class DecodeTest : public ::testing::TestWithParam<DType> {};

// Random bytes with small finite f16 scales; every quant value and scale pattern occurs.
std::vector<uint8_t> RandomBlocks(DType t, int64_t num_blocks, std::mt19937& rng) {
  std::vector<uint8_t> b(num_blocks * BlockBytes(t));
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng());
  // Overwrite every 2-byte-aligned pair that could be an f16 scale with a finite value: valid
  // for all layouts (quant bytes may be anything).
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (size_t i = 0; i + 1 < b.size(); i += 2) {
    if ((b[i + 1] & 0x7c) != 0x7c) continue;  // only inf/NaN exponents need fixing
    const uint16_t h = F32ToFp16(u(rng));
    b[i] = static_cast<uint8_t>(h);
    b[i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return b;
}

TEST_P(DecodeTest, IntegerDecompositionEqualsDequantizeRow) {
  const DType t = GetParam();
  std::mt19937 rng(static_cast<int>(t));
  const int64_t n = 4 * BlockSize(t);
  const std::vector<uint8_t> b = RandomBlocks(t, 4, rng);
  const QuantTraits traits = GetQuantTraits(t);
  std::vector<uint8_t> q(n);
  std::vector<float> scale(n / traits.sub_block), offset(n / traits.sub_block), want(n);
  DecodeRowToInts(t, b.data(), n, q.data(), scale.data(), offset.data());
  DequantizeRow(t, b.data(), want.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = i / traits.sub_block;
    // What the kernels compute: scale * (q - zero) with q - zero exact, or scale * q + offset.
    const float got = traits.has_min ? scale[s] * q[i] + offset[s]
                                     : scale[s] * static_cast<float>(q[i] - traits.zero_point);
    EXPECT_EQ(got, want[i]) << DTypeName(t) << " i=" << i;
    if (!traits.has_min) {
      EXPECT_EQ(offset[s], -traits.zero_point * scale[s]);
    }
  }
}

TEST_P(BlockTypeTest, QuantizeRoundTripWithinHalfAStep) {
  const DType t = GetParam();
  const int64_t n = 8 * BlockSize(t);
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  for (int64_t i = 0; i < BlockSize(t); ++i) x[i] = std::fabs(x[i]) + 5;  // min > 0
  std::vector<uint8_t> b(*RowBytes(t, n));
  ASSERT_TRUE(QuantizeRow(t, x.data(), b.data(), n).ok());
  const QuantTraits traits = GetQuantTraits(t);
  std::vector<uint8_t> q(n);
  std::vector<float> scale(n / traits.sub_block), offset(n / traits.sub_block), y(n);
  DecodeRowToInts(t, b.data(), n, q.data(), scale.data(), offset.data());
  DequantizeRow(t, b.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float step = std::fabs(scale[i / traits.sub_block]);
    EXPECT_LE(std::fabs(y[i] - x[i]), 0.5f * step * (1 + 1e-5f) + 1e-6f * std::fabs(x[i]))
        << DTypeName(t) << " i=" << i;
  }
}

TEST_P(BlockTypeTest, QuantizeRejectsPartialBlocksAndNonFinite) {
  const DType t = GetParam();
  std::vector<float> x(2 * BlockSize(t), 1.0f);
  std::vector<uint8_t> b(*RowBytes(t, 2 * BlockSize(t)));
  EXPECT_FALSE(QuantizeRow(t, x.data(), b.data(), BlockSize(t) + 1).ok());
  x[3] = std::nanf("");
  EXPECT_FALSE(QuantizeRow(t, x.data(), b.data(), BlockSize(t)).ok());
  x[3] = 1e30f;  // the block scale would overflow f16
  EXPECT_FALSE(QuantizeRow(t, x.data(), b.data(), BlockSize(t)).ok());
}

INSTANTIATE_TEST_SUITE_P(AllBlockTypes, DecodeTest, ::testing::ValuesIn(kBlockTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });
INSTANTIATE_TEST_SUITE_P(DecodeOnlyTypes, DecodeTest, ::testing::ValuesIn(kDecodeOnlyTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });
INSTANTIATE_TEST_SUITE_P(AllBlockTypes, BlockTypeTest, ::testing::ValuesIn(kBlockTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(QuantFormatsTest, FloatRowsConvertLikeConvertH) {
  const float x[] = {1.0f, -2.5f, 3.14159f, 65504.0f, 1e-8f, -0.0f};
  uint16_t h[6], bh[6];
  float y[6];
  ASSERT_TRUE(QuantizeRow(DType::kF16, x, h, 6).ok());
  ASSERT_TRUE(QuantizeRow(DType::kBF16, x, bh, 6).ok());
  DequantizeRow(DType::kF16, h, y, 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], Fp16ToF32(F32ToFp16(x[i])));
  DequantizeRow(DType::kBF16, bh, y, 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], Bf16ToF32(F32ToBf16(x[i])));
  DequantizeRow(DType::kF32, x, y, 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], x[i]);
}

TEST(QuantFormatsTest, QuantizeRejectsTypesWithoutQuantizer) {
  float x[4] = {};
  int32_t out[4];
  EXPECT_FALSE(QuantizeRow(DType::kI32, x, out, 4).ok());
}

}  // namespace
}  // namespace tinyserve::kernels
