#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tinyserve {
namespace {

TEST(ThreadPoolTest, RunCallsEveryThreadOnceAndWaitsForAll) {
  ThreadPool pool(3);
  for (int round = 0; round < 1000; ++round) {
    std::vector<std::atomic<int>> hits(3);
    pool.Run([&](int t) { hits[t].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

// More threads than cores: workers are descheduled while the caller waits for them, and every
// region must still complete with each thread called exactly once.
TEST(ThreadPoolTest, OversubscribedPoolCompletesEveryRegion) {
  const int num_threads = 2 * static_cast<int>(std::thread::hardware_concurrency()) + 3;
  ThreadPool pool(num_threads);
  for (int round = 0; round < 100; ++round) {
    std::vector<std::atomic<int>> hits(num_threads);
    pool.Run([&](int t) { hits[t].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(ThreadPoolTest, ParallelForCoversRangeExactlyOnceWithAlignedSplits) {
  ThreadPool pool(2);
  for (int64_t n : {1, 2, 7, 31, 32, 33, 1000}) {
    std::vector<int> seen(n, 0);
    pool.ParallelFor(n, 8, [&](int64_t b, int64_t e, int) {
      EXPECT_EQ(b % 8, 0);
      for (int64_t i = b; i < e; ++i) seen[i]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPoolTest, SingleThreadRunsInline) {
  ThreadPool pool(1);
  int calls = 0;
  pool.Run([&](int t) {
    EXPECT_EQ(t, 0);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace tinyserve
