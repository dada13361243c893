#include "engine/kv_cache.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "model/dummy.h"

namespace tinyserve {
namespace {

ModelConfig Qwen05() {
  auto c = DummyPresetConfig("qwen2.5-0.5b");
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(KvCacheTest, Int8HalvesBytesPerTokenAndNearlyDoublesBlocks) {
  const ModelConfig c = Qwen05();
  // f16: 2 x 24 layers x 2 heads x 64 x 2 bytes = 12 KiB per token; int8: 64 values + a
  // binary16 scale per head row, 66 / 128 of that.
  EXPECT_EQ(KvCache::BlockBytes(c, 1, DType::kF16), 12288);
  EXPECT_EQ(KvCache::BlockBytes(c, 1, DType::kI8), 2 * 24 * 2 * 66);
  const int64_t budget = int64_t{64} << 20;
  auto f16 = KvCache::Create(c, 16, DType::kF16, budget);
  auto i8 = KvCache::Create(c, 16, DType::kI8, budget);
  ASSERT_TRUE(f16.ok() && i8.ok());
  EXPECT_EQ(f16->num_blocks(), budget / (16 * 12288));
  EXPECT_EQ(i8->num_blocks(), budget / (16 * 2 * 24 * 2 * 66));
  EXPECT_GE(static_cast<double>(i8->num_blocks()), 1.93 * static_cast<double>(f16->num_blocks()));
  EXPECT_LE(i8->bytes(), budget);
}

TEST(KvCacheTest, Int8LayersHaveDisjointValuesAndScalesInsideTheStorage) {
  const ModelConfig c = Qwen05();
  auto cache = KvCache::Create(c, 16, DType::kI8, int64_t{8} << 20);
  ASSERT_TRUE(cache.ok());
  const int64_t rows = cache->num_blocks() * 16 * c.num_kv_heads;
  const auto* begin = static_cast<const uint8_t*>(cache->layers()[0].k);
  const uint8_t* end = begin + cache->bytes();
  const uint8_t* prev_end = begin;
  for (const kernels::PagedKvLayer& l : cache->layers()) {
    EXPECT_EQ(l.dtype, DType::kI8);
    // K, V, K scales, V scales, back to back, layer after layer.
    const auto* k = static_cast<const uint8_t*>(l.k);
    const auto* v = static_cast<const uint8_t*>(l.v);
    const auto* ks = reinterpret_cast<const uint8_t*>(l.k_scale);
    const auto* vs = reinterpret_cast<const uint8_t*>(l.v_scale);
    EXPECT_EQ(k, prev_end);
    EXPECT_EQ(v, k + rows * c.head_dim);
    EXPECT_EQ(ks, v + rows * c.head_dim);
    EXPECT_EQ(vs, ks + rows * 2);
    prev_end = vs + rows * 2;
  }
  EXPECT_EQ(prev_end, end);
}

TEST(KvCacheTest, FloatCachesHaveNoScalesAndBadTypesAreRefused) {
  const ModelConfig c = Qwen05();
  auto cache = KvCache::Create(c, 16, DType::kF16, int64_t{8} << 20);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->layers()[0].k_scale, nullptr);
  EXPECT_FALSE(KvCache::Create(c, 16, DType::kQ8_0, int64_t{8} << 20).ok());
  EXPECT_FALSE(KvCache::Create(c, 16, DType::kI8, 100).ok());
}

}  // namespace
}  // namespace tinyserve
