// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html):
// GUARDED_BY says which mutex protects a field, REQUIRES which one a function expects held,
// ACQUIRE/RELEASE what a function locks or unlocks. CI's clang 14 pass (-Wthread-safety -Werror:
// clang-tidy over src/, scripts/check_tidy.sh) checks every access against them; other
// compilers see nothing. Use them with util/mutex.h (libstdc++'s std::mutex is not annotated).
// Macros only; no state.
#pragma once

#if defined(__clang__)
#define TS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) TS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY TS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) TS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) TS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) TS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) TS_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) TS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) TS_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) TS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) TS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) TS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) TS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) TS_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) TS_THREAD_ANNOTATION(lock_returned(x))
// For the rare function whose locking the analysis cannot follow; say why beside each use.
#define NO_THREAD_SAFETY_ANALYSIS TS_THREAD_ANNOTATION(no_thread_safety_analysis)
