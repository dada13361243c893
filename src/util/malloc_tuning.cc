#include "util/malloc_tuning.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tinyserve {

// Why: glibc's mmap threshold is dynamic. It starts at 128 KiB, but each time an mmap'd block is
// freed the threshold rises to that block's size (up to 32 MiB). After the first large request
// body (up to --max-request-bytes) is freed, every later body of that size is carved from the
// malloc arenas instead, and a freed body stays resident there as fragmented free space: in the
// 10-minute soak (1-3.5 MiB bodies among 12 mixed clients) malloc_info showed 162 MiB free but
// held in the arenas (8 MiB in each of 15 thread arenas, 35 MiB in the main one), RSS 336 MiB
// and rising 1.3 MiB a minute. With the threshold fixed (GLIBC_TUNABLES, same binary) the thread
// arenas held 0.1 MiB free each and RSS was 217 MiB, rising half as fast (notes/issue-17-s3.md).
// 1 MiB, not glibc's 128 KiB: the sampler allocates vocabulary-sized scratch per token (600 KiB
// for Qwen2.5's 151,936 tokens); served by mmap, each would cost ~150 page faults per token, so it
// stays in the arenas, where it is reused. Setting the threshold also keeps the trim threshold at
// its 128 KiB default (the dynamic rule doubles it too), so free space at the top of the main
// heap goes back to the OS.
void ConfigureMalloc() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThreshold));
#endif
}

}  // namespace tinyserve
