// The fused norm / SiLU * up + activation quantization ops (kernels/ops.h *Quantize), the
// pre-quantized matmul (kernels/matmul.h MatMulQuantized) and the fused gate/up + SiLU
// (MatMulSiluMulQuantized): their f32 output and the product from their quantized rows must be
// bit for bit what the unfused path (the op, then MatMul quantizing its f32 input itself) gives,
// on every ISA and thread count, at odd and real model sizes; and the product must stay within
// the quantization bound of the float64 reference (kernels/ref) applied to the reference op's
// output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels_test_util.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/quant_formats.h"
#include "kernels/ref/matmul_ref.h"
#include "kernels/ref/ref.h"

namespace tinyserve::kernels {
namespace {

std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Weights [rows, cols] of type t quantized from random floats (QuantizeRow), packed.
struct Weights {
  std::vector<uint8_t> bytes;
  TensorView view;
  PackedMatrix packed;
};
Weights MakeWeights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  Weights w;
  const std::vector<float> f = RandomFloats(rows * cols, seed, -0.5f, 0.5f);
  w.bytes.resize(*RowBytes(t, cols) * rows);
  EXPECT_TRUE(QuantizeRow(t, f.data(), w.bytes.data(), rows * cols).ok());
  w.view = TensorView{"w", t, {rows, cols}, w.bytes.data(), w.bytes.size()};
  auto packed = PackedMatrix::Pack(w.view);
  EXPECT_TRUE(packed.ok()) << packed.status().ToString();
  if (packed.ok()) w.packed = std::move(packed).value();
  return w;
}

void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << what;
}

// |product - MatMulReference(w, x)| within the bound of quantizing x per 32 values (each value
// moves by at most amax / 127 / 2) plus f32 accumulation rounding (2e-5 of sum |w x|), as in
// matmul_test.cc.
void ExpectWithinQuantBound(const Weights& w, const std::vector<float>& x, int64_t num_rows,
                            const std::vector<float>& got, const std::string& what) {
  const int64_t rows = w.packed.rows(), cols = w.packed.cols();
  std::vector<float> ref(num_rows * rows);
  MatMulReference(w.view, x.data(), num_rows, nullptr, ref.data());
  std::vector<float> wrow(cols);
  const uint64_t row_bytes = *RowBytes(w.view.dtype, cols);
  for (int64_t n = 0; n < rows; ++n) {
    DequantizeRow(w.view.dtype, w.bytes.data() + n * row_bytes, wrow.data(), cols);
    for (int64_t m = 0; m < num_rows; ++m) {
      const float* xr = x.data() + m * cols;
      double abs_sum = 0, bound = 0;
      for (int64_t blk = 0; blk < cols / 32; ++blk) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xr[blk * 32 + i]));
        for (int i = 0; i < 32; ++i) {
          const int64_t k = blk * 32 + i;
          abs_sum += std::fabs(double{wrow[k]} * xr[k]);
          bound += std::fabs(wrow[k]) * (amax / 127.0) * 0.5;
        }
      }
      const double tol = bound * (1 + 1e-4) + 2e-5 * abs_sum + 1e-30;
      ASSERT_LE(std::fabs(double{got[m * rows + n]} - ref[m * rows + n]), tol)
          << what << " n=" << n << " m=" << m;
    }
  }
}

struct QuantizeShape {
  int64_t rows, cols, num_rows;
};
// Odd sizes (row counts across the 8-row activation tiles, one and several 32-blocks) and
// Qwen2.5-0.5B's: QKV 1152 x 896, gate/up 9728 x 896 (cut to 1024 rows: the columns are what
// the activations see), down 896 x 4864, at decode and prefill-chunk row counts.
constexpr QuantizeShape kShapes[] = {{17, 32, 1},    {33, 96, 7},     {40, 256, 9},
                                     {64, 896, 13},  {1152, 896, 64}, {1024, 896, 3},
                                     {896, 4864, 1}, {896, 4864, 17}};
constexpr DType kTypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ5_1,
                            DType::kQ4_K, DType::kQ6_K, DType::kQ2_K};

// The K-quants need 256-column rows; other shapes are skipped for them.
bool Fits(DType t, const QuantizeShape& s) { return s.cols % BlockSize(t) == 0; }

TEST(MatMulQuantizedTest, BitIdenticalToMatMulOnEveryIsaAndThreadCount) {
  QuantizedActivations acts;  // one object for every case: buffers grow and shrink in use
  for (DType t : kTypes) {
    for (const QuantizeShape& s : kShapes) {
      if (!Fits(t, s)) continue;
      const Weights w = MakeWeights(t, s.rows, s.cols, 11 + s.rows);
      const std::vector<float> x = RandomFloats(s.num_rows * s.cols, 5 + s.cols);
      const std::vector<float> bias = RandomFloats(s.rows, 3);
      std::vector<float> want(s.num_rows * s.rows), got(want.size());
      MatMulWithIsa(Isa::kScalar, w.packed, x.data(), s.num_rows, bias.data(), want.data(),
                    nullptr);
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        QuantizeActivations(w.packed, x.data(), s.num_rows, &acts, &pool);
        ASSERT_EQ(acts.num_rows(), s.num_rows);
        ASSERT_EQ(acts.cols(), s.cols);
        for (Isa isa : testing::SupportedVectorIsas()) {
          std::fill(got.begin(), got.end(), -1.0f);
          MatMulQuantizedWithIsa(isa, w.packed, acts, bias.data(), got.data(), &pool);
          ExpectSameBits(got, want,
                         std::string(DTypeName(t)) + " " + std::to_string(s.rows) + "x" +
                             std::to_string(s.cols) + " rows " + std::to_string(s.num_rows) +
                             " isa " + std::string(IsaName(isa)) + " threads " +
                             std::to_string(threads));
        }
      }
    }
  }
}

// The three fused ops on one ISA, thread count and shape: f32 output and product bit-identical
// to the unfused op followed by MatMul; the product within the quantization bound of the
// reference op's output through MatMulReference.
enum class Op { kRmsNorm, kAddRmsNorm, kSiluMul };

void CheckFusedOp(Op op, Isa isa, DType t, const QuantizeShape& s, int threads,
                  QuantizedActivations* acts) {
  const std::string what = std::string(op == Op::kRmsNorm      ? "RmsNorm"
                                       : op == Op::kAddRmsNorm ? "AddRmsNorm"
                                                               : "SiluMul") +
                           " " + std::string(DTypeName(t)) + " cols " + std::to_string(s.cols) +
                           " rows " + std::to_string(s.num_rows) + " isa " +
                           std::string(IsaName(isa)) + " threads " + std::to_string(threads);
  const int64_t n = s.num_rows, dim = s.cols;
  const Weights w = MakeWeights(t, s.rows, dim, 17 + dim);
  const std::vector<float> in = RandomFloats(n * (op == Op::kSiluMul ? 2 * dim : dim), 23 + dim);
  const std::vector<float> add = RandomFloats(n * dim, 29 + dim);
  const std::vector<float> norm_w = RandomFloats(dim, 31 + dim, 0.5f, 1.5f);
  ThreadPool pool(threads);
  // Unfused: the op, then MatMul quantizing its f32 input (one thread: the reference order).
  std::vector<float> x_plain = in, out_plain(n * dim);
  std::vector<float> x_fused = in, out_fused(n * dim, -1.0f);
  std::vector<float> ref_out(n * dim);
  switch (op) {
    case Op::kRmsNorm:
      RmsNorm(isa, in.data(), norm_w.data(), n, dim, 1e-6f, out_plain.data(), nullptr);
      RmsNormQuantize(isa, in.data(), norm_w.data(), n, dim, 1e-6f, out_fused.data(), w.packed,
                      acts, &pool);
      ref::RmsNorm(in.data(), norm_w.data(), n, dim, 1e-6f, ref_out.data());
      break;
    case Op::kAddRmsNorm: {
      AddRmsNorm(isa, x_plain.data(), add.data(), norm_w.data(), n, dim, 1e-6f, out_plain.data(),
                 nullptr);
      AddRmsNormQuantize(isa, x_fused.data(), add.data(), norm_w.data(), n, dim, 1e-6f,
                         out_fused.data(), w.packed, acts, &pool);
      std::vector<float> sum(n * dim);
      for (int64_t i = 0; i < n * dim; ++i) sum[i] = in[i] + add[i];
      ref::RmsNorm(sum.data(), norm_w.data(), n, dim, 1e-6f, ref_out.data());
      break;
    }
    case Op::kSiluMul:
      SiluMul(isa, in.data(), n, dim, out_plain.data(), nullptr);
      SiluMulQuantize(isa, in.data(), n, dim, out_fused.data(), w.packed, acts, &pool);
      ref::SiluMul(in.data(), n, dim, ref_out.data());
      break;
  }
  ExpectSameBits(x_fused, x_plain, what + " residual");
  ExpectSameBits(out_fused, out_plain, what + " f32 output");
  std::vector<float> want(n * s.rows), got(n * s.rows, -1.0f);
  MatMulWithIsa(isa, w.packed, out_plain.data(), n, nullptr, want.data(), nullptr);
  MatMulQuantizedWithIsa(isa, w.packed, *acts, nullptr, got.data(), &pool);
  ExpectSameBits(got, want, what + " product");
  ExpectWithinQuantBound(w, ref_out, n, got, what + " vs reference");
}

TEST(FusedQuantizeOpsTest, BitIdenticalToTheUnfusedPathAndWithinTheReferenceBound) {
  QuantizedActivations acts;
  for (Isa isa : testing::SupportedVectorIsas()) {
    for (DType t : {DType::kQ8_0, DType::kQ4_K}) {
      for (const QuantizeShape& s : kShapes) {
        if (!Fits(t, s) || s.rows * s.cols > 1152 * 896) continue;
        for (int threads : {1, 2, 3})
          for (Op op : {Op::kRmsNorm, Op::kAddRmsNorm, Op::kSiluMul})
            CheckFusedOp(op, isa, t, s, threads, &acts);
      }
    }
  }
}

TEST(FusedQuantizeOpsTest, ModelWidthsWithManyRows) {
  // 150 rows of 896 and of 4864: several row chunks per thread and several sub-ranges per
  // chunk (the op quantizes every ~16K floats), the down projection's real input width.
  QuantizedActivations acts;
  ThreadPool pool(2);
  for (int threads : {1, 2}) {
    CheckFusedOp(Op::kAddRmsNorm, BestIsa(), DType::kQ8_0, {64, 896, 150}, threads, &acts);
    CheckFusedOp(Op::kSiluMul, BestIsa(), DType::kQ8_0, {64, 4864, 150}, threads, &acts);
  }
}

// The fused gate/up product + SiLU * up + quantization (MatMulSiluMulQuantized) against the
// unfused path it replaces (MatMulQuantized, then SiluMulQuantize for the down projection): the
// quantized rows it leaves, and the down projection's product from them, bit for bit equal on
// every ISA (AMX included: there it runs the AVX-512 kernel) and thread count, for widths with a
// one-block last chunk, row counts across the 8-row tiles and the row passes, and gate/up and
// down of different block formats (sub-blocks of 16 and 32, with and without a minimum), as a
// Q4_K_M file mixes them.
// The used part of one quantized-activation buffer, bit for bit.
template <class T>
void ExpectSameBuffer(const AlignedBuffer<T>& got, const AlignedBuffer<T>& want, int64_t n,
                      const std::string& what) {
  ASSERT_GE(static_cast<int64_t>(got.size()), n) << what;
  ASSERT_GE(static_cast<int64_t>(want.size()), n) << what;
  ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(T)), 0) << what;
}

struct FfnShape {
  int64_t hidden, dim, num_rows;
};

void CheckFused(Isa isa, DType gate_up_type, DType down_type, const FfnShape& s, int threads) {
  const std::string what = std::string(DTypeName(gate_up_type)) + "/" +
                           std::string(DTypeName(down_type)) + " hidden " +
                           std::to_string(s.hidden) + " dim " + std::to_string(s.dim) + " rows " +
                           std::to_string(s.num_rows) + " isa " + std::string(IsaName(isa)) +
                           " threads " + std::to_string(threads);
  const Weights gate_up = MakeWeights(gate_up_type, 2 * s.dim, s.hidden, 3 + s.dim);
  const Weights down = MakeWeights(down_type, s.hidden, s.dim, 5 + s.hidden);
  const std::vector<float> x = RandomFloats(s.num_rows * s.hidden, 7 + s.num_rows, -2.0f, 2.0f);
  ThreadPool pool(threads);
  QuantizedActivations in, want_acts, got_acts;
  QuantizeActivations(gate_up.packed, x.data(), s.num_rows, &in, &pool);

  // Unfused, on one thread.
  std::vector<float> product(s.num_rows * 2 * s.dim), act(s.num_rows * s.dim);
  MatMulQuantizedWithIsa(isa, gate_up.packed, in, nullptr, product.data(), nullptr);
  SiluMulQuantize(isa, product.data(), s.num_rows, s.dim, act.data(), down.packed, &want_acts,
                  nullptr);

  MatMulSiluMulQuantizedWithIsa(isa, gate_up.packed, in, down.packed, &got_acts, &pool);
  ASSERT_EQ(got_acts.num_rows(), s.num_rows) << what;
  ASSERT_EQ(got_acts.cols(), s.dim) << what;
  const QuantizedActs& got = got_acts.impl().acts;
  const QuantizedActs& want = want_acts.impl().acts;
  ExpectSameBuffer(got.xq, want.xq, s.num_rows * s.dim, what + " xq");
  ExpectSameBuffer(got.sx, want.sx, s.num_rows * (s.dim / kActBlock), what + " sx");
  ExpectSameBuffer(got.init, want.init, s.num_rows * want.num_sub, what + " init");
  ExpectSameBuffer(got.xsum, want.xsum, s.num_rows * want.num_sub, what + " xsum");

  std::vector<float> want_out(s.num_rows * s.hidden), got_out(want_out.size(), -1.0f);
  MatMulQuantizedWithIsa(isa, down.packed, want_acts, nullptr, want_out.data(), nullptr);
  MatMulQuantizedWithIsa(isa, down.packed, got_acts, nullptr, got_out.data(), &pool);
  ASSERT_EQ(std::memcmp(got_out.data(), want_out.data(), got_out.size() * sizeof(float)), 0)
      << what << " down product";
}

TEST(MatMulSiluMulTest, BitIdenticalToTheUnfusedPathOnEveryIsaAndThreadCount) {
  // dim 96 and 160: a one-block last chunk; 256-wide shapes for the K-quants.
  const FfnShape odd[] = {{64, 96, 5}, {96, 160, 17}, {64, 128, 1}};
  const FfnShape wide[] = {{256, 256, 9}, {256, 512, 3}};
  for (Isa isa : testing::SupportedMatMulIsas()) {
    for (int threads : {1, 2, 3}) {
      for (const FfnShape& s : odd) {
        CheckFused(isa, DType::kQ8_0, DType::kQ8_0, s, threads);
        CheckFused(isa, DType::kQ4_0, DType::kQ5_1, s, threads);
      }
      for (const FfnShape& s : wide) {
        CheckFused(isa, DType::kQ4_K, DType::kQ6_K, s, threads);
        CheckFused(isa, DType::kQ6_K, DType::kQ4_K, s, threads);
      }
    }
  }
}

TEST(MatMulSiluMulTest, ModelWidthsAcrossRowPasses) {
  // Qwen2.5-0.5B's FFN (896 -> 2 x 4864 -> 896) at a decode row, a batched decode step and 300
  // rows (two passes of the 288-row activation tile). (On an AMX CPU the model fuses only below
  // 32 rows, where the tiles do not serve; the fused op itself runs at any count.)
  for (int64_t rows : {1, 64, 300})
    for (int threads : {1, 2})
      CheckFused(BestIsa(), DType::kQ8_0, DType::kQ8_0, {896, 4864, rows}, threads);
}

TEST(MatMulSiluMulTest, OnlyMatchingQuantizedShapesFuse) {
  const Weights gate_up = MakeWeights(DType::kQ8_0, 2 * 64, 32, 1);
  const Weights down = MakeWeights(DType::kQ8_0, 32, 64, 2);
  const Weights short_down = MakeWeights(DType::kQ8_0, 32, 32, 3);
  EXPECT_TRUE(FusesSiluMul(gate_up.packed, down.packed));
  EXPECT_FALSE(FusesSiluMul(gate_up.packed, short_down.packed));
  const std::vector<float> f = RandomFloats(32 * 64, 4, -1.0f, 1.0f);
  auto float_down =
      PackedMatrix::Pack(TensorView{"w", DType::kF32, {32, 64}, f.data(), f.size() * 4});
  ASSERT_TRUE(float_down.ok());
  EXPECT_FALSE(FusesSiluMul(gate_up.packed, *float_down));
}

TEST(MatMulQuantizedTest, FloatWeightsDoNotTakeQuantizedActivations) {
  const std::vector<float> f = RandomFloats(16 * 64, 1);
  const TensorView view{"w", DType::kF32, {16, 64}, f.data(), f.size() * sizeof(float)};
  auto packed = PackedMatrix::Pack(view);
  ASSERT_TRUE(packed.ok());
  EXPECT_FALSE(TakesQuantizedActivations(*packed));
  const Weights q = MakeWeights(DType::kQ8_0, 16, 64, 2);
  EXPECT_TRUE(TakesQuantizedActivations(q.packed));
}

}  // namespace
}  // namespace tinyserve::kernels
