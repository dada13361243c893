// Load-time work split over the cores with plain std::threads: weight packing and quantization
// run before the engine's thread pool exists, and they are the user's wait between starting
// tinyserve and serving. Header only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace tinyserve {

// Threads worth starting for n independent items that write `bytes` in all: one per core (at
// most 16, at most n), or one under 1 MiB, where starting threads costs more than it saves.
inline int64_t LoadThreadsFor(int64_t n, uint64_t bytes) {
  if (bytes < (uint64_t{1} << 20)) return 1;
  const int64_t cores = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
  return std::clamp<int64_t>(n, 1, cores);
}

// Runs fn(part, begin, end) for each part in [0, parts), over contiguous ranges that cover
// [0, n); part 0 on the calling thread. fn may write only what its range (or its part) owns.
template <typename Fn>
void SplitOverThreads(int64_t n, int64_t parts, Fn&& fn) {
  std::vector<std::thread> workers;
  for (int64_t p = 1; p < parts; ++p)
    workers.emplace_back([&fn, n, p, parts] { fn(p, n * p / parts, n * (p + 1) / parts); });
  fn(int64_t{0}, int64_t{0}, n / parts);
  for (std::thread& w : workers) w.join();
}

}  // namespace tinyserve
