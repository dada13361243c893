// The bf16 dot product (UsesBf16Dot in matmul.h) for bf16 weights: bit for bit against
// MatMulBf16DotModel (kernels/ref), within matmul.h's bound of the exact product and within the
// f32-sum bound of the exact product of the bf16-rounded activations, at odd sizes (every tile
// shape), Qwen2.5-0.5B's sizes (896, 4864 and the 151936-row LM head), misaligned pointers, and
// the same bits with 1, 2 and 3 threads. Skipped, with a message, where the CPU lacks AVX-512
// BF16 (the f32 path those CPUs keep is tested in matmul_test.cc).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/matmul.h"
#include "kernels/ref/matmul_ref.h"

namespace tinyserve::kernels {
namespace {

bool HaveBf16Dot() { return IsaSupported(Isa::kAvx512); }

#define SKIP_WITHOUT_BF16_DOT()                                                        \
  if (!HaveBf16Dot())                                                                  \
  GTEST_SKIP() << "skipped: this CPU (or TINYSERVE_ISA) has no AVX-512 BF16, so bf16 " \
                  "weights use the f32 FMA path (tested in matmul_test)"

struct Bf16Shape {
  int64_t rows, cols, num_rows;
};

// Weights ~ N(0, 0.05) rounded to bf16 (a real model's scale), activations ~ N(0, 1).
std::vector<uint16_t> RandomBf16(int64_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<uint16_t> w(n);
  for (uint16_t& v : w) v = F32ToBf16(nd(rng));
  return w;
}

// Runs w x (+ bias) with x, bias and out one float past 64-byte alignment, on `pool`.
std::vector<float> RunBf16(const PackedMatrix& w, const std::vector<float>& x, int64_t num_rows,
                           const std::vector<float>* bias, ThreadPool* pool) {
  std::vector<float> x_buf(x.size() + 1), out_buf(num_rows * w.rows() + 1), bias_buf;
  std::memcpy(x_buf.data() + 1, x.data(), x.size() * sizeof(float));
  if (bias) {
    bias_buf.resize(bias->size() + 1);
    std::memcpy(bias_buf.data() + 1, bias->data(), bias->size() * sizeof(float));
  }
  MatMulWithIsa(Isa::kAvx512, w, x_buf.data() + 1, num_rows, bias ? bias_buf.data() + 1 : nullptr,
                out_buf.data() + 1, pool);
  return {out_buf.begin() + 1, out_buf.end()};
}

// Every check of this file on one shape; `exact_ref` = false skips the double references (the
// LM head: 136M multiply-adds each, the model already costs one pass).
void CheckShape(const Bf16Shape& s, bool with_bias, std::mt19937& rng, bool exact_ref = true) {
  const std::string label = "rows=" + std::to_string(s.rows) + " cols=" + std::to_string(s.cols) +
                            " num_rows=" + std::to_string(s.num_rows) + (with_bias ? " bias" : "");
  const std::vector<uint16_t> wbits = RandomBf16(s.rows * s.cols, 0.05f, rng);
  const TensorView view{"w", DType::kBF16, {s.rows, s.cols}, wbits.data(), wbits.size() * 2};
  auto packed = PackedMatrix::Pack(view);
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  ASSERT_TRUE(UsesBf16Dot(*packed, Isa::kAvx512)) << label;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(s.num_rows * s.cols), bias(s.rows);
  for (float& v : x) v = nd(rng);
  for (float& v : bias) v = nd(rng);
  const std::vector<float>* b = with_bias ? &bias : nullptr;

  const std::vector<float> got = RunBf16(*packed, x, s.num_rows, b, nullptr);
  std::vector<float> model(got.size());
  MatMulBf16DotModel(view, x.data(), s.num_rows, b ? b->data() : nullptr, model.data());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(model[i]))
        << label << ": differs from MatMulBf16DotModel at " << i << ": " << got[i] << " vs "
        << model[i];
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    ASSERT_EQ(got, RunBf16(*packed, x, s.num_rows, b, &pool))
        << label << ", " << threads << " threads";
  }
  if (!exact_ref) return;

  // The bounds of matmul.h: exact product (f32 activations) within (2^-8 + K 2^-23) sum |w x|;
  // exact product of the rounded activations within K 2^-23 sum |w x^| (f32 sums only); the bias
  // adds one f32 rounding (2^-24 of the result; 1e-6 of |bias| + |result| covers it).
  std::vector<float> exact(got.size()), exact_rounded(got.size());
  MatMulReference(view, x.data(), s.num_rows, b ? b->data() : nullptr, exact.data());
  MatMulReferenceBf16Acts(view, x.data(), s.num_rows, b ? b->data() : nullptr,
                          exact_rounded.data());
  const double k_sums = static_cast<double>(s.cols) * 0x1p-23;
  for (int64_t m = 0; m < s.num_rows; ++m)
    for (int64_t n = 0; n < s.rows; ++n) {
      double abs_sum = 0, abs_sum_rounded = 0;
      for (int64_t k = 0; k < s.cols; ++k) {
        const double wk = Bf16ToF32(wbits[n * s.cols + k]), xk = x[m * s.cols + k];
        abs_sum += std::fabs(wk * xk);
        abs_sum_rounded += std::fabs(wk * Bf16ToF32(RoundActivationToBf16(x[m * s.cols + k])));
      }
      const size_t i = m * s.rows + n;
      const double bias_round = 1e-6 * (std::fabs(exact[i]) + (b ? std::fabs(bias[n]) : 0));
      ASSERT_LE(std::fabs(double{got[i]} - exact[i]),
                (0x1p-8 + k_sums) * abs_sum + bias_round + 1e-30)
          << label << " n=" << n << " m=" << m;
      ASSERT_LE(std::fabs(double{got[i]} - exact_rounded[i]),
                k_sums * abs_sum_rounded + bias_round + 1e-30)
          << label << " n=" << n << " m=" << m;
    }
}

// Rows 1..40 (1-3 groups, partial ones), cols 1..9 and odd widths (an odd cols pads a pair),
// activation rows 1..25 (every tile of 1..12 rows, the 4-group tiles up to 6 rows, two tiles).
TEST(MatMulBf16Test, MatchesModelAndBoundsAtOddSizes) {
  SKIP_WITHOUT_BF16_DOT();
  std::mt19937 rng(11);
  for (int64_t rows : {1, 15, 16, 17, 33, 40, 70})
    for (int64_t cols : {1, 2, 3, 7, 31, 32, 33, 65})
      for (int64_t num_rows : {1, 2, 5, 6, 7, 11, 12, 13, 25})
        CheckShape({rows, cols, num_rows}, (rows + num_rows) % 2 == 0, rng);
}

// Qwen2.5-0.5B: q/o (896 x 896), gate/up (4864 x 896), down (896 x 4864); decode (1 row), a
// batch (16), one prefill block (more rows than one 256 KiB activation block of 4864 columns).
TEST(MatMulBf16Test, MatchesModelAndBoundsAtModelSizes) {
  SKIP_WITHOUT_BF16_DOT();
  std::mt19937 rng(12);
  CheckShape({896, 896, 1}, true, rng);
  CheckShape({896, 896, 16}, false, rng);
  CheckShape({4864, 896, 3}, false, rng);
  CheckShape({896, 4864, 1}, false, rng);
  CheckShape({128, 4864, 37}, true, rng);
  CheckShape({40, 896, 160}, true, rng);
}

// The tied LM head: 151936 rows (9496 groups) at decode, bit for bit against the model.
TEST(MatMulBf16Test, LmHeadMatchesModel) {
  SKIP_WITHOUT_BF16_DOT();
  std::mt19937 rng(13);
  CheckShape({151936, 896, 1}, false, rng, /*exact_ref=*/false);
}

// Activations at the edges of the rounding: f32 denormals read as zero, ties round to even,
// values that round up a binade, zeros of both signs; weights with large and tiny exponents.
TEST(MatMulBf16Test, RoundingEdgesMatchModel) {
  SKIP_WITHOUT_BF16_DOT();
  const float denormal = std::numeric_limits<float>::denorm_min() * 1000;
  const float tie = std::bit_cast<float>(0x3f808000u);   // halfway between two bf16: to even
  const float tie2 = std::bit_cast<float>(0x3f818000u);  // halfway, rounds up to even
  const float up = std::bit_cast<float>(0x3fffffffu);    // rounds up to 2
  const std::vector<float> x = {denormal, -denormal, tie,  tie2, up,     -up,  0.0f, -0.0f,
                                1e30f,    -3e-30f,   1.0f, 7.5f, -1e-3f, 0.5f, 3.0f, 1e-38f};
  EXPECT_EQ(RoundActivationToBf16(denormal), 0);
  EXPECT_EQ(RoundActivationToBf16(-denormal), 0x8000);
  EXPECT_EQ(RoundActivationToBf16(tie), 0x3f80);
  EXPECT_EQ(RoundActivationToBf16(tie2), 0x3f82);
  EXPECT_EQ(RoundActivationToBf16(up), 0x4000);
  const int64_t cols = static_cast<int64_t>(x.size()), rows = 20;
  std::mt19937 rng(14);
  std::vector<uint16_t> wbits = RandomBf16(rows * cols, 1.0f, rng);
  wbits[3] = 0x0001;   // a bf16 denormal weight: read as zero
  wbits[17] = 0x7a00;  // 2^117
  wbits[18] = 0x0580;  // 2^-116
  const TensorView view{"w", DType::kBF16, {rows, cols}, wbits.data(), wbits.size() * 2};
  auto packed = PackedMatrix::Pack(view);
  ASSERT_TRUE(packed.ok());
  const std::vector<float> got = RunBf16(*packed, x, 1, nullptr, nullptr);
  std::vector<float> model(got.size());
  MatMulBf16DotModel(view, x.data(), 1, nullptr, model.data());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(model[i]))
        << "row " << i << ": " << got[i] << " vs " << model[i];
}

// Which paths round activations to bf16: bf16 weights on AVX-512 (and AMX) only; f16 keeps f32
// FMA everywhere (bf16 would drop 3 bits of each f16 weight), and so do the narrower ISAs.
TEST(MatMulBf16Test, OnlyBf16WeightsOnAvx512UseTheBf16Dot) {
  std::vector<uint16_t> bits(64 * 32, 0x3f80);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    const int64_t cols = t == DType::kF32 ? 16 : 32;
    auto packed = PackedMatrix::Pack({"w", t, {64, cols}, bits.data(), bits.size() * 2});
    ASSERT_TRUE(packed.ok());
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAmx}) {
      const bool want = t == DType::kBF16 && HaveBf16Dot() && static_cast<int>(isa) >= 2;
      EXPECT_EQ(UsesBf16Dot(*packed, isa), want) << DTypeName(t) << " " << IsaName(isa);
    }
  }
  if (!HaveBf16Dot()) std::printf("no AVX-512 BF16 here: bf16 weights stay on f32 FMA\n");
}

}  // namespace
}  // namespace tinyserve::kernels
