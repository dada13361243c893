#include "util/split_over_threads.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace tinyserve {
namespace {

// Every item is visited exactly once, by the part whose range holds it, and the ranges are
// contiguous and in part order, for more parts than items too.
TEST(SplitOverThreadsTest, RangesCoverEveryItemOnceInPartOrder) {
  for (int64_t n : {0, 1, 5, 16, 1000}) {
    for (int64_t parts : {1, 2, 3, 7, 16}) {
      std::vector<std::atomic<int>> visits(n);
      std::vector<int64_t> begins(parts, -1), ends(parts, -1);
      SplitOverThreads(n, parts, [&](int64_t part, int64_t begin, int64_t end) {
        begins[part] = begin;
        ends[part] = end;
        for (int64_t i = begin; i < end; ++i) visits[i].fetch_add(1);
      });
      EXPECT_EQ(begins[0], 0);
      EXPECT_EQ(ends[parts - 1], n);
      for (int64_t p = 1; p < parts; ++p) EXPECT_EQ(begins[p], ends[p - 1]) << n << " " << parts;
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(visits[i].load(), 1) << i;
    }
  }
}

// Part 0 runs on the caller's thread and the others on threads of their own.
TEST(SplitOverThreadsTest, PartZeroRunsOnTheCallingThread) {
  std::vector<std::thread::id> ids(4);
  SplitOverThreads(8, 4,
                   [&](int64_t part, int64_t, int64_t) { ids[part] = std::this_thread::get_id(); });
  EXPECT_EQ(ids[0], std::this_thread::get_id());
  for (int p = 1; p < 4; ++p) EXPECT_NE(ids[p], std::this_thread::get_id());
}

TEST(SplitOverThreadsTest, SmallWorkStaysOnOneThread) {
  EXPECT_EQ(LoadThreadsFor(1000, (1 << 20) - 1), 1);
  EXPECT_EQ(LoadThreadsFor(1, 1 << 30), 1);  // never more threads than items
  const int64_t cores = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
  EXPECT_EQ(LoadThreadsFor(1000, 1 << 20), cores);
}

}  // namespace
}  // namespace tinyserve
