// The AMX-BF16 matmul kernel (kernels/cpu/matmul_amx_bf16_avx512.cc): within matmul.h's f32-sum
// bound of the exact product of the bf16-rounded activations (MatMulReferenceBf16Acts, double),
// and the same bits with 1, 2 and 3 threads, at odd sizes (every tail: weight groups, 16-row
// activation tiles, K tiles of 32, padding) and Qwen2.5-0.5B's sizes. Run over
// kernels/ref/amx_tiles_ref.h's model on any AVX-512 CPU (the kernel's logic), and on the tile
// unit where the CPU has AMX-BF16 (skipped with a message elsewhere). The unit rounds its sums
// differently from vdpbf16ps, so AMX and AVX-512 results are compared through the bound, not
// bit for bit; the dispatch test checks which path MatMulWithIsa takes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/ref/matmul_ref.h"

namespace tinyserve::kernels {
namespace {

using Runner = void (*)(const PackedMatrix::Impl&, const float*, int64_t, const float*, float*,
                        ThreadPool*);

bool HaveAmxBf16() { return IsaSupported(Isa::kAmx) && DetectedCpuFeatures().amx_bf16; }

// Runs `run` with x, bias and out one float past 64-byte alignment; NaN poison in out, so an
// output the kernel fails to write cannot pass.
std::vector<float> RunKernel(Runner run, const PackedMatrix& w, const std::vector<float>& x,
                             int64_t num_rows, const float* bias, ThreadPool* pool) {
  std::vector<float> x_buf(x.size() + 1), out_buf(num_rows * w.rows() + 1, std::nanf(""));
  std::memcpy(x_buf.data() + 1, x.data(), x.size() * sizeof(float));
  run(w.impl(), x_buf.data() + 1, num_rows, bias, out_buf.data() + 1, pool);
  return {out_buf.begin() + 1, out_buf.end()};
}

void CheckShape(Runner run, int64_t rows, int64_t cols, int64_t num_rows, bool with_bias,
                std::mt19937& rng) {
  const std::string label = "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                            " num_rows=" + std::to_string(num_rows) + (with_bias ? " bias" : "");
  std::normal_distribution<float> wd(0.0f, 0.05f), nd(0.0f, 1.0f);
  std::vector<uint16_t> wbits(rows * cols);
  for (uint16_t& v : wbits) v = F32ToBf16(wd(rng));
  const TensorView view{"w", DType::kBF16, {rows, cols}, wbits.data(), wbits.size() * 2};
  auto packed = PackedMatrix::Pack(view);
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  std::vector<float> x(num_rows * cols), bias(rows);
  for (float& v : x) v = nd(rng);
  for (float& v : bias) v = nd(rng);
  const float* b = with_bias ? bias.data() : nullptr;

  const std::vector<float> got = RunKernel(run, *packed, x, num_rows, b, nullptr);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    ASSERT_EQ(got, RunKernel(run, *packed, x, num_rows, b, &pool)) << label << ", " << threads;
  }
  // matmul.h's bound for the f32 sums: K 2^-23 sum |w x^| (x^: the rounded activations); the
  // bias adds one f32 rounding.
  std::vector<float> exact(got.size());
  MatMulReferenceBf16Acts(view, x.data(), num_rows, b, exact.data());
  const double k_sums = static_cast<double>(cols) * 0x1p-23;
  for (int64_t m = 0; m < num_rows; ++m)
    for (int64_t n = 0; n < rows; ++n) {
      double abs_sum = 0;
      for (int64_t k = 0; k < cols; ++k)
        abs_sum += std::fabs(Bf16ToF32(wbits[n * cols + k]) *
                             Bf16ToF32(RoundActivationToBf16(x[m * cols + k])));
      const size_t i = m * rows + n;
      const double bias_round = 1e-6 * (std::fabs(exact[i]) + (b ? std::fabs(bias[n]) : 0));
      ASSERT_LE(std::fabs(double{got[i]} - exact[i]), k_sums * abs_sum + bias_round + 1e-30)
          << label << " n=" << n << " m=" << m << ": " << got[i] << " vs " << exact[i];
    }
}

// Weight rows 1..70 (1-5 groups: odd pairs of groups), cols 1..97 (K tails, odd cols), rows of
// activations 16..49 (one and two 16-row tiles, padded tiles).
void OddSizes(Runner run) {
  std::mt19937 rng(21);
  for (int64_t rows : {1, 16, 17, 40, 70})
    for (int64_t cols : {1, 2, 31, 32, 33, 64, 97})
      for (int64_t num_rows : {16, 17, 32, 33, 49})
        CheckShape(run, rows, cols, num_rows, (rows + cols + num_rows) % 2 == 0, rng);
}

TEST(MatMulAmxBf16Test, KernelOnTheTileModelWithinBoundAtOddSizes) {
  if (!IsaSupported(Isa::kAvx512)) GTEST_SKIP() << "skipped: the kernel needs AVX-512 BF16";
  OddSizes(RunBf16AmxOnModel);
}

TEST(MatMulAmxBf16Test, KernelOnTheTileUnitWithinBoundAtOddSizes) {
  if (!HaveAmxBf16()) GTEST_SKIP() << "skipped: this CPU (or TINYSERVE_ISA) has no AMX-BF16";
  OddSizes(RunBf16Amx);
}

// Qwen2.5-0.5B: q/o (896 x 896), gate/up (4864 x 896), down (896 x 4864); prefill chunks of 64
// and 200 rows (more than one 1 MiB activation block of 4864 columns).
TEST(MatMulAmxBf16Test, KernelOnTheTileUnitWithinBoundAtModelSizes) {
  if (!HaveAmxBf16()) GTEST_SKIP() << "skipped: this CPU (or TINYSERVE_ISA) has no AMX-BF16";
  std::mt19937 rng(22);
  CheckShape(RunBf16Amx, 896, 896, 64, true, rng);
  CheckShape(RunBf16Amx, 4864, 896, 40, false, rng);
  CheckShape(RunBf16Amx, 896, 4864, 200, false, rng);
}

// MatMulWithIsa(kAmx) takes the tile unit from kAmxBf16MinRows rows and the AVX-512 bf16 dot below.
TEST(MatMulAmxBf16Test, AmxIsaUsesTheTilesFromSixteenRows) {
  if (!HaveAmxBf16()) GTEST_SKIP() << "skipped: this CPU (or TINYSERVE_ISA) has no AMX-BF16";
  std::mt19937 rng(23);
  const int64_t rows = 48, cols = 96;
  std::vector<uint16_t> wbits(rows * cols);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (uint16_t& v : wbits) v = F32ToBf16(nd(rng));
  auto packed =
      PackedMatrix::Pack({"w", DType::kBF16, {rows, cols}, wbits.data(), rows * cols * 2});
  ASSERT_TRUE(packed.ok());
  auto with_isa = [&](Isa isa, int64_t num_rows, const std::vector<float>& x) {
    std::vector<float> out(num_rows * rows);
    MatMulWithIsa(isa, *packed, x.data(), num_rows, nullptr, out.data(), nullptr);
    return out;
  };
  for (int64_t num_rows : {kAmxBf16MinRows - 1, kAmxBf16MinRows}) {
    std::vector<float> x(num_rows * cols);
    for (float& v : x) v = nd(rng);
    const std::vector<float> amx = with_isa(Isa::kAmx, num_rows, x);
    EXPECT_EQ(UsesAmxBf16(*packed, Isa::kAmx, num_rows), num_rows >= kAmxBf16MinRows);
    EXPECT_FALSE(UsesAmxBf16(*packed, Isa::kAvx512, num_rows));
    if (num_rows < kAmxBf16MinRows) {
      EXPECT_EQ(amx, with_isa(Isa::kAvx512, num_rows, x));
    } else {
      EXPECT_EQ(amx, RunKernel(RunBf16Amx, *packed, x, num_rows, nullptr, nullptr));
      EXPECT_NE(amx, with_isa(Isa::kAvx512, num_rows, x)) << "the unit's sums round differently";
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
