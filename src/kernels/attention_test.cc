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
#include "kernels/kernels_test_util.h"
#include "kernels/ops.h"
#include "kernels/ref/ref.h"

namespace tinyserve::kernels {
namespace {

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
    const int64_t bytes = elems * (dtype == DType::kF32 ? 4 : dtype == DType::kI8 ? 1 : 2);
    k_.resize(bytes);
    v_.resize(bytes);
    if (dtype == DType::kI8) {  // NaN scales: an unowned slot dequantizes to NaN
      k_scale_.assign(num_blocks * shape.block_size * shape.num_kv_heads, 0x7e00);
      v_scale_ = k_scale_;
      layer_.k_scale = k_scale_.data();
      layer_.v_scale = v_scale_.data();
    }
    for (int64_t i = 0; i < elems && dtype != DType::kI8; ++i) {
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
          for (int64_t i = 0; i < row; ++i) k.push_back(1e4f), v.push_back(-1e4f);
        }
      }
      WriteKv(layer_, k.data(), v.data(), slots.data(), static_cast<int64_t>(slots.size()));
    }
  }

  const PagedKvLayer& layer() const { return layer_; }

  // An int8 cache read by the AVX2 / AVX-512 kernels' integer p.v (attention_avx*.cc: weights
  // rounded to int16, each by at most max v scale / 65534 once the softmax sum is >= 1): the bound
  // that rounding puts on output element d of a query of KV head h that sees positions [0, n) of
  // sequence seq, max v scale / 65534 x sum |v_q[d]|.
  float WeightRoundingBound(int32_t seq, int32_t h, int32_t n, int32_t d) const {
    const int64_t bs = layer_.block_size, nkv = layer_.num_kv_heads;
    float max_scale = 0, sum = 0;
    for (int32_t p = 0; p < n; ++p) {
      const int64_t row = (int64_t{block_table(seq)[p / bs]} * bs + p % bs) * nkv + h;
      max_scale = std::max(max_scale, Fp16ToF32(v_scale_[row]));
      sum += std::fabs(static_cast<float>(static_cast<int8_t>(v_[row * layer_.head_dim + d])));
    }
    return max_scale / 65534.0f * sum;
  }
  const int32_t* block_table(int32_t seq) const {
    return block_tables_.data() + int64_t{seq} * max_blocks_;
  }
  int32_t max_blocks() const { return max_blocks_; }

 private:
  std::vector<int32_t> context_lens_;
  int32_t max_blocks_ = 1;
  std::vector<int32_t> block_tables_;
  std::vector<uint8_t> k_, v_;
  std::vector<uint16_t> k_scale_, v_scale_;
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
    const bool int_weights = cache.layer().dtype == DType::kI8 && isa >= Isa::kAvx2 &&
                             shape.head_dim % 64 == 0 && shape.head_dim <= 256;
    const int32_t group = shape.num_heads / shape.num_kv_heads;
    size_t i = 0;
    for (size_t s = 0; s < call.seqs.size(); ++s) {
      for (int32_t j = 0; j < call.q_len[s]; ++j) {
        const int32_t visible = call.ctx[s] - call.q_len[s] + j + 1;
        for (int32_t h = 0; h < shape.num_heads; ++h) {
          for (int32_t d = 0; d < shape.head_dim; ++d, ++i) {
            const float bound =
                int_weights ? cache.WeightRoundingBound(call.seqs[s], h / group, visible, d) : 0;
            const float tolerance = 2e-6f + 2e-5f * std::fabs(want[i]) + bound;
            EXPECT_NEAR(out[i], want[i], tolerance) << "element " << i << " isa " << IsaName(isa);
            if (!(std::fabs(out[i] - want[i]) <= tolerance)) return out;  // one report is enough
          }
        }
      }
    }
  }
  return out;
}

class AttentionTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(AttentionTest, MixedBatchOfPrefillChunksAndDecodeRowsMatchesReference) {
  const auto [isa, dtype] = GetParam();
  const std::vector<Shape> shapes = {
      {16, 2, 14, 64},
      {1, 1, 3, 24},
      {5, 3, 6, 8},
      {7, 2, 2, 35},
      {32, 1, 1, 16},
      // Past the AVX-512 grouped path's limits (blocks over 64 keys, head_dim over 64 / 128);
      // AVX2 scores heads over 64 from the key rows as they are (100: with a part chunk).
      {65, 1, 2, 72},
      {16, 1, 3, 136},
      {16, 2, 14, 100}};
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

// Contexts past one partition (1,024 keys) are split into partitions merged afterwards
// (flash-decoding). They still match the reference, and the split is fixed by position: a
// sequence gives the same bits alone or batched, chunked, and on 1, 2 or 3 threads.
// Many decode rows: threads claim items two at a time (an odd count here, so one claim is
// short), which must change no result either.
TEST_P(AttentionTest, ManyDecodeRowsDoNotDependOnThreadCount) {
  const auto [isa, dtype] = GetParam();
  const Shape shape = {16, 3, 15, 64};
  std::vector<int32_t> seqs, ctx, q_len;
  for (int32_t s = 0; s < 13; ++s) {
    seqs.push_back(s);
    ctx.push_back(5 + 37 * s % 200);
    q_len.push_back(1);
  }
  PagedCache cache(dtype, shape, ctx, 13);
  const Call call{seqs, ctx, q_len};
  ThreadPool two(2), three(3);
  const auto a = RunCall(isa, cache, shape, call, nullptr, /*check_ref=*/false);
  const auto b = RunCall(isa, cache, shape, call, &two, /*check_ref=*/true);
  const auto c = RunCall(isa, cache, shape, call, &three, /*check_ref=*/false);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST_P(AttentionTest, SplitLongContextsMatchReferenceAndAreBitIdentical) {
  const auto [isa, dtype] = GetParam();
  const Shape shape = {16, 2, 14, 64};
  const std::vector<int32_t> ctx = {2600, 30, 1200};
  PagedCache cache(dtype, shape, ctx, 11);
  const int64_t width = int64_t{shape.num_heads} * shape.head_dim;
  // Rows 1010..1039 of sequence 0 straddle the first partition boundary; 2048 the second.
  const Call call{{0, 1, 2, 0}, {1040, 30, 1200, 2600}, {30, 1, 1, 1}};
  ThreadPool one(1), two(2), three(3);
  const auto a = RunCall(isa, cache, shape, call, &one, /*check_ref=*/true);
  EXPECT_EQ(a, RunCall(isa, cache, shape, call, &two, /*check_ref=*/false));
  EXPECT_EQ(a, RunCall(isa, cache, shape, call, &three, /*check_ref=*/false));
  EXPECT_EQ(a, RunCall(isa, cache, shape, call, nullptr, /*check_ref=*/false));
  // The decode row at 2600 alone, and the chunk 1010..1039 as 20 + 10 rows in other batches.
  const auto alone = RunCall(isa, cache, shape, {{0}, {2600}, {1}}, &two, /*check_ref=*/false);
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), a.end() - width));
  const auto first = RunCall(isa, cache, shape, {{2, 0}, {1200, 1030}, {1, 20}}, &two, false);
  const auto second = RunCall(isa, cache, shape, {{0}, {1040}, {10}}, &three, false);
  EXPECT_TRUE(std::equal(first.begin() + width, first.end(), a.begin()));
  EXPECT_TRUE(std::equal(second.begin(), second.end(), a.begin() + 20 * width));
  // Position 1039 as a decode row (its partitions are separate items) equals it inside a
  // prefill tile (partitions folded in one item).
  const auto decode = RunCall(isa, cache, shape, {{0}, {1040}, {1}}, &two, false);
  EXPECT_TRUE(std::equal(decode.begin(), decode.end(), a.begin() + 29 * width));
  // With many decode rows an item folds its row's partitions itself (no split items): the same
  // bits as the split row alone.
  const Call many{std::vector<int32_t>(12, 0), std::vector<int32_t>(12, 2600),
                  std::vector<int32_t>(12, 1)};
  for (ThreadPool* pool : {&two, &three}) {
    const auto folded = RunCall(isa, cache, shape, many, pool, /*check_ref=*/false);
    for (int r = 0; r < 12; ++r) {
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), folded.begin() + r * width)) << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndCacheTypes, AttentionTest,
                         ::testing::Combine(::testing::ValuesIn(testing::SupportedVectorIsas()),
                                            ::testing::Values(DType::kF32, DType::kF16,
                                                              DType::kBF16, DType::kI8)),
                         [](const auto& info) {
                           return std::string(IsaName(std::get<0>(info.param))) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

TEST(WriteKvTest, StoresConvertedRowsAndSkipsNegativeSlots) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    const int64_t row = 2 * 3;  // 2 KV heads x head_dim 3
    const int64_t num_slots = 4 * 2;
    std::vector<uint8_t> k(num_slots * row * 4, 0xAB), v(num_slots * row * 4, 0xCD);
    PagedKvLayer layer{k.data(), v.data(), dtype, 4, 2, 2, 3};  // no kI8 here (below)
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

// The fused RoPE + KV store equals RopeNeox on q and k then WriteKv, bit for bit, for a fused
// [T, q + 2 kv] projection output, with padding rows and on any thread count.
TEST(RopeStoreKvTest, EqualsRopeThenWriteKv) {
  for (Isa isa : testing::SupportedVectorIsas()) {
    for (DType dtype : {DType::kF32, DType::kF16, DType::kI8}) {
      const int32_t heads = 14, kv_heads = 2, hd = 64, tokens = 21;
      const int64_t q_dim = heads * hd, kv_dim = kv_heads * hd, width = q_dim + 2 * kv_dim;
      std::vector<float> qkv(tokens * width), cos_sin(tokens * hd);
      std::mt19937 rng(5);
      std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
      for (float& x : qkv) x = dist(rng);
      std::vector<int32_t> positions(tokens);
      for (int32_t t = 0; t < tokens; ++t) positions[t] = 100 + 7 * t;
      RopeCosSin(positions.data(), tokens, hd, 1e6f, cos_sin.data());
      std::vector<int64_t> slots(tokens);
      for (int32_t t = 0; t < tokens; ++t) slots[t] = t % 4 == 3 ? -1 : 2 * t + 1;
      const int64_t num_slots = 2 * tokens + 2;
      const int64_t elem = dtype == DType::kF32 ? 4 : dtype == DType::kI8 ? 1 : 2;
      auto make = [&](std::vector<uint8_t>* k, std::vector<uint8_t>* v, std::vector<uint16_t>* ks,
                      std::vector<uint16_t>* vs) {
        k->assign(num_slots * kv_dim * elem, 0);
        v->assign(num_slots * kv_dim * elem, 0);
        ks->assign(num_slots * kv_heads, 0);
        vs->assign(num_slots * kv_heads, 0);
        return PagedKvLayer{k->data(), v->data(), dtype,      num_slots, 1,
                            kv_heads,  hd,        ks->data(), vs->data()};
      };
      std::vector<uint8_t> wk, wv;
      std::vector<uint16_t> wks, wvs;
      const PagedKvLayer want_layer = make(&wk, &wv, &wks, &wvs);
      std::vector<float> want_q(tokens * q_dim), k(tokens * kv_dim), v(tokens * kv_dim);
      for (int32_t t = 0; t < tokens; ++t) {
        std::memcpy(want_q.data() + t * q_dim, qkv.data() + t * width, q_dim * 4);
        std::memcpy(k.data() + t * kv_dim, qkv.data() + t * width + q_dim, kv_dim * 4);
        std::memcpy(v.data() + t * kv_dim, qkv.data() + t * width + q_dim + kv_dim, kv_dim * 4);
      }
      RopeNeox(isa, want_q.data(), cos_sin.data(), tokens, heads, hd);
      RopeNeox(isa, k.data(), cos_sin.data(), tokens, kv_heads, hd);
      WriteKv(want_layer, k.data(), v.data(), slots.data(), tokens);
      ThreadPool two(2), three(3);
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two, &three}) {
        std::vector<uint8_t> gk, gv;
        std::vector<uint16_t> gks, gvs;
        const PagedKvLayer layer = make(&gk, &gv, &gks, &gvs);
        std::vector<float> q(tokens * q_dim);
        RopeStoreKv(isa, qkv.data(), qkv.data() + q_dim, qkv.data() + q_dim + kv_dim, width, width,
                    tokens, heads, cos_sin.data(), layer, slots.data(), q.data(), pool);
        EXPECT_EQ(q, want_q) << IsaName(isa);
        EXPECT_EQ(gk, wk);
        EXPECT_EQ(gv, wv);
        EXPECT_EQ(gks, wks);
        EXPECT_EQ(gvs, wvs);
      }
    }
  }
}

// int8 rows: one binary16 scale per slot and head (at KvScaleIndex), max|x| / 127; every element
// within half a step of its input; the padding slot untouched; the optimized and reference
// writers agree.
TEST(WriteKvTest, Int8StoresScaledRowsPerSlotAndHead) {
  const int64_t heads = 2, hd = 40, row = heads * hd, num_slots = 4 * 2;
  std::vector<float> kin(3 * row), vin(3 * row);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-5.0f, 5.0f);
  for (float& x : kin) x = dist(rng);
  for (float& x : vin) x = 0.01f * dist(rng);
  for (int64_t i = 0; i < hd; ++i) kin[2 * row + hd + i] = 0;  // an all-zero head row
  const std::vector<int64_t> slots = {5, -1, 0};
  std::vector<int8_t> k[2], v[2];
  std::vector<uint16_t> ks[2], vs[2];
  for (int impl = 0; impl < 2; ++impl) {
    k[impl].assign(num_slots * row, 99), v[impl].assign(num_slots * row, 99);
    ks[impl].assign(num_slots * heads, 0x1234), vs[impl].assign(num_slots * heads, 0x1234);
    PagedKvLayer layer{k[impl].data(),  v[impl].data(), DType::kI8, 4, 2, 2, hd,
                       ks[impl].data(), vs[impl].data()};
    (impl == 0 ? WriteKv : ref::WriteKv)(layer, kin.data(), vin.data(), slots.data(), 3);
    for (int64_t slot = 0; slot < num_slots; ++slot) {
      const int64_t src = slot == 5 ? 0 : slot == 0 ? 2 : -1;
      for (int64_t h = 0; h < heads; ++h) {
        if (src < 0) {
          EXPECT_EQ(ks[impl][KvScaleIndex(layer, slot, h)], 0x1234)
              << "slot " << slot << " was written";
          EXPECT_EQ(k[impl][slot * row + h * hd], 99);
          continue;
        }
        for (bool value : {false, true}) {
          const float* x = (value ? vin : kin).data() + src * row + h * hd;
          float amax = 0;
          for (int64_t d = 0; d < hd; ++d) amax = std::max(amax, std::fabs(x[d]));
          const float scale = Fp16ToF32((value ? vs : ks)[impl][KvScaleIndex(layer, slot, h)]);
          EXPECT_EQ(scale, Fp16ToF32(F32ToFp16(amax / 127.0f)));
          for (int64_t d = 0; d < hd; ++d) {
            const float got = ref::LoadKv(layer, value, slot, h, d);
            EXPECT_LE(std::fabs(got - x[d]), 0.5f * scale + 1e-3f * amax) << d;
          }
        }
      }
    }
  }
  EXPECT_EQ(k[0], k[1]);
  EXPECT_EQ(v[0], v[1]);
  EXPECT_EQ(ks[0], ks[1]);
  EXPECT_EQ(vs[0], vs[1]);
}

}  // namespace
}  // namespace tinyserve::kernels
