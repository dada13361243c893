#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>
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

// Every chunk runs exactly once whatever the thread count, and each call's `next` is the chunk
// that thread runs next (checked from the order each thread saw), never one another thread ran.
TEST(ThreadPoolTest, ParallelForDynamicRunsEveryChunkOnceAndNamesTheThreadsNextChunk) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 5, 64, 1000}) {
      std::vector<std::atomic<int>> seen(n);
      std::vector<std::vector<std::pair<int64_t, int64_t>>> order(threads);
      pool.ParallelForDynamic(n, [&](int64_t c, int64_t next, int t) {
        seen[c].fetch_add(1);
        order[t].push_back({c, next});
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << "n=" << n << " i=" << i;
      for (const auto& calls : order) {
        for (size_t i = 0; i < calls.size(); ++i) {
          const int64_t next = calls[i].second;
          if (next < 0) continue;
          ASSERT_LT(i + 1, calls.size()) << "n=" << n << ": a named next chunk never ran";
          EXPECT_EQ(calls[i + 1].first, next) << "n=" << n;
        }
        for (size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].first, calls[i - 1].first);
      }
    }
  }
}

// A thread that is held up takes fewer chunks: the others run the rest meanwhile.
TEST(ThreadPoolTest, ParallelForDynamicLetsOtherThreadsTakeTheChunksOfAStalledOne) {
  ThreadPool pool(2);
  constexpr int64_t kChunks = 100;
  std::atomic<int64_t> done{0};
  std::vector<int> ran_by(kChunks, -1);
  bool stalled = false;  // thread 0's only
  pool.ParallelForDynamic(kChunks, [&](int64_t c, int64_t, int t) {
    ran_by[c] = t;
    // The caller (thread 0) waits in its first chunk until the worker has run every chunk but
    // the two the caller may hold (that one and the next it claimed ahead).
    if (t == 0 && !stalled) {
      stalled = true;
      while (done.load() < kChunks - 2) std::this_thread::yield();
    }
    done.fetch_add(1);
  });
  EXPECT_LE(std::count(ran_by.begin(), ran_by.end(), 0), 2);
  EXPECT_GE(std::count(ran_by.begin(), ran_by.end(), 1), kChunks - 2);
  EXPECT_EQ(std::count(ran_by.begin(), ran_by.end(), -1), 0);
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
