// Process-wide glibc malloc settings for a long-running server (issue 17's soak).
// Thread-safety: call ConfigureMalloc once at startup, before other threads exist.
#pragma once

#include <cstddef>

namespace tinyserve {

// Allocations of at least this many bytes are served by mmap and returned to the OS on free.
inline constexpr size_t kMallocMmapThreshold = size_t{1} << 20;

// Fixes glibc's mmap threshold at kMallocMmapThreshold (see malloc_tuning.cc for why). A no-op
// where the C library is not glibc.
void ConfigureMalloc();

}  // namespace tinyserve
