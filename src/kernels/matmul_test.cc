// MatMul on every ISA path this CPU runs, against MatMulReference (dequantized weights, double
// accumulation), for every weight type at odd and real sizes, with and without bias, on
// misaligned pointers. Quantized paths must also agree bit for bit with the scalar path and
// with themselves across thread counts (the algorithm is the same integer arithmetic followed by
// the same fused multiply-adds in the same order). Where bf16 weights take the bf16 dot product
// (UsesBf16Dot), the bound adds bf16 rounding of the activations and the result must equal
// MatMulBf16DotModel bit for bit (matmul_bf16_test.cc covers that path further).
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/kernels_test_util.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_formats.h"
#include "kernels/ref/matmul_ref.h"
#include "util/aligned_buffer.h"

namespace tinyserve::kernels {
namespace {

constexpr DType kAllTypes[] = {
    DType::kF32,   DType::kF16,    DType::kBF16,   DType::kQ4_0,  DType::kQ4_1,  DType::kQ5_0,
    DType::kQ5_1,  DType::kQ8_0,   DType::kQ2_K,   DType::kQ3_K,  DType::kQ4_K,  DType::kQ5_K,
    DType::kQ6_K,  DType::kIQ4_NL, DType::kIQ4_XS, DType::kIQ3_S, DType::kMXFP4, DType::kTQ1_0,
    DType::kTQ2_0, DType::kQ1_0,   DType::kQ2_0};

// Offsets of the f16 scale fields inside one block (random bytes elsewhere are valid quants).
std::vector<int> F16Fields(DType t) {
  switch (t) {
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {0, 2};
    case DType::kQ2_K:
      return {80, 82};
    case DType::kQ3_K:
      return {108};
    case DType::kQ6_K:
      return {208};
    case DType::kTQ1_0:
      return {52};
    case DType::kTQ2_0:
      return {64};
    case DType::kMXFP4:
      return {};  // an E8M0 exponent instead, set by RandomWeights
    default:
      return {0};
  }
}

// Random weights [rows, cols] of type t: random floats for float types; for block types random
// bytes (every quant value, scale and sign pattern occurs) with small finite f16 scales.
std::vector<uint8_t> RandomWeights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const uint64_t bytes = *RowBytes(t, cols) * rows;
  std::vector<uint8_t> w(bytes);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  if (!IsQuantized(t)) {
    std::vector<float> f(rows * cols);
    for (float& v : f) v = u(rng);
    EXPECT_TRUE(QuantizeRow(t, f.data(), w.data(), rows * cols).ok());
    return w;
  }
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  const int64_t bb = BlockBytes(t);
  const float scale_max = BlockSize(t) == 256 ? 0.002f : 0.02f;
  for (uint64_t off = 0; off < bytes; off += bb)
    for (int f : F16Fields(t)) {
      const uint16_t h = F32ToFp16(u(rng) * scale_max);
      w[off + f] = static_cast<uint8_t>(h);
      w[off + f + 1] = static_cast<uint8_t>(h >> 8);
    }
  // MXFP4: a scale 2^(e - 128) between 2^-12 and 2^-6 (the table reaches 12).
  if (t == DType::kMXFP4)
    for (uint64_t off = 0; off < bytes; off += bb) w[off] = static_cast<uint8_t>(116 + rng() % 7);
  return w;
}

struct Case {
  int64_t rows, cols, num_rows;
};

// The quantized bound: activation int8 quantization changes each x by at most sx / 2
// (sx = amax / 127 of its 32-block), so |out - ref| <= sum_k |w_k| * sx_k / 2, plus f32
// rounding of the accumulation (a small multiple of 2^-24 per term, bounded by 2e-5 of
// sum |w x|). The bf16 dot product: matmul.h's bound, (2^-8 + K * 2^-23) * sum |w x|.
void CheckAgainstReference(DType t, const TensorView& view, const std::vector<float>& x,
                           const Case& c, const float* bias, const float* out, bool bf16_dot,
                           const std::string& label) {
  std::vector<float> ref(c.num_rows * c.rows);
  MatMulReference(view, x.data(), c.num_rows, bias, ref.data());
  std::vector<float> wrow(c.cols);
  const uint64_t row_bytes = *RowBytes(t, c.cols);
  for (int64_t n = 0; n < c.rows; ++n) {
    DequantizeRow(t, static_cast<const uint8_t*>(view.data) + n * row_bytes, wrow.data(), c.cols);
    for (int64_t m = 0; m < c.num_rows; ++m) {
      const float* xr = x.data() + m * c.cols;
      double abs_sum = 0, quant_bound = 0;
      for (int64_t k = 0; k < c.cols; ++k) abs_sum += std::fabs(double{wrow[k]} * xr[k]);
      if (IsQuantized(t)) {
        for (int64_t blk = 0; blk < c.cols / 32; ++blk) {
          float amax = 0;
          for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xr[blk * 32 + i]));
          for (int i = 0; i < 32; ++i)
            quant_bound += std::fabs(wrow[blk * 32 + i]) * (amax / 127.0) * 0.5;
        }
      }
      const double sum_tol = bf16_dot         ? 0x1p-8 + static_cast<double>(c.cols) * 0x1p-23
                             : IsQuantized(t) ? 2e-5
                                              : 1e-5;
      const double tol = quant_bound * (1 + 1e-4) + sum_tol * abs_sum +
                         1e-6 * (bias ? std::fabs(bias[n]) : 0) + 1e-30;
      const float got = out[m * c.rows + n], want = ref[m * c.rows + n];
      ASSERT_LE(std::fabs(double{got} - want), tol)
          << label << " n=" << n << " m=" << m << " got " << got << " want " << want;
    }
  }
}

void RunCase(DType t, const Case& c, std::mt19937& rng) {
  const std::vector<uint8_t> wbytes = RandomWeights(t, c.rows, c.cols, rng);
  TensorView view{"w", t, {c.rows, c.cols}, wbytes.data(), wbytes.size()};
  auto packed = PackedMatrix::Pack(view);
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  // x and out start one float past 64-byte alignment; bias likewise.
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(c.num_rows * c.cols);
  for (float& v : x) v = nd(rng);
  std::vector<float> x_buf(x.size() + 1), bias_buf(c.rows + 1);
  std::memcpy(x_buf.data() + 1, x.data(), x.size() * sizeof(float));
  for (float& v : bias_buf) v = nd(rng);
  static ThreadPool pool(2);
  std::vector<float> scalar_out;
  for (bool with_bias : {false, true}) {
    const float* bias = with_bias ? bias_buf.data() + 1 : nullptr;
    for (Isa isa : testing::SupportedMatMulIsas()) {
      const std::string label =
          std::string(DTypeName(t)) + " " + std::string(IsaName(isa)) +
          " rows=" + std::to_string(c.rows) + " cols=" + std::to_string(c.cols) +
          " num_rows=" + std::to_string(c.num_rows) + (with_bias ? " bias" : "");
      std::vector<float> out1(c.num_rows * c.rows + 1), out2(out1.size());
      MatMulWithIsa(isa, *packed, x_buf.data() + 1, c.num_rows, bias, out1.data() + 1, nullptr);
      MatMulWithIsa(isa, *packed, x_buf.data() + 1, c.num_rows, bias, out2.data() + 1, &pool);
      ASSERT_EQ(0, std::memcmp(out1.data() + 1, out2.data() + 1, (out1.size() - 1) * 4))
          << label << ": 1 and 2 threads differ";
      const bool bf16_dot = UsesBf16Dot(*packed, isa);
      CheckAgainstReference(t, view, x, c, bias, out1.data() + 1, bf16_dot, label);
      // The AMX-BF16 unit rounds its sums its own way (matmul_amx_bf16_test.cc checks it).
      if (bf16_dot && !UsesAmxBf16(*packed, isa, c.num_rows)) {
        std::vector<float> model(c.num_rows * c.rows);
        MatMulBf16DotModel(view, x.data(), c.num_rows, bias, model.data());
        ASSERT_EQ(0, std::memcmp(model.data(), out1.data() + 1, model.size() * 4))
            << label << ": differs from MatMulBf16DotModel";
      }
      if (IsQuantized(t)) {
        if (isa == Isa::kScalar) {
          scalar_out.assign(out1.begin() + 1, out1.end());
        } else {
          for (size_t i = 0; i < scalar_out.size(); ++i)
            ASSERT_EQ(scalar_out[i], out1[i + 1]) << label << ": differs from scalar at " << i;
        }
      }
    }
  }
}

class MatMulTypeTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulTypeTest, MatchesReferenceOnEveryIsaAtOddSizes) {
  const DType t = GetParam();
  const int64_t bs = BlockSize(t) == 1 ? 32 : BlockSize(t);
  std::mt19937 rng(1234 + static_cast<int>(t));
  for (int64_t rows : {1, 5, 16, 17, 37})
    for (int64_t num_rows : {1, 2, 3, 5, 8, 9}) RunCase(t, {rows, bs, num_rows}, rng);
  RunCase(t, {33, 2 * bs, 7}, rng);
  RunCase(t, {20, bs, 64}, rng);
  RunCase(t, {37, 2 * bs, 40}, rng);  // group pairs unpacked once for 5 row tiles, an odd group
  RunCase(t, {3, bs, 512}, rng);
}

TEST_P(MatMulTypeTest, MatchesReferenceAtModelWidths) {
  const DType t = GetParam();
  std::mt19937 rng(99 + static_cast<int>(t));
  if (BlockSize(t) != 256) RunCase(t, {18, 896, 3}, rng);
  RunCase(t, {17, 4864, 2}, rng);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTypeTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

// Float weights accept any width: sweep 1..2x the widest vector plus a tail past it.
TEST(MatMulFloatTest, MatchesReferenceForEveryWidthUpTo40) {
  std::mt19937 rng(7);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16})
    for (int64_t cols = 1; cols <= 40; ++cols) RunCase(t, {6, cols, 5}, rng);
}

// An output of kStreamOutputBytes or more on a 64-byte boundary (the logits of a 64-sequence
// decode step) is written with non-temporal stores: the same bits as the same product written
// through the caches (one float past the boundary, never streamed) and on the scalar path, on
// one thread and on two, with a bias and without. 64 rows x 32,768 outputs is exactly the
// threshold.
TEST(MatMulStreamTest, AStreamedOutputEqualsTheCachedOne) {
  constexpr int64_t kRows = 32768, kNumRows = 64;
  static_assert(kNumRows * kRows * int64_t{sizeof(float)} == kStreamOutputBytes);
  static ThreadPool pool(2);
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K}) {
    std::mt19937 rng(11 + static_cast<int>(t));
    const int64_t cols = BlockSize(t) == 256 ? 256 : 64;
    const std::vector<uint8_t> wbytes = RandomWeights(t, kRows, cols, rng);
    auto packed = PackedMatrix::Pack({"w", t, {kRows, cols}, wbytes.data(), wbytes.size()});
    ASSERT_TRUE(packed.ok()) << packed.status().ToString();
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(kNumRows * cols);
    for (float& v : x) v = nd(rng);
    std::vector<float> bias_values(kRows);
    for (float& v : bias_values) v = nd(rng);
    const size_t n = kNumRows * kRows;
    AlignedBuffer<float> streamed(n), cached(n + 1);
    std::vector<float> scalar(n);
    const float* const biases[] = {nullptr, bias_values.data()};
    for (const float* bias : biases) {
      MatMulWithIsa(Isa::kScalar, *packed, x.data(), kNumRows, bias, scalar.data(), &pool);
      for (Isa isa : testing::SupportedMatMulIsas()) {
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          const std::string label = std::string(DTypeName(t)) + " " + std::string(IsaName(isa)) +
                                    (p ? " 2 threads" : " 1 thread") + (bias ? " bias" : "");
          std::memset(streamed.data(), 0xff, n * sizeof(float));
          MatMulWithIsa(isa, *packed, x.data(), kNumRows, bias, streamed.data(), p);
          MatMulWithIsa(isa, *packed, x.data(), kNumRows, bias, cached.data() + 1, p);
          ASSERT_EQ(0, std::memcmp(streamed.data(), cached.data() + 1, n * sizeof(float))) << label;
          ASSERT_EQ(0, std::memcmp(streamed.data(), scalar.data(), n * sizeof(float))) << label;
        }
      }
    }
  }
}

// Decode-sized products (up to kFewRows rows, bound by reading the weights) go in fewer, larger
// chunks than the rest (QuantChunkGroups: ~1 MiB of weights, at least two a thread), which
// threads claim as they finish. Every output is still computed by one call: 2 and 3 threads give
// the single thread's bits, on every ISA, at the sizes either way of the switch.
TEST(MatMulThreadsTest, DecodeSizedProductsGiveTheSameBitsOnAnyThreadCount) {
  ThreadPool two(2), three(3);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t rows : {1152, 9728}) {  // Qwen2.5-0.5B's qkv and gate_up: 1.2 and 9.3 MB of Q8_0
    const std::vector<uint8_t> wbytes = RandomWeights(DType::kQ8_0, rows, 896, rng);
    auto packed =
        PackedMatrix::Pack({"w", DType::kQ8_0, {rows, 896}, wbytes.data(), wbytes.size()});
    ASSERT_TRUE(packed.ok()) << packed.status().ToString();
    const PackedMatrix::Impl& w = packed->impl();
    for (int threads : {2, 3}) {
      const int64_t few = QuantChunkGroups(w, threads, kFewRows);
      const int64_t many = QuantChunkGroups(w, threads, kFewRows + 1);
      EXPECT_GE((w.num_groups + few - 1) / few, 2 * threads) << rows;
      EXPECT_LT(many, few) << rows;
    }
    for (int64_t num_rows : {int64_t{1}, int64_t{3}, kFewRows, kFewRows + 1}) {
      std::vector<float> x(num_rows * 896);
      for (float& v : x) v = nd(rng);
      const size_t n = num_rows * rows;
      for (Isa isa : testing::SupportedMatMulIsas()) {
        const std::string label = std::string(IsaName(isa)) + " rows=" + std::to_string(rows) +
                                  " num_rows=" + std::to_string(num_rows);
        std::vector<float> one(n), got(n);
        MatMulWithIsa(isa, *packed, x.data(), num_rows, nullptr, one.data(), nullptr);
        for (ThreadPool* pool : {&two, &three}) {
          std::fill(got.begin(), got.end(), -1.0f);
          MatMulWithIsa(isa, *packed, x.data(), num_rows, nullptr, got.data(), pool);
          ASSERT_EQ(0, std::memcmp(one.data(), got.data(), n * sizeof(float)))
              << label << " threads=" << pool->num_threads();
        }
      }
    }
  }
}

TEST(MatMulPackTest, RejectsBadShapesAndTypes) {
  std::vector<uint8_t> bytes(4096);
  EXPECT_FALSE(PackedMatrix::Pack({"w", DType::kI32, {4, 8}, bytes.data(), 128}).ok());
  EXPECT_FALSE(PackedMatrix::Pack({"w", DType::kQ8_0, {2, 48}, bytes.data(), 4096}).ok());
  EXPECT_FALSE(PackedMatrix::Pack({"w", DType::kQ4_K, {2, 32}, bytes.data(), 4096}).ok());
  EXPECT_FALSE(PackedMatrix::Pack({"w", DType::kF32, {8}, bytes.data(), 32}).ok());
  EXPECT_FALSE(PackedMatrix::Pack({"w", DType::kF32, {8, 8}, bytes.data(), 255}).ok());
  auto ok = PackedMatrix::Pack({"w", DType::kQ8_0, {3, 64}, bytes.data(), 3 * 68});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->rows(), 3);
  EXPECT_EQ(ok->cols(), 64);
  EXPECT_GT(ok->bytes(), 0u);
}

// Formats whose quants fit in 4, 5 or 6 bits are stored at that width, and scales the file
// holds as f16 stay f16: a decode pass reads the file's bytes (Q4_0, IQ4_NL, Q5_0, Q5_1:
// exactly), never the 8-bit widening.
TEST(MatMulPackTest, QuantsStayAtTheirBitWidth) {
  std::vector<uint8_t> bytes(*RowBytes(DType::kQ8_0, 4096) * 64);
  std::mt19937 rng(5);
  for (uint8_t& v : bytes) v = static_cast<uint8_t>(rng() & 0x3b);  // finite f16 scales
  struct Expect {
    DType type;
    int quant_bits, scale_bytes;
    int factor_bytes = 0;  // per row and 256-weight super-block: f16 d (and dmin), HasScaleFactors
  };
  for (const Expect& e :
       {Expect{DType::kQ4_0, 4, 2}, Expect{DType::kQ4_1, 4, 2}, Expect{DType::kIQ4_NL, 4, 2},
        Expect{DType::kQ2_K, 4, 1, 4}, Expect{DType::kQ4_K, 4, 1, 4},
        Expect{DType::kIQ4_XS, 4, 1, 2}, Expect{DType::kMXFP4, 4, 4}, Expect{DType::kQ8_0, 8, 2},
        Expect{DType::kQ5_0, 5, 2}, Expect{DType::kQ5_1, 5, 2}, Expect{DType::kQ5_K, 5, 1, 4},
        Expect{DType::kQ6_K, 6, 1, 2}, Expect{DType::kIQ3_S, 5, 1, 2}}) {
    const int64_t rows = 64, cols = 1024;
    const uint64_t file = *RowBytes(e.type, cols) * rows;
    ASSERT_LE(file, bytes.size());
    auto packed = PackedMatrix::Pack({"w", e.type, {rows, cols}, bytes.data(), file});
    ASSERT_TRUE(packed.ok()) << DTypeName(e.type);
    const QuantTraits traits = GetQuantTraits(e.type);
    const uint64_t scales = rows * (cols / traits.sub_block) * (traits.has_min ? 2 : 1);
    EXPECT_EQ(packed->bytes(), rows * cols * e.quant_bits / 8 + scales * e.scale_bytes +
                                   rows * (cols / 256) * e.factor_bytes)
        << DTypeName(e.type);
    if (e.type == DType::kQ4_0 || e.type == DType::kIQ4_NL || e.type == DType::kQ5_0 ||
        e.type == DType::kQ5_1 || e.type == DType::kQ6_K) {
      EXPECT_EQ(packed->bytes(), file) << DTypeName(e.type);
    }
    // Q4_K and Q5_K: 4.625 and 5.625 bits per weight against the file's 4.5 and 5.5 (one byte
    // per sub-block scale and minimum where the file packs them in 6 bits).
    if (e.type == DType::kQ4_K || e.type == DType::kQ5_K) {
      EXPECT_LE(packed->bytes(), file * 103 / 100) << DTypeName(e.type);
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
