#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernels_test_util.h"
#include "kernels/quant_formats.h"
#include "kernels/ref/ref.h"

namespace tinyserve::kernels {
namespace {

// A buffer whose data() starts `offset` floats past a 64-byte boundary, to test unaligned
// pointers (offset 1 = 4 bytes off).
class Buffer {
 public:
  Buffer(int64_t n, int offset) : storage_(n + 16 + offset), offset_(offset) {}
  float* data() { return storage_.data() + offset_; }
  float& operator[](int64_t i) { return data()[i]; }

 private:
  std::vector<float> storage_;
  int offset_;
};

void FillRandom(float* p, int64_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < n; ++i) p[i] = dist(rng);
}

// |got - want| <= abs_tol + rel_tol * |want| for every element.
void ExpectClose(const float* got, const float* want, int64_t n, float rel_tol, float abs_tol,
                 const std::string& what) {
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(got[i], want[i], abs_tol + rel_tol * std::fabs(want[i])) << what << " at " << i;
  }
}

// Lengths every kernel is swept over: 1..2*16+3 (every tail of both vector widths) and the
// Qwen2.5-0.5B sizes.
std::vector<int64_t> Dims() {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d <= 35; ++d) dims.push_back(d);
  dims.push_back(64);
  dims.push_back(896);
  dims.push_back(4864);
  return dims;
}
std::vector<int64_t> RowCounts(int64_t dim) {
  return dim > 64 ? std::vector<int64_t>{1, 3} : std::vector<int64_t>{1, 2, 5, 9};
}

class OpsIsaTest : public ::testing::TestWithParam<Isa> {};

TEST_P(OpsIsaTest, RmsNormMatchesReferenceForAllLengthsAndAlignments) {
  for (int64_t dim : Dims()) {
    for (int64_t rows : RowCounts(dim)) {
      for (int offset : {0, 1}) {
        Buffer x(rows * dim, offset), w(dim, offset), out(rows * dim, offset);
        std::vector<float> want(rows * dim);
        FillRandom(x.data(), rows * dim, 1 + dim);
        FillRandom(w.data(), dim, 2 + dim);
        ref::RmsNorm(x.data(), w.data(), rows, dim, 1e-6f, want.data());
        RmsNorm(GetParam(), x.data(), w.data(), rows, dim, 1e-6f, out.data(), nullptr);
        ExpectClose(out.data(), want.data(), rows * dim, 1e-5f, 1e-6f,
                    "dim " + std::to_string(dim) + " rows " + std::to_string(rows));
      }
    }
  }
}

TEST_P(OpsIsaTest, RmsNormInPlaceEqualsOutOfPlace) {
  const int64_t rows = 3, dim = 896;
  std::vector<float> x(rows * dim), w(dim), out(rows * dim);
  FillRandom(x.data(), x.size(), 3);
  FillRandom(w.data(), w.size(), 4);
  RmsNorm(GetParam(), x.data(), w.data(), rows, dim, 1e-6f, out.data(), nullptr);
  RmsNorm(GetParam(), x.data(), w.data(), rows, dim, 1e-6f, x.data(), nullptr);
  EXPECT_EQ(x, out);
}

TEST_P(OpsIsaTest, RmsNormAndSiluMulAreIdenticalWithAndWithoutThreads) {
  const int64_t rows = 37, dim = 896;
  std::vector<float> x(rows * 2 * dim), w(dim), a(rows * dim), b(rows * dim);
  FillRandom(x.data(), x.size(), 5);
  FillRandom(w.data(), w.size(), 6);
  ThreadPool pool(2);
  RmsNorm(GetParam(), x.data(), w.data(), rows, dim, 1e-6f, a.data(), nullptr);
  RmsNorm(GetParam(), x.data(), w.data(), rows, dim, 1e-6f, b.data(), &pool);
  EXPECT_EQ(a, b);
  SiluMul(GetParam(), x.data(), rows, dim, a.data(), nullptr);
  SiluMul(GetParam(), x.data(), rows, dim, b.data(), &pool);
  EXPECT_EQ(a, b);
}

TEST_P(OpsIsaTest, RopeNeoxMatchesReference) {
  std::vector<int64_t> head_dims;
  for (int64_t d = 2; d <= 72; d += 2) head_dims.push_back(d);
  head_dims.push_back(128);
  for (int64_t head_dim : head_dims) {
    for (int64_t heads : {1, 3, 14}) {
      for (int offset : {0, 1}) {
        const int64_t tokens = 3;
        std::vector<int32_t> pos = {0, 17, 32767};
        Buffer cs(tokens * head_dim, offset), x(tokens * heads * head_dim, offset);
        ref::RopeCosSin(pos.data(), tokens, head_dim, 1e6f, cs.data());
        FillRandom(x.data(), tokens * heads * head_dim, 7 + head_dim);
        std::vector<float> want(x.data(), x.data() + tokens * heads * head_dim);
        ref::RopeNeox(want.data(), cs.data(), tokens, heads, head_dim);
        RopeNeox(GetParam(), x.data(), cs.data(), tokens, heads, head_dim);
        ExpectClose(x.data(), want.data(), want.size(), 1e-6f, 1e-6f,
                    "head_dim " + std::to_string(head_dim));
      }
    }
  }
}

TEST_P(OpsIsaTest, SiluMulMatchesReferenceIncludingLargeInputs) {
  for (int64_t dim : Dims()) {
    for (int64_t rows : RowCounts(dim)) {
      for (int offset : {0, 1}) {
        Buffer gu(rows * 2 * dim, offset), out(rows * dim, offset);
        FillRandom(gu.data(), rows * 2 * dim, 8 + dim, -12.0f, 12.0f);
        gu[0] = -120.0f;  // exp(120) overflows f32: silu must still be ~0, not NaN
        if (dim > 1) gu[1] = 95.0f;
        std::vector<float> want(rows * dim);
        ref::SiluMul(gu.data(), rows, dim, want.data());
        SiluMul(GetParam(), gu.data(), rows, dim, out.data(), nullptr);
        ExpectClose(out.data(), want.data(), rows * dim, 2e-6f, 1e-6f,
                    "dim " + std::to_string(dim));
      }
    }
  }
}

TEST_P(OpsIsaTest, SoftmaxWeightsOverTheirSumMatchReferenceIncludingMaskedEntries) {
  for (int64_t dim : Dims()) {
    for (int offset : {0, 1}) {
      Buffer x(dim, offset);
      FillRandom(x.data(), dim, 9 + dim, -30.0f, 30.0f);
      if (dim > 2) x[dim - 1] = -INFINITY;  // a masked logit gets weight 0
      std::vector<float> want(x.data(), x.data() + dim);
      ref::Softmax(want.data(), 1, dim);
      const float sum = SoftmaxWeights(GetParam(), x.data(), dim);
      EXPECT_GE(sum, 0.999f);  // the largest logit's weight is exp(0)
      if (dim > 2) {
        EXPECT_EQ(x[dim - 1], 0.0f);
      }
      for (int64_t i = 0; i < dim; ++i) x[i] /= sum;
      ExpectClose(x.data(), want.data(), dim, 1e-5f, 1e-7f, "dim " + std::to_string(dim));
    }
  }
}

TEST_P(OpsIsaTest, SoftmaxWeightsOfOnlyMaskedEntriesSumToNothingFinite) {
  std::vector<float> x(40, -INFINITY);
  EXPECT_FALSE(std::isfinite(SoftmaxWeights(GetParam(), x.data(), 40)));
}

// Against log(sum(exp)) in double, over every tail, a block edge (1,024 / 2,048 elements) and
// Qwen2.5's vocabulary; logits spread over 60 nats (most weights tiny), one entry masked.
TEST_P(OpsIsaTest, LogSumExpMatchesDoubleReference) {
  std::vector<int64_t> dims = Dims();
  for (int64_t n : {1023, 1024, 1025, 2048, 2049, 151936}) dims.push_back(n);
  for (int64_t dim : dims) {
    for (int offset : {0, 1}) {
      Buffer x(dim, offset);
      FillRandom(x.data(), dim, 5 + dim, -30.0f, 30.0f);
      if (dim > 2) x[dim / 2] = -INFINITY;
      double max = -INFINITY;
      for (int64_t i = 0; i < dim; ++i) max = std::max(max, double{x[i]});
      double sum = 0;
      for (int64_t i = 0; i < dim; ++i) sum += std::exp(x[i] - max);
      const double want = max + std::log(sum);
      // A float result: its own rounding (~2e-6 at 30) plus the exp's and the sum's.
      EXPECT_NEAR(LogSumExp(GetParam(), x.data(), dim), want, 1e-5 * std::fabs(want) + 1e-6)
          << "dim " << dim;
    }
  }
}

TEST_P(OpsIsaTest, LogSumExpOfOnlyMaskedEntriesIsMinusInfinity) {
  std::vector<float> x(40, -INFINITY);
  EXPECT_EQ(LogSumExp(GetParam(), x.data(), 40), -INFINITY);
  EXPECT_EQ(LogSumExp(GetParam(), x.data(), 0), -INFINITY);
}

// Equal logits: log(n) exactly as the count of terms, whatever the block a term falls in.
TEST_P(OpsIsaTest, LogSumExpOfEqualLogitsIsTheLogOfTheirCount) {
  std::vector<float> x(151936, 3.5f);
  EXPECT_NEAR(LogSumExp(GetParam(), x.data(), 151936), 3.5 + std::log(151936.0), 2e-6);
}

// Against the running sum taken one weight at a time: the index where it passes target, at block
// edges (512) and past them, at 0, and never (-1). Weights from 1e-9 to 1, so that blocks hold
// tiny ones next to large ones.
TEST_P(OpsIsaTest, FirstIndexPassingIsWhereTheRunningSumPassesTarget) {
  for (int64_t n : {1, 7, 511, 512, 513, 1500, 151936}) {
    std::vector<float> w(n);
    FillRandom(w.data(), n, 31 + n, -20.0f, 0.0f);
    for (float& v : w) v = std::exp(v);
    std::vector<double> cum(n);
    double run = 0;
    for (int64_t i = 0; i < n; ++i) cum[i] = run += w[i];
    for (int64_t want : {int64_t{0}, int64_t{1}, n / 3, int64_t{511}, int64_t{512}, n - 1}) {
      if (want >= n) continue;
      const double below = want == 0 ? 0.0 : cum[want - 1];
      if (cum[want] - below < 1e-6 * run) continue;  // a weight too small to aim at
      EXPECT_EQ(FirstIndexPassing(GetParam(), w.data(), n, (below + cum[want]) / 2), want)
          << "n " << n;
    }
    EXPECT_EQ(FirstIndexPassing(GetParam(), w.data(), n, -1.0), 0);
    EXPECT_EQ(FirstIndexPassing(GetParam(), w.data(), n, 2 * run), -1);
  }
}

// The first index of the largest value: ties (values rounded to quarters) go to the lowest
// index, NaN never wins, -inf only when nothing else is left; every length up to two vectors
// and past, and the maximum in the first, the last and a tail lane.
TEST_P(OpsIsaTest, ArgmaxIsTheLowestIndexOfTheLargestValue) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<int64_t> lengths = Dims();
  lengths.push_back(151936);
  for (int64_t n : lengths) {
    std::vector<float> x(n);
    FillRandom(x.data(), n, 41 + n, -8.0f, 8.0f);
    for (float& v : x) v = std::round(v * 4) / 4;
    for (int64_t i = 0; i < n; i += 5) x[i] = -inf;
    for (int64_t i = 2; i < n; i += 7) x[i] = nan;
    int64_t want = -1;  // written plainly: a scan for the largest non-NaN value, first wins
    for (int64_t i = 0; i < n; ++i)
      if (!std::isnan(x[i]) && (want < 0 || x[i] > x[want])) want = i;
    EXPECT_EQ(Argmax(GetParam(), x.data(), n), want < 0 ? 0 : want) << "n " << n;
    for (int64_t at : {int64_t{0}, n - 1, n / 2}) {
      std::vector<float> y = x;
      y[at] = 100.0f;
      EXPECT_EQ(Argmax(GetParam(), y.data(), n), at) << "n " << n;
    }
  }
  const std::vector<float> all_nan(20, nan), masked = {nan, -inf, -inf};
  EXPECT_EQ(Argmax(GetParam(), all_nan.data(), 20), 0);
  EXPECT_EQ(Argmax(GetParam(), masked.data(), 3), 1);
  EXPECT_EQ(Argmax(GetParam(), masked.data(), 0), 0);
}

TEST_P(OpsIsaTest, AddBiasAndAddInPlaceMatchReferenceExactly) {
  for (int64_t dim : Dims()) {
    for (int64_t rows : RowCounts(dim)) {
      for (int offset : {0, 1}) {
        Buffer out(rows * dim, offset), bias(dim, offset), x(rows * dim, offset);
        FillRandom(out.data(), rows * dim, 10);
        FillRandom(bias.data(), dim, 11);
        FillRandom(x.data(), rows * dim, 12);
        std::vector<float> want(out.data(), out.data() + rows * dim);
        ref::AddBias(want.data(), bias.data(), rows, dim);
        ref::AddInPlace(want.data(), x.data(), rows * dim);
        AddBias(GetParam(), out.data(), bias.data(), rows, dim);
        AddInPlace(GetParam(), out.data(), x.data(), rows * dim);
        ExpectClose(out.data(), want.data(), rows * dim, 0, 0, "dim " + std::to_string(dim));
      }
    }
  }
}

// from_f32 (the KV store's f16 / bf16 rows) gives convert.h's F32ToFp16 / F32ToBf16 bits for
// every input: random bit patterns (every exponent, NaNs with any payload, subnormals), values
// around binary16's largest and its overflow to inf, rounding ties of both formats, signed zeros
// and infinities, at every tail length.
TEST_P(OpsIsaTest, FromF32GivesTheScalarConversionsBitsForEveryInput) {
  std::mt19937 rng(14);
  std::vector<float> values;
  for (int i = 0; i < 20000; ++i)
    values.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  for (float f :
       {0.0f,           -0.0f,    INFINITY,     -INFINITY,       65504.0f,        65519.0f,
        65519.99f,      65520.0f, -65520.0f,    65536.0f,        0x1p-24f,        0x1p-25f,
        0x1.8p-25f,     0x1p-14f, 0x1.ffcp-15f, 1.0f + 0x1p-11f, 1.0f + 0x3p-11f, 1.0f + 0x1p-8f,
        1.0f + 0x3p-8f, 1e-40f})
    values.push_back(f);
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xffc12345u, 0x7fffffffu, 0x7fbfe000u})
    values.push_back(std::bit_cast<float>(bits));
  const auto from_f32 = cpu::KernelsFor(GetParam()).from_f32;
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> want(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      want[i] = dtype == DType::kF16 ? F32ToFp16(values[i]) : F32ToBf16(values[i]);
    std::vector<uint16_t> got(values.size(), 0x1234);
    from_f32(dtype, values.data(), got.data(), static_cast<int64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << DTypeName(dtype) << " of bits 0x" << std::hex
                                 << std::bit_cast<uint32_t>(values[i]);
    }
    for (int64_t n : Dims()) {  // the tails: nothing written past n
      std::vector<uint16_t> part(n + 16, 0x1234);
      from_f32(dtype, values.data() + 7, part.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(part[i], want[7 + i]) << DTypeName(dtype) << n;
      for (int64_t i = n; i < n + 16; ++i) ASSERT_EQ(part[i], 0x1234) << DTypeName(dtype) << n;
    }
  }
}

TEST_P(OpsIsaTest, EmbeddingLookupConvertsF32F16Bf16RowsExactly) {
  for (int64_t dim : Dims()) {
    const int64_t vocab = 7;
    std::vector<float> values(vocab * dim);
    FillRandom(values.data(), values.size(), 13 + dim);
    std::vector<uint16_t> f16(values.size()), bf16(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      f16[i] = F32ToFp16(values[i]);
      bf16[i] = F32ToBf16(values[i]);
    }
    const std::vector<int32_t> ids = {6, 0, 3, 3};
    for (auto [dtype, data] : {std::pair<DType, const void*>{DType::kF32, values.data()},
                               {DType::kF16, f16.data()},
                               {DType::kBF16, bf16.data()}}) {
      TensorView table;
      table.dtype = dtype;
      table.shape = {vocab, dim};
      table.data = data;
      std::vector<float> want(ids.size() * dim), got(ids.size() * dim);
      ref::EmbeddingLookup(table, ids.data(), ids.size(), want.data());
      EmbeddingLookup(GetParam(), table, ids.data(), ids.size(), got.data());
      EXPECT_EQ(got, want) << DTypeName(dtype) << " dim " << dim;
    }
  }
}

TEST_P(OpsIsaTest, EmbeddingLookupDequantizesTheRequestedRowsOfQuantizedTables) {
  // Each row is encoded separately, so row i of the table must decode to what row i alone
  // decodes to: this pins the row addressing (RowBytes per row) for block formats.
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K}) {
    const int64_t dim = BlockSize(dtype) == 256 ? 512 : 96;
    const int64_t vocab = 5;
    const uint64_t row_bytes = *RowBytes(dtype, dim);
    std::vector<float> values(vocab * dim);
    FillRandom(values.data(), values.size(), 17);
    std::vector<uint8_t> table_bytes(vocab * row_bytes);
    std::vector<float> rows(vocab * dim);
    bool supported = true;
    for (int64_t r = 0; r < vocab; ++r) {
      if (!QuantizeRow(dtype, values.data() + r * dim, table_bytes.data() + r * row_bytes, dim)
               .ok()) {
        supported = false;
        break;
      }
      DequantizeRow(dtype, table_bytes.data() + r * row_bytes, rows.data() + r * dim, dim);
    }
    if (!supported) {  // no quantizer for this format; Q8_0 always has one
      EXPECT_NE(dtype, DType::kQ8_0);
      continue;
    }
    TensorView table;
    table.dtype = dtype;
    table.shape = {vocab, dim};
    table.data = table_bytes.data();
    table.num_bytes = table_bytes.size();
    const std::vector<int32_t> ids = {4, 1, 1, 0};
    std::vector<float> got(ids.size() * dim);
    EmbeddingLookup(GetParam(), table, ids.data(), ids.size(), got.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        ASSERT_EQ(got[i * dim + j], rows[ids[i] * dim + j]) << DTypeName(dtype) << " id " << ids[i];
        // And the quantization is sane: close to the original value.
        ASSERT_NEAR(got[i * dim + j], values[ids[i] * dim + j], 0.5f) << DTypeName(dtype);
      }
    }
  }
}

TEST_P(OpsIsaTest, AddRmsNormIsBitIdenticalToAddThenNormOnAnyThreadCount) {
  const Isa isa = GetParam();
  const int64_t rows = 37, dim = 200;
  std::vector<float> x(rows * dim), add(rows * dim), w(dim);
  FillRandom(x.data(), rows * dim, 1);
  FillRandom(add.data(), rows * dim, 2);
  FillRandom(w.data(), dim, 3);
  std::vector<float> want_x = x, want(rows * dim);
  AddInPlace(isa, want_x.data(), add.data(), rows * dim);
  RmsNorm(isa, want_x.data(), w.data(), rows, dim, 1e-6f, want.data(), nullptr);
  ThreadPool two(2), three(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two, &three}) {
    std::vector<float> got_x = x, got(rows * dim);
    AddRmsNorm(isa, got_x.data(), add.data(), w.data(), rows, dim, 1e-6f, got.data(), pool);
    EXPECT_EQ(got_x, want_x);
    EXPECT_EQ(got, want);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, OpsIsaTest, ::testing::ValuesIn(testing::SupportedVectorIsas()),
                         [](const auto& info) { return std::string(IsaName(info.param)); });

TEST(OpsTest, RopeCosSinIsAccurateAtLongPositions) {
  // Independent of the implementation: cos/sin of the angle computed in long double.
  const int64_t head_dim = 64;
  std::vector<int32_t> pos = {0, 1, 4095, 32767, 32768};
  std::vector<float> cs(pos.size() * head_dim);
  RopeCosSin(pos.data(), pos.size(), head_dim, 1e6f, cs.data());
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const long double angle =
          pos[t] * std::pow(1e6L, -2.0L * i / static_cast<long double>(head_dim));
      EXPECT_NEAR(cs[t * head_dim + i], static_cast<double>(std::cos(angle)), 1e-6);
      EXPECT_NEAR(cs[t * head_dim + head_dim / 2 + i], static_cast<double>(std::sin(angle)), 1e-6);
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
