// Software prefetch that the compiler keeps. GCC 12 may delete a loop whose only effect is
// __builtin_prefetch (or _mm_prefetch): attention.cc's per-step burst of requests along a
// sequence's block table compiled to no instruction at all, unseen for several sessions of
// measurements (a reduced case, a struct method looping over computed line indexes, loses its
// prefetches at -O2 too). As inline asm the request is an instruction the compiler must emit.
#pragma once

namespace tinyserve::kernels {

// Requests the cache line holding p into L2 (prefetcht1). A hint: it never faults, whatever p
// points at (past the end of a buffer, an unmapped page).
inline void PrefetchLineToL2(const void* p) {
#if defined(__x86_64__)
  __asm__ volatile("prefetcht1 (%0)" : : "r"(p));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

// count cache lines to request, at first, first + stride, ... (bytes): a read-ahead list that
// names a strided run of lines in one entry (attention.cc lists each step's rows so).
struct LineRun {
  const char* first = nullptr;
  int64_t stride = 0;
  int32_t count = 0;
};

// Requests every line of runs[0, n) into L2.
inline void PrefetchRunsToL2(const LineRun* runs, int32_t n) {
  for (int32_t r = 0; r < n; ++r) {
    const char* p = runs[r].first;
    for (int32_t i = 0; i < runs[r].count; ++i, p += runs[r].stride) PrefetchLineToL2(p);
  }
}

}  // namespace tinyserve::kernels
