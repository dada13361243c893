#include "engine/block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace tinyserve {
namespace {

std::vector<int32_t> Iota(int n, int start = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(BlockManagerTest, AllocateAndFreeKeepCountsConsistent) {
  BlockManager bm(10, 4, /*enable_prefix_caching=*/true);
  BlockTable a, b;
  ASSERT_TRUE(bm.Allocate(&a, {}, 9));   // 3 blocks
  ASSERT_TRUE(bm.Allocate(&b, {}, 16));  // 4 blocks
  EXPECT_EQ(bm.num_free_blocks(), 3);
  EXPECT_FALSE(bm.Allocate(&a, {}, 9 + 16));  // needs 4 more: refused, nothing changes
  EXPECT_EQ(a.blocks.size(), 3u);
  const BlockTable* tables[] = {&a, &b};
  EXPECT_TRUE(bm.CheckInvariants(tables).ok());
  bm.Free(&a);
  bm.Free(&b);
  EXPECT_EQ(bm.num_free_blocks(), 10);
  EXPECT_TRUE(bm.CheckInvariants({}).ok());
}

TEST(BlockManagerTest, PrefixHitSharesFullBlocksAndLeavesOneTokenToCompute) {
  BlockManager bm(16, 4, true);
  std::vector<int32_t> tokens = Iota(12);
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(&a, {}, 12));
  bm.RegisterComputed(&a, tokens, 12, "");
  // Same 12 tokens: at most 2 blocks (8 tokens) may be reused so the last token is computed.
  std::vector<int32_t> hit = bm.FindCachedPrefix(tokens, "");
  ASSERT_EQ(hit.size(), 2u);
  EXPECT_EQ(hit[0], a.blocks[0]);
  EXPECT_EQ(hit[1], a.blocks[1]);
  // 13 tokens sharing the first 12: all three blocks.
  std::vector<int32_t> longer = Iota(13);
  EXPECT_EQ(bm.FindCachedPrefix(longer, "").size(), 3u);
  // A different salt or a different first block misses.
  EXPECT_TRUE(bm.FindCachedPrefix(longer, "tenant-b").empty());
  std::vector<int32_t> other = longer;
  other[0] = 99;
  EXPECT_TRUE(bm.FindCachedPrefix(other, "").empty());
  // Sharing increments the reference counts.
  BlockTable b;
  auto cached = bm.FindCachedPrefix(longer, "");
  ASSERT_TRUE(bm.Allocate(&b, cached, 13));
  EXPECT_EQ(b.blocks.size(), 4u);
  const BlockTable* tables[] = {&a, &b};
  EXPECT_TRUE(bm.CheckInvariants(tables).ok());
  bm.Free(&a);
  bm.Free(&b);
  EXPECT_TRUE(bm.CheckInvariants({}).ok());
}

TEST(BlockManagerTest, FreedCachedBlocksAreReusedLeastRecentlyUsedFirst) {
  BlockManager bm(4, 2, true);
  std::vector<int32_t> t1 = {1, 2, 3, 4, 5};
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(&a, {}, 4));
  bm.RegisterComputed(&a, t1, 4, "");
  bm.Free(&a);
  // Cached but free: still a hit.
  EXPECT_EQ(bm.FindCachedPrefix(t1, "").size(), 2u);
  // Taking 3 of the 4 free blocks evicts uncached blocks first, then the cached tail block.
  BlockTable b;
  ASSERT_TRUE(bm.Allocate(&b, {}, 6));
  auto hit = bm.FindCachedPrefix(t1, "");
  EXPECT_EQ(hit.size(), 1u);  // the first block of t1 survived
  bm.Free(&b);
  EXPECT_TRUE(bm.CheckInvariants({}).ok());
}

TEST(BlockManagerTest, ReusedBlockNoLongerMatchesItsOldContent) {
  BlockManager bm(2, 2, true);
  std::vector<int32_t> t1 = {1, 2, 3, 4, 5};
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(&a, {}, 4));
  bm.RegisterComputed(&a, t1, 4, "");
  bm.Free(&a);
  BlockTable b;
  std::vector<int32_t> t2 = {7, 8, 9, 10, 11};
  ASSERT_TRUE(bm.Allocate(&b, {}, 4));  // evicts both
  bm.RegisterComputed(&b, t2, 4, "");
  EXPECT_TRUE(bm.FindCachedPrefix(t1, "").empty());
  EXPECT_EQ(bm.FindCachedPrefix(t2, "").size(), 2u);
  bm.Free(&b);
}

TEST(BlockManagerTest, DisabledPrefixCachingNeverHits) {
  BlockManager bm(8, 2, false);
  std::vector<int32_t> t = Iota(7);
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(&a, {}, 6));
  bm.RegisterComputed(&a, t, 6, "");
  EXPECT_TRUE(bm.FindCachedPrefix(t, "").empty());
  bm.Free(&a);
}

}  // namespace
}  // namespace tinyserve
