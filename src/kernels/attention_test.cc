#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/convert.h"
#include "kernels/ref/ref.h"

namespace tinyserve::kernels {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) out.push_back(isa);
  }
  return out;
}

struct Shape {
  int32_t block_size;
  int32_t num_kv_heads;
  int32_t num_heads;
  int32_t head_dim;
};

// A paged cache whose sequences own shuffled, non-contiguous blocks of a larger pool. Every slot
// no sequence owns holds NaN, so a kernel reading outside its blocks produces NaN output.
class PagedCache {
 public:
  PagedCache(DType dtype, const Shape& shape, const std::vector<int32_t>& context_lens,
             uint32_t seed)
      : context_lens_(context_lens) {
    std::mt19937 rng(seed);
    int32_t needed = 0;
    for (int32_t len : context_lens) {
      const int32_t blocks = (len + shape.block_size - 1) / shape.block_size;
      max_blocks_ = std::max(max_blocks_, blocks);
      needed += blocks;
    }
    const int64_t num_blocks = 2 * needed + 3;
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    block_tables_.assign(context_lens.size() * max_blocks_, -1);
    size_t next = 0;
    for (size_t s = 0; s < context_lens.size(); ++s) {
      for (int32_t b = 0; b * shape.block_size < context_lens[s]; ++b) {
        block_tables_[s * max_blocks_ + b] = ids[next++];
      }
    }
    const int64_t row = int64_t{shape.num_kv_heads} * shape.head_dim;
    const int64_t elems = num_blocks * shape.block_size * row;
    const int64_t bytes = elems * (dtype == DType::kF32 ? 4 : 2);
    k_.resize(bytes);
    v_.resize(bytes);
    for (int64_t i = 0; i < elems; ++i) {
      if (dtype == DType::kF32) {
        const float nan = NAN;
        std::memcpy(k_.data() + 4 * i, &nan, 4);
        std::memcpy(v_.data() + 4 * i, &nan, 4);
      } else {
        const uint16_t nan = dtype == DType::kF16 ? 0x7e00 : 0x7fc0;
        std::memcpy(k_.data() + 2 * i, &nan, 2);
        std::memcpy(v_.data() + 2 * i, &nan, 2);
      }
    }
    layer_.k = k_.data();
    layer_.v = v_.data();
    layer_.dtype = dtype;
    layer_.num_blocks = num_blocks;
    layer_.block_size = shape.block_size;
    layer_.num_kv_heads = shape.num_kv_heads;
    layer_.head_dim = shape.head_dim;

    // Each sequence's K/V are written through WriteKv, with a padding row (slot -1) between
    // real ones that must not land anywhere.
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (size_t s = 0; s < context_lens.size(); ++s) {
      std::vector<float> k, v;
      std::vector<int64_t> slots;
      for (int32_t p = 0; p < context_lens[s]; ++p) {
        slots.push_back(int64_t{block_tables_[s * max_blocks_ + p / shape.block_size]} *
                            shape.block_size +
                        p % shape.block_size);
        for (int64_t i = 0; i < row; ++i) k.push_back(dist(rng));
        for (int64_t i = 0; i < row; ++i) v.push_back(dist(rng));
        if (p % 5 == 2) {
          slots.push_back(-1);
          for (int64_t i = 0; i < 2 * row; ++i) k.push_back(1e4f), v.push_back(-1e4f);
        }
      }
      WriteKv(layer_, k.data(), v.data(), slots.data(), static_cast<int64_t>(slots.size()));
    }
  }

  const PagedKvLayer& layer() const { return layer_; }
  const int32_t* block_table(int32_t seq) const {
    return block_tables_.data() + int64_t{seq} * max_blocks_;
  }
  int32_t max_blocks() const { return max_blocks_; }

 private:
  std::vector<int32_t> context_lens_;
  int32_t max_blocks_ = 1;
  std::vector<int32_t> block_tables_;
  std::vector<uint8_t> k_, v_;
  PagedKvLayer layer_;
};

// One attention call: sequence `seqs[i]` of the cache, with context length ctx[i] and q_len[i]
// query rows (the last q_len of its first ctx positions).
struct Call {
  std::vector<int32_t> seqs, ctx, q_len;
};

// Query vectors for position p of sequence s (the same whatever call they appear in).
std::vector<float> QueryRow(int32_t seq, int32_t pos, int64_t width) {
  std::mt19937 rng(1000 * seq + pos);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> row(width);
  for (float& x : row) x = dist(rng);
  return row;
}

// Runs `call`; returns out [num_tokens, num_heads, head_dim]. Also checks it against the
// reference when `check_ref`.
std::vector<float> RunCall(Isa isa, const PagedCache& cache, const Shape& shape, const Call& call,
                           ThreadPool* pool, bool check_ref = true) {
  const int64_t width = int64_t{shape.num_heads} * shape.head_dim;
  std::vector<int32_t> query_start = {0}, tables;
  std::vector<float> q;
  for (size_t i = 0; i < call.seqs.size(); ++i) {
    query_start.push_back(query_start.back() + call.q_len[i]);
    for (int32_t j = 0; j < call.q_len[i]; ++j) {
      const auto row = QueryRow(call.seqs[i], call.ctx[i] - call.q_len[i] + j, width);
      q.insert(q.end(), row.begin(), row.end());
    }
    const int32_t* t = cache.block_table(call.seqs[i]);
    tables.insert(tables.end(), t, t + cache.max_blocks());
  }
  AttentionBatch batch;
  batch.num_seqs = static_cast<int32_t>(call.seqs.size());
  batch.query_start = query_start.data();
  batch.seq_lens = call.ctx.data();
  batch.block_tables = tables.data();
  batch.max_blocks_per_seq = cache.max_blocks();
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  std::vector<float> out(q.size(), -7.0f);
  PagedAttention(isa, q.data(), cache.layer(), batch, shape.num_heads, scale, out.data(), pool);
  if (check_ref) {
    std::vector<float> want(q.size());
    ref::PagedAttention(q.data(), cache.layer(), batch, shape.num_heads, scale, want.data());
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], want[i], 2e-6f + 2e-5f * std::fabs(want[i]))
          << "element " << i << " isa " << IsaName(isa);
      if (std::fabs(out[i] - want[i]) > 1e-3f) break;
    }
  }
  return out;
}

class AttentionTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(AttentionTest, MixedBatchOfPrefillChunksAndDecodeRowsMatchesReference) {
  const auto [isa, dtype] = GetParam();
  const std::vector<Shape> shapes = {
      {16, 2, 14, 64}, {1, 1, 3, 24}, {5, 3, 6, 8}, {7, 2, 2, 35}, {32, 1, 1, 16},
      // Past the AVX-512 grouped path's limits (blocks over 64 keys, head_dim over 64 / 128).
      {65, 1, 2, 72}, {16, 1, 3, 136}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE("block_size " + std::to_string(shape.block_size) + " head_dim " +
                 std::to_string(shape.head_dim));
    const std::vector<int32_t> ctx = {1, 37, 50, 29, 100};
    PagedCache cache(dtype, shape, ctx, 42);
    Call call{{0, 1, 2, 3, 4}, ctx, {1, 37, 1, 11, 20}};
    RunCall(isa, cache, shape, call, nullptr);
  }
}

TEST_P(AttentionTest, SequenceIsBitIdenticalAloneBatchedOrChunked) {
  const auto [isa, dtype] = GetParam();
  const Shape shape = {16, 2, 14, 64};
  const std::vector<int32_t> ctx = {45, 20, 70};
  PagedCache cache(dtype, shape, ctx, 7);
  const int64_t width = int64_t{shape.num_heads} * shape.head_dim;
  const auto alone = RunCall(isa, cache, shape, {{0}, {45}, {45}}, nullptr);
  // Batched behind two other sequences.
  const auto batched = RunCall(isa, cache, shape, {{1, 2, 0}, {20, 33, 45}, {20, 1, 45}}, nullptr);
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batched.end() - 45 * width));
  // Chunked prefill (13, 17, 14 rows) then a decode row, each chunk in a different batch.
  const std::vector<std::pair<int32_t, int32_t>> chunks = {{0, 13}, {13, 30}, {30, 44}, {44, 45}};
  for (auto [begin, end] : chunks) {
    const auto out = RunCall(isa, cache, shape, {{2, 0}, {60, end}, {3, end - begin}}, nullptr);
    EXPECT_TRUE(
        std::equal(out.end() - (end - begin) * width, out.end(), alone.begin() + begin * width))
        << "chunk " << begin << ".." << end;
  }
}

TEST_P(AttentionTest, ResultDoesNotDependOnThreadCount) {
  const auto [isa, dtype] = GetParam();
  const Shape shape = {16, 2, 14, 64};
  const std::vector<int32_t> ctx = {90, 3, 40, 17};
  PagedCache cache(dtype, shape, ctx, 9);
  const Call call{{0, 1, 2, 3}, ctx, {30, 3, 1, 17}};
  ThreadPool one(1), two(2);
  const auto a = RunCall(isa, cache, shape, call, nullptr, /*check_ref=*/false);
  const auto b = RunCall(isa, cache, shape, call, &one, /*check_ref=*/false);
  const auto c = RunCall(isa, cache, shape, call, &two, /*check_ref=*/true);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndCacheTypes, AttentionTest,
                         ::testing::Combine(::testing::ValuesIn(SupportedIsas()),
                                            ::testing::Values(DType::kF32, DType::kF16,
                                                              DType::kBF16)),
                         [](const auto& info) {
                           return std::string(IsaName(std::get<0>(info.param))) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

TEST(WriteKvTest, StoresConvertedRowsAndSkipsNegativeSlots) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    const int64_t row = 2 * 3;  // 2 KV heads x head_dim 3
    const int64_t num_slots = 4 * 2;
    std::vector<uint8_t> k(num_slots * row * 4, 0xAB), v(num_slots * row * 4, 0xCD);
    PagedKvLayer layer{k.data(), v.data(), dtype, 4, 2, 2, 3};
    std::vector<float> kin(3 * row), vin(3 * row);
    for (size_t i = 0; i < kin.size(); ++i) kin[i] = 0.1f * i - 0.77f, vin[i] = 3.3f - 0.7f * i;
    const std::vector<int64_t> slots = {5, -1, 0};
    WriteKv(layer, kin.data(), vin.data(), slots.data(), 3);
    for (int64_t slot = 0; slot < num_slots; ++slot) {
      const int64_t src = slot == 5 ? 0 : slot == 0 ? 2 : -1;
      for (int64_t i = 0; i < row; ++i) {
        const int64_t idx = slot * row + i;
        if (src < 0) {
          const size_t width = dtype == DType::kF32 ? 4 : 2;
          EXPECT_EQ(k[idx * width], 0xAB) << "slot " << slot << " was written";
          EXPECT_EQ(v[idx * width], 0xCD);
          continue;
        }
        float want_k = kin[src * row + i], want_v = vin[src * row + i];
        if (dtype == DType::kF16) {
          want_k = Fp16ToF32(F32ToFp16(want_k)), want_v = Fp16ToF32(F32ToFp16(want_v));
        } else if (dtype == DType::kBF16) {
          want_k = Bf16ToF32(F32ToBf16(want_k)), want_v = Bf16ToF32(F32ToBf16(want_v));
        }
        EXPECT_EQ(ref::LoadCacheElement(dtype, k.data(), idx), want_k);
        EXPECT_EQ(ref::LoadCacheElement(dtype, v.data(), idx), want_v);
      }
    }
  }
}

}  // namespace
}  // namespace tinyserve::kernels
