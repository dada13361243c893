// The 5- and 6-bit packed layout (Q5_0, Q5_1, Q5_K, Q6_K: 4-bit lines plus a line of the bits
// above, matmul_internal.h). Two exact checks that do not go through any kernel: every packed
// quant reads back as DecodeRowToInts's q, and every ISA path (and the AMX kernel on the model of
// the tile unit) equals, bit for bit, the documented formula evaluated here from the decoded
// weights, with 1, 2 and 3 threads, bias or not, misaligned pointers, odd and real model sizes.
// The formula is the one the 8-bit layout used before these types were stored at 5/6 bits, so
// equal bits here mean unchanged results.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/kernels_test_util.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_formats.h"

namespace tinyserve::kernels {
namespace {

constexpr DType kHighTypes[] = {DType::kQ5_0, DType::kQ5_1, DType::kQ5_K, DType::kQ6_K,
                                DType::kIQ3_S};

// Random block bytes (every quant and high-bit pattern occurs) with small finite f16 fields:
// masking every byte with 0x3b keeps f16 exponents small and still sets each q bit somewhere.
std::vector<uint8_t> RandomBlocks(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<uint8_t> w(*RowBytes(t, cols) * rows);
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng() & 0x3b);
  // 0x3b clears bit 2 and 6 of every byte: flip some bytes fully so every bit of q occurs.
  for (size_t i = 0; i < w.size(); i += 3) w[i] = static_cast<uint8_t>(rng());
  // Re-mask the f16 scale fields (offset 0 of Q5_0/Q5_1/Q5_K/IQ3_S blocks, 208 of Q6_K).
  const int64_t bb = BlockBytes(t);
  const int64_t field = t == DType::kQ6_K ? 208 : 0;
  const int fields = t == DType::kQ5_1 || t == DType::kQ5_K ? 2 : 1;
  for (size_t off = 0; off < w.size(); off += bb)
    for (int f = 0; f < 2 * fields; ++f) w[off + field + f] &= 0x3b;
  return w;
}

// out[m, n] by matmul_internal.h's formula from the decoded weights: activations quantized per
// 32 values (round to nearest even of x * 127 / amax), per sub-block an exact integer dot, then
// fma(float(dot), scale * sx, acc) and, with a minimum, fma(offset, sx * sum xq, acc).
std::vector<float> Formula(DType t, const std::vector<uint8_t>& bytes, int64_t rows, int64_t cols,
                           const float* x, int64_t num_rows, const float* bias) {
  const QuantTraits tr = GetQuantTraits(t);
  const int sub = tr.sub_block;
  std::vector<int8_t> xq(num_rows * cols);
  std::vector<float> sx(num_rows * cols / 32);
  for (int64_t m = 0; m < num_rows; ++m)
    for (int64_t blk = 0; blk < cols / 32; ++blk) {
      const float* xb = x + m * cols + blk * 32;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
      const float id = amax == 0 ? 0.0f : 127.0f / amax;
      sx[m * (cols / 32) + blk] = amax / 127.0f;
      for (int i = 0; i < 32; ++i)
        xq[m * cols + blk * 32 + i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
    }
  std::vector<float> out(num_rows * rows);
  std::vector<uint8_t> q(cols);
  std::vector<float> scale(cols / sub), offset(cols / sub);
  const uint64_t row_bytes = *RowBytes(t, cols);
  for (int64_t n = 0; n < rows; ++n) {
    DecodeRowToInts(t, bytes.data() + n * row_bytes, cols, q.data(), scale.data(), offset.data());
    for (int64_t m = 0; m < num_rows; ++m) {
      float acc = 0;
      for (int64_t b = 0; b < cols / sub; ++b) {
        int32_t dot = 0, sum = 0;
        for (int k = 0; k < sub; ++k) {
          const int32_t v = int32_t{xq[m * cols + b * sub + k]};
          dot += q[b * sub + k] * v;
          sum += v;
        }
        dot -= tr.zero_point * sum;
        const float s = sx[m * (cols / 32) + b * sub / 32];
        acc = std::fma(static_cast<float>(dot), scale[b] * s, acc);
        if (tr.has_min) acc = std::fma(offset[b], s * static_cast<float>(sum), acc);
      }
      out[m * rows + n] = bias ? acc + bias[n] : acc;
    }
  }
  return out;
}

bool SameBits(const float* a, const float* b, int64_t n, std::string* where) {
  for (int64_t i = 0; i < n; ++i)
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) {
      *where = "index " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " +
               std::to_string(b[i]);
      return false;
    }
  return true;
}

TEST(MatMulHighBitsTest, EveryPackedQuantReadsBackAsDecoded) {
  std::mt19937 rng(11);
  for (DType t : kHighTypes) {
    const int64_t rows = 37, cols = 512;  // 3 groups, the last padded
    const std::vector<uint8_t> bytes = RandomBlocks(t, rows, cols, rng);
    auto packed = PackedMatrix::Pack({"w", t, {rows, cols}, bytes.data(), bytes.size()});
    ASSERT_TRUE(packed.ok()) << DTypeName(t);
    const PackedMatrix::Impl& w = packed->impl();
    ASSERT_TRUE(w.nibbles);
    ASSERT_EQ(w.high_bits, HighQuantBits(t));
    const int sub = w.traits.sub_block;
    std::vector<uint8_t> q(cols);
    std::vector<float> scale(cols / sub), offset(cols / sub);
    int high_set = 0;
    for (int64_t n = 0; n < rows; ++n) {
      DecodeRowToInts(t, bytes.data() + n * *RowBytes(t, cols), cols, q.data(), scale.data(),
                      offset.data());
      const int r = static_cast<int>(n % kGroupRows);
      for (int64_t b = 0; b < w.num_sub; ++b) {
        const uint8_t* rec = w.Group(n / kGroupRows) + b * w.record_bytes;
        for (int c = 0; c < sub / 4; ++c)
          for (int i = 0; i < 4; ++i) {
            const uint8_t want = q[b * sub + c * 4 + i];
            high_set += want >> 4 == (1 << w.high_bits) - 1;
            ASSERT_EQ(w.Quant(rec, r, c, i), want)
                << DTypeName(t) << " row " << n << " sub " << b << " chunk " << c << " byte " << i;
          }
        ASSERT_EQ(w.Scale(n / kGroupRows, b, r), scale[b]);
      }
    }
    EXPECT_GT(high_set, 0) << DTypeName(t) << ": the data never set the top quant bits";
  }
}

struct HighBitsCase {
  int64_t rows, cols, num_rows;
};

// Every supported ISA (and the AMX kernel on the tile model where AVX-512 runs) against Formula,
// bit for bit, 1/2/3 threads, with bias, x and out one float past an aligned start.
void ExpectFormulaOnEveryPath(DType t, const HighBitsCase& c, std::mt19937& rng, bool threads_too) {
  const std::vector<uint8_t> bytes = RandomBlocks(t, c.rows, c.cols, rng);
  auto packed = PackedMatrix::Pack({"w", t, {c.rows, c.cols}, bytes.data(), bytes.size()});
  ASSERT_TRUE(packed.ok()) << DTypeName(t);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x_buf(c.num_rows * c.cols + 1), bias(c.rows);
  for (float& v : x_buf) v = u(rng);
  for (float& v : bias) v = u(rng);
  const float* x = x_buf.data() + 1;
  const std::vector<float> want = Formula(t, bytes, c.rows, c.cols, x, c.num_rows, bias.data());
  const std::vector<float> want_nb = Formula(t, bytes, c.rows, c.cols, x, c.num_rows, nullptr);
  std::vector<float> out_buf(c.num_rows * c.rows + 1);
  float* out = out_buf.data() + 1;
  const std::string label = std::string(DTypeName(t)) + " " + std::to_string(c.rows) + "x" +
                            std::to_string(c.cols) + " m=" + std::to_string(c.num_rows);
  std::string where;
  for (Isa isa : testing::SupportedMatMulIsas()) {
    for (int threads : threads_too ? std::vector<int>{1, 2, 3} : std::vector<int>{2}) {
      ThreadPool pool(threads);
      MatMulWithIsa(isa, *packed, x, c.num_rows, bias.data(), out, &pool);
      EXPECT_TRUE(SameBits(out, want.data(), c.num_rows * c.rows, &where))
          << label << " " << IsaName(isa) << " threads " << threads << " " << where;
    }
    MatMulWithIsa(isa, *packed, x, c.num_rows, nullptr, out, nullptr);
    EXPECT_TRUE(SameBits(out, want_nb.data(), c.num_rows * c.rows, &where))
        << label << " " << IsaName(isa) << " no bias " << where;
  }
  if (IsaSupported(Isa::kAvx512)) {
    ThreadPool pool(2);
    RunQuantizedAmxOnModel(packed->impl(), x, c.num_rows, bias.data(), out, &pool);
    EXPECT_TRUE(SameBits(out, want.data(), c.num_rows * c.rows, &where))
        << label << " AMX kernel on the tile model " << where;
  }
}

TEST(MatMulHighBitsTest, OddSizesMatchTheFormulaOnEveryPath) {
  std::mt19937 rng(12);
  for (DType t : kHighTypes)
    for (const HighBitsCase& c :
         {HighBitsCase{1, 256, 1}, HighBitsCase{17, 256, 3}, HighBitsCase{37, 512, 9},
          HighBitsCase{16, 768, 8}, HighBitsCase{5, 256, 17}, HighBitsCase{33, 256, 20},
          // 4+ full row tiles: group pairs unpacked once for every tile (matmul_avx512.cc).
          HighBitsCase{37, 512, 40}, HighBitsCase{64, 256, 37}})
      ExpectFormulaOnEveryPath(t, c, rng, /*threads_too=*/true);
}

// Qwen2.5-0.5B's shapes. Q5_K/Q6_K blocks are 256 wide, so only the 4864-column matrix (down
// projection) can be a k-quant; llama.cpp writes the 896-column ones as Q5_0/Q5_1/Q8_0 (its
// fallback), which is what these take.
TEST(MatMulHighBitsTest, ModelSizesMatchTheFormulaOnEveryPath) {
  std::mt19937 rng(13);
  for (DType t : {DType::kQ5_0, DType::kQ5_1}) {
    ExpectFormulaOnEveryPath(t, {896, 896, 1}, rng, /*threads_too=*/true);
    ExpectFormulaOnEveryPath(t, {4864, 896, 1}, rng, /*threads_too=*/false);
    ExpectFormulaOnEveryPath(t, {896, 896, 16}, rng, /*threads_too=*/false);
  }
  for (DType t : kHighTypes) ExpectFormulaOnEveryPath(t, {896, 4864, 1}, rng, true);
}

// The LM head at m = 1 (decode): 151936 rows. Q6_K needs 256-wide rows and 896 is not one, so
// it runs at 1024 columns; Q5_0 at Qwen2.5-0.5B's 896.
TEST(MatMulHighBitsTest, LmHeadMatchesTheFormula) {
  std::mt19937 rng(14);
  for (const auto& [t, cols] :
       {std::pair{DType::kQ6_K, int64_t{1024}}, std::pair{DType::kQ5_0, int64_t{896}}}) {
    const int64_t rows = 151936;
    const std::vector<uint8_t> bytes = RandomBlocks(t, rows, cols, rng);
    auto packed = PackedMatrix::Pack({"w", t, {rows, cols}, bytes.data(), bytes.size()});
    ASSERT_TRUE(packed.ok());
    std::vector<float> x(cols), out(rows);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
    const std::vector<float> want = Formula(t, bytes, rows, cols, x.data(), 1, nullptr);
    ThreadPool pool(2);
    std::string where;
    for (Isa isa : testing::SupportedMatMulIsas()) {
      MatMulWithIsa(isa, *packed, x.data(), 1, nullptr, out.data(), &pool);
      EXPECT_TRUE(SameBits(out.data(), want.data(), rows, &where))
          << DTypeName(t) << " LM head " << IsaName(isa) << " " << where;
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
