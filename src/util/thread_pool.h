// Fork-join pool for the forward pass: Run(fn) executes fn on every thread (the caller is thread
// 0) and returns when all are done. Workers spin briefly before sleeping, because a decode step
// issues a few hundred short parallel regions and a futex wake-up per region costs more than the
// work; a caller waiting on a late (likely descheduled) worker spins briefly, then yields its
// core. Only one thread (the engine thread) may call Run at a time; fn must not call Run.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace tinyserve {

class ThreadPool {
 public:
  // num_threads counts the caller; 1 means no worker threads. Requires num_threads >= 1.
  explicit ThreadPool(int num_threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  int num_threads() const { return num_threads_; }

  // Calls fn(thread_idx) for thread_idx in [0, num_threads) concurrently; returns when all return.
  template <typename Fn>
  void Run(Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    RunImpl([](void* ctx, int thread_idx) { (*static_cast<F*>(ctx))(thread_idx); },
            const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [0, n) into num_threads contiguous ranges (multiples of `align` except the last) and
  // calls fn(begin, end, thread_idx) for each non-empty one. The split depends only on n, align
  // and num_threads, so results are reproducible.
  template <typename Fn>
  void ParallelFor(int64_t n, int64_t align, Fn&& fn) {
    if (n <= 0) return;
    const int64_t units = (n + align - 1) / align;
    if (num_threads_ == 1 || units == 1) {
      fn(int64_t{0}, n, 0);
      return;
    }
    Run([&](int t) {
      int64_t b = units * t / num_threads_ * align;
      int64_t e = units * (t + 1) / num_threads_ * align;
      if (e > n) e = n;
      if (b < e) fn(b, e, t);
    });
  }

  // Calls fn(chunk, next, thread_idx) once for every chunk in [0, num_chunks), on whichever
  // thread claims it: a thread slowed by another process or a busier core takes fewer chunks,
  // where ParallelFor's fixed split would leave the others waiting for it. `next` is the chunk
  // the same thread runs after this one, or -1 when it has none yet (a hint for prefetching). A
  // thread claims its next chunk before running the current one only while more than one chunk
  // per thread is left, so no chunk is held back at the end while another thread idles. Chunks
  // are claimed in order; fn must not make a result depend on which thread runs a chunk.
  template <typename Fn>
  void ParallelForDynamic(int64_t num_chunks, Fn&& fn) {
    if (num_chunks <= 0) return;
    if (num_threads_ == 1 || num_chunks == 1) {
      for (int64_t c = 0; c < num_chunks; ++c) fn(c, c + 1 < num_chunks ? c + 1 : -1, 0);
      return;
    }
    std::atomic<int64_t> claimed{0};
    const int64_t claim_ahead_below = num_chunks - num_threads_;
    Run([&](int t) {
      int64_t c = claimed.fetch_add(1, std::memory_order_relaxed);
      while (c < num_chunks) {
        int64_t next = -1;
        if (claimed.load(std::memory_order_relaxed) < claim_ahead_below)
          next = claimed.fetch_add(1, std::memory_order_relaxed);
        fn(c, next < num_chunks ? next : -1, t);
        c = next >= 0 ? next : claimed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }

 private:
  using Trampoline = void (*)(void*, int);
  void RunImpl(Trampoline fn, void* ctx);
  void WorkerLoop(int thread_idx);

  const int num_threads_;
  std::vector<std::thread> workers_;
  // Bumped once per Run; workers run the job when they see a new value.
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) Trampoline job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  std::atomic<bool> stop_{false};
};

}  // namespace tinyserve
