// The AMX matmul kernel (kernels/cpu/matmul_amx_avx512.cc) against the AVX-512 kernel, bit for
// bit, for every quantized weight type: run over kernels/ref/amx_tiles_ref.h's model of the tile
// unit on any AVX-512 CPU (this checks the kernel's logic: layouts, tails, padding rows,
// threading), and on the tile unit itself where the CPU has AMX (this checks the inline
// assembly and the tile configuration). matmul_test.cc also runs Isa::kAmx against the
// reference where available.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_formats.h"
#include "kernels/ref/amx_tiles_ref.h"

namespace tinyserve::kernels {
namespace {

constexpr DType kQuantTypes[] = {
    DType::kQ4_0,  DType::kQ4_1,  DType::kQ5_0,  DType::kQ5_1,  DType::kQ8_0,   DType::kQ2_K,
    DType::kQ3_K,  DType::kQ4_K,  DType::kQ5_K,  DType::kQ6_K,  DType::kIQ4_NL, DType::kIQ4_XS,
    DType::kIQ3_S, DType::kMXFP4, DType::kTQ1_0, DType::kTQ2_0, DType::kQ1_0,   DType::kQ2_0};

// Random block bytes with finite f16 fields (any byte pattern is a valid block otherwise; the
// values only need to be the same for both kernels).
std::vector<uint8_t> RandomSmallExponentBlocks(DType t, int64_t rows, int64_t cols,
                                               std::mt19937& rng) {
  std::vector<uint8_t> w(*RowBytes(t, cols) * rows);
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng() & 0x3b);  // f16 exponents stay small
  return w;
}

using AmxRunner = void (*)(const PackedMatrix::Impl&, const float*, int64_t, const float*, float*,
                           ThreadPool*);

// Runs `run` and the AVX-512 path on the same inputs, 1 and 2 threads, with and without bias.
void ExpectSameAsAvx512(AmxRunner run, DType t, int64_t rows, int64_t cols, int64_t num_rows,
                        std::mt19937& rng) {
  const std::vector<uint8_t> wbytes = RandomSmallExponentBlocks(t, rows, cols, rng);
  auto packed = PackedMatrix::Pack({"w", t, {rows, cols}, wbytes.data(), wbytes.size()});
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(num_rows * cols), bias(rows);
  for (float& v : x) v = nd(rng);
  for (float& v : bias) v = nd(rng);
  static ThreadPool pool(2);
  for (const float* b :
       {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
    const std::string label = std::string(DTypeName(t)) + " rows=" + std::to_string(rows) +
                              " cols=" + std::to_string(cols) +
                              " num_rows=" + std::to_string(num_rows) + (b ? " bias" : "");
    std::vector<float> want(num_rows * rows);
    MatMulWithIsa(Isa::kAvx512, *packed, x.data(), num_rows, b, want.data(), &pool);
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      // NaN poison: an output the kernel fails to write cannot compare equal.
      std::vector<float> got(num_rows * rows, std::nanf(""));
      run(packed->impl(), x.data(), num_rows, b, got.data(), p);
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
          << label << (p ? " 2 threads" : " 1 thread");
    }
  }
}

void SweepShapes(AmxRunner run) {
  for (DType t : kQuantTypes) {
    std::mt19937 rng(4321 + static_cast<int>(t));
    const int64_t bs = BlockSize(t);
    // One sub-block pair or an odd count of them, partial weight groups, partial and several
    // 16-row activation tiles.
    for (int64_t num_rows : {16, 17, 31, 48})
      for (int64_t rows : {16, 37}) ExpectSameAsAvx512(run, t, rows, bs, num_rows, rng);
    ExpectSameAsAvx512(run, t, 20, 3 * bs, 33, rng);
    if (bs != 256) ExpectSameAsAvx512(run, t, 24, 896, 40, rng);
  }
}

TEST(MatMulAmxTest, KernelOnTheTileModelMatchesAvx512BitForBit) {
  if (!IsaSupported(Isa::kAvx512))
    GTEST_SKIP() << "skipped: the AMX kernel's scaling is AVX-512 and this CPU (or the "
                    "TINYSERVE_ISA cap) has no AVX-512";
  SweepShapes(RunQuantizedAmxOnModel);
}

TEST(MatMulAmxTest, KernelOnTheTileUnitMatchesAvx512BitForBit) {
  if (!IsaSupported(Isa::kAmx))
    GTEST_SKIP() << "skipped: this CPU has no AMX-INT8 tile unit (or the TINYSERVE_ISA cap "
                    "excludes it); the kernel's logic is covered on the tile model above";
  SweepShapes(RunQuantizedAmx);
}

// The model follows Intel's definition of TDPBSUD: signed A bytes times unsigned B bytes, B's
// row k holding elements 4k..4k+3 of each column; checked element by element against plain
// loops on extreme values, and against the unit itself where present.
template <class Tiles>
std::vector<int32_t> TileProduct(const std::vector<int8_t>& a, const std::vector<uint8_t>& b,
                                 int k) {
  amx::TileConfig cfg;
  cfg.Set(0, 16, 64);
  cfg.Set(1, 16, k);
  cfg.Set(2, k / 4, 64);
  std::vector<int32_t> c(256, 7);
  Tiles::Configure(cfg);
  Tiles::template Load<0>(c.data(), 64);
  Tiles::template Load<1>(a.data(), k);
  Tiles::template Load<2>(b.data(), 64);
  Tiles::template DotSignedUnsigned<0, 1, 2>();
  Tiles::template Store<0>(c.data(), 64);
  Tiles::Release();
  return c;
}

TEST(MatMulAmxTest, TileModelIsTheDotProductIntelDefines) {
  std::mt19937 rng(17);
  for (int k : {16, 32, 64}) {
    std::vector<int8_t> a(16 * k);
    std::vector<uint8_t> b(k / 4 * 64);
    for (int8_t& v : a) v = static_cast<int8_t>(rng() % 3 == 0 ? -128 : rng());
    for (uint8_t& v : b) v = static_cast<uint8_t>(rng() % 3 == 0 ? 255 : rng());
    std::vector<int32_t> want(256);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        int32_t sum = 7;
        for (int i = 0; i < k; ++i)
          sum += int32_t{a[m * k + i]} * int32_t{b[(i / 4) * 64 + n * 4 + i % 4]};
        want[m * 16 + n] = sum;
      }
    EXPECT_EQ(TileProduct<ref::ModelTiles>(a, b, k), want) << "k=" << k;
    if (IsaSupported(Isa::kAmx)) {
      EXPECT_EQ(TileProduct<amx::HardwareTiles>(a, b, k), want) << "k=" << k << " hardware";
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
