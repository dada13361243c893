#include "util/malloc_tuning.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tinyserve {
namespace {

// The sanitizers replace malloc, so glibc's settings and counters do not apply under them.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TINYSERVE_SANITIZED_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TINYSERVE_SANITIZED_MALLOC 1
#endif

#if defined(__GLIBC__) && !defined(TINYSERVE_SANITIZED_MALLOC)
size_t MmappedBlocks() { return mallinfo2().hblks; }

void* Touch(size_t bytes) {
  void* p = std::malloc(bytes);
  EXPECT_NE(p, nullptr);
  std::memset(p, 1, bytes);
  return p;
}

// The soak's pattern: once a large block has been freed, glibc's default rule would raise the
// mmap threshold to its size and serve the next large body from the arenas, where it stays
// resident after free. Fixed, a large block is mmap'd however many came before, and a
// sampler-sized one (600 KiB) is not.
TEST(MallocTuningTest, LargeBlocksStayMmappedAfterALargerOneWasFreed) {
  ConfigureMalloc();
  std::free(Touch(8 << 20));
  size_t before = MmappedBlocks();
  void* body = Touch(2 << 20);
  EXPECT_EQ(MmappedBlocks(), before + 1);
  void* scratch = Touch(600 << 10);
  EXPECT_EQ(MmappedBlocks(), before + 1);
  std::free(scratch);
  std::free(body);
  EXPECT_EQ(MmappedBlocks(), before);
}
#else
TEST(MallocTuningTest, LargeBlocksStayMmappedAfterALargerOneWasFreed) {
  GTEST_SKIP() << "skipped: glibc malloc only (ASan and TSan replace malloc)";
}
#endif

}  // namespace
}  // namespace tinyserve
