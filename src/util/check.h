// CHECK/DCHECK for internal invariants (programming errors), never for user input: input errors
// are returned as Status. A failed CHECK prints where and why, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#define TS_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) [[unlikely]] {                                                     \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#ifdef NDEBUG
#define TS_DCHECK(cond) \
  do {                  \
  } while (false && (cond))
#else
#define TS_DCHECK(cond) TS_CHECK(cond)
#endif
