#include "util/thread_pool.h"

#include "util/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tinyserve {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// About 50-100 us of spinning: longer than the gap between two parallel regions of one step,
// far shorter than the idle time between engine steps.
constexpr int kSpinIterations = 20000;

// The caller's spin while it waits for the workers to finish a region. Past it, a worker is
// likely descheduled (another process took its core): the caller yields its core each round
// instead of burning it, which lets that worker run sooner when they share a core.
constexpr int kCallerSpinIterations = 2000;

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads) {
  TS_CHECK(num_threads >= 1);
  workers_.reserve(num_threads - 1);
  for (int t = 1; t < num_threads; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::RunImpl(Trampoline fn, void* ctx) {
  if (num_threads_ == 1) {
    fn(ctx, 0);
    return;
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  fn(ctx, 0);
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < kCallerSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::WorkerLoop(int thread_idx) {
  uint64_t seen = 0;
  while (true) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    job_fn_(job_ctx_, thread_idx);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace tinyserve
