// GrammarCache under hostile and concurrent load: the compile gate, single flight and the cache of
// failures. Compiles are held open by a test subclass, never timed, so each test is deterministic.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "structured/compiler.h"
#include "structured/test_byte_vocab.h"
#include "util/mutex.h"

namespace tinyserve::structured {
namespace {

using testing::ByteVocab;
using Result = GrammarCache::Result;

// Compiles of texts starting with "hold" block until Release(), keeping their slot and flight.
class HeldCache : public GrammarCache {
 public:
  HeldCache(GrammarCacheLimits limits, CompileOptions options = {})
      : GrammarCache(ByteVocab(), /*capacity=*/16, options, kDefaultMaxBytes, limits) {}

  // Returns once `n` held compiles are running.
  void WaitUntilHeld(int n) {
    MutexLock lock(&mu_);
    while (held_ < n) cv_.Wait(&mu_);
  }
  void Release() {
    MutexLock lock(&mu_);
    released_ = true;
    cv_.NotifyAll();
  }
  int compiles() const {
    MutexLock lock(&mu_);
    return compiles_;
  }
  // The texts compiled, in the order their compiles started.
  std::vector<std::string> order() const {
    MutexLock lock(&mu_);
    return order_;
  }

 protected:
  Result Compile(GrammarKind kind, std::string_view text) override {
    {
      MutexLock lock(&mu_);
      ++compiles_;
      order_.emplace_back(text);
      if (text.rfind("hold", 0) == 0) {
        ++held_;
        cv_.NotifyAll();
        while (!released_) cv_.Wait(&mu_);
      }
    }
    return GrammarCache::Compile(kind, text);
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  int held_ GUARDED_BY(mu_) = 0;
  int compiles_ GUARDED_BY(mu_) = 0;
  std::vector<std::string> order_ GUARDED_BY(mu_);
  bool released_ GUARDED_BY(mu_) = false;
};

GrammarCacheLimits OneSlot(std::chrono::milliseconds wait) {
  GrammarCacheLimits limits;
  limits.max_concurrent_compiles = 1;
  limits.max_compile_wait = wait;
  return limits;
}

// Spins (no sleep) until the cache's stats satisfy `done`: for a thread that must be parked in
// the cache before the test goes on.
template <typename Pred>
void AwaitStats(const GrammarCache& cache, Pred done) {
  while (!done(cache.stats())) std::this_thread::yield();
}

// A compile that throws (bad_alloc) answers an error and gives its slot and flight back: with
// one slot, the next miss still compiles, and the same text is looked up afresh (before, the
// slot stayed taken and a later request for that text waited on its flight for good).
class ThrowingCache : public GrammarCache {
 public:
  ThrowingCache()
      : GrammarCache(ByteVocab(), /*capacity=*/4, {}, kDefaultMaxBytes,
                     OneSlot(std::chrono::milliseconds(60000))) {}

 protected:
  Result Compile(GrammarKind kind, std::string_view text) override {
    if (text == "throw") throw std::bad_alloc();
    return GrammarCache::Compile(kind, text);
  }
};

TEST(GrammarCacheTest, CompileThatThrowsFreesItsSlotAndFlight) {
  ThrowingCache cache;
  const Result thrown = cache.Get(GrammarKind::kRegex, "throw");
  ASSERT_FALSE(thrown.ok());
  EXPECT_EQ(thrown.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "a+").ok());
  // Not remembered (it may not happen again): the same text compiles, and throws, once more.
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, "throw").ok());
  EXPECT_EQ(cache.stats().misses, 3);
}

TEST(GrammarCacheTest, RepeatedDeterministicFailureIsAnsweredWithoutCompiling) {
  GrammarCache cache(ByteVocab(), /*capacity=*/4);
  const Result first = cache.Get(GrammarKind::kRegex, "(");
  const Result again = cache.Get(GrammarKind::kRegex, "(");
  ASSERT_FALSE(first.ok());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(first.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(again.status().ToString(), first.status().ToString());
  // Same text, other kind: its own key.
  EXPECT_TRUE(cache.Get(GrammarKind::kChoice, R"(["("])").ok());
  const GrammarCache::Stats s = cache.stats();
  EXPECT_EQ(s.misses, 2);
  EXPECT_EQ(s.errors, 1);
  EXPECT_EQ(s.failure_hits, 1);
}

TEST(GrammarCacheTest, PrecomputeBudgetFailureIsRemembered) {
  // The audit's "[^a]{1000}[^b]{1000}" fails on this budget after seconds of CPU: the budget
  // counts work, not time, so the failure is the same on any machine.
  CompileOptions options;
  options.max_precompute_work = 1;
  GrammarCache cache(ByteVocab(), /*capacity=*/4, options);
  for (int i = 0; i < 3; ++i) {
    const Result r = cache.Get(GrammarKind::kRegex, "[^a]{10}[^b]{10}");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("vocabulary-trie steps"), std::string::npos)
        << r.status().ToString();
  }
  EXPECT_EQ(cache.stats().misses, 1);
  EXPECT_EQ(cache.stats().failure_hits, 2);
}

TEST(GrammarCacheTest, TimeLimitFailureIsNotRemembered) {
  CompileOptions options;
  options.limits.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  GrammarCache cache(ByteVocab(), /*capacity=*/4, options);
  for (int i = 0; i < 2; ++i) {
    const Result r = cache.Get(GrammarKind::kRegex, "a+");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(IsTimeLimitError(r.status())) << r.status().ToString();
  }
  // A legit text that timed out on a loaded machine must be able to compile later.
  EXPECT_EQ(cache.stats().misses, 2);
  EXPECT_EQ(cache.stats().failure_hits, 0);
}

TEST(GrammarCacheTest, RememberedFailuresAreBoundedByCountAndBytes) {
  GrammarCacheLimits limits;
  limits.max_failures = 2;
  limits.max_failure_bytes = 1000;
  GrammarCache cache(ByteVocab(), /*capacity=*/4, {}, GrammarCache::kDefaultMaxBytes, limits);
  for (const char* text : {"(", "((", "((("})
    EXPECT_FALSE(cache.Get(GrammarKind::kRegex, text).ok());
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, "(((").ok());  // kept
  EXPECT_EQ(cache.stats().misses, 3);
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, "(").ok());  // the least recent, evicted
  EXPECT_EQ(cache.stats().misses, 4);
  // A failure larger than the byte bound on its own is not kept.
  const std::string big = "(" + std::string(2000, 'a');
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, big).ok());
  EXPECT_FALSE(cache.Get(GrammarKind::kRegex, big).ok());
  EXPECT_EQ(cache.stats().misses, 6);
  EXPECT_EQ(cache.stats().failure_hits, 1);
}

TEST(GrammarCacheTest, ConcurrentRequestsForOneHostileTextCompileItOnce) {
  // Whether the threads overlap (single flight) or not (the remembered failure), one compiles.
  GrammarCache cache(ByteVocab(), /*capacity=*/4);
  constexpr int kThreads = 8;
  std::vector<Result> results(kThreads, Result(InternalError("not run")));
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&cache, &results, t] { results[t] = cache.Get(GrammarKind::kRegex, "(a"); });
  }
  for (auto& th : threads) th.join();
  for (const Result& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().ToString(), results[0].status().ToString());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  const GrammarCache::Stats s = cache.stats();
  EXPECT_EQ(s.misses, 1);
  EXPECT_EQ(s.shared + s.failure_hits, kThreads - 1);
}

TEST(GrammarCacheTest, RequestForATextBeingCompiledWaitsForThatCompile) {
  HeldCache cache(GrammarCacheLimits{});
  Result first = InternalError("not run");
  std::thread compiling([&] { first = cache.Get(GrammarKind::kRegex, "hold"); });
  cache.WaitUntilHeld(1);
  Result second = InternalError("not run");
  std::thread sharing([&] { second = cache.Get(GrammarKind::kRegex, "hold"); });
  AwaitStats(cache, [](const GrammarCache::Stats& s) { return s.shared == 1; });
  cache.Release();
  compiling.join();
  sharing.join();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(cache.compiles(), 1);
  EXPECT_EQ(cache.stats().hits, 0);
}

TEST(GrammarCacheTest, MissBeyondTheCompileSlotsIsRefusedAfterTheWait) {
  HeldCache cache(OneSlot(std::chrono::milliseconds(0)));
  std::thread holder([&] { EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold").ok()); });
  cache.WaitUntilHeld(1);
  const Result refused = cache.Get(GrammarKind::kRegex, "b+");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("too many grammar compilations"), std::string::npos)
      << refused.status().ToString();
  // Hits never wait for a slot, and a refusal is not remembered: the text may be fine.
  cache.Release();
  holder.join();
  EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold").ok());
  EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "b+").ok());
  const GrammarCache::Stats s = cache.stats();
  EXPECT_EQ(s.gate_waits, 1);
  EXPECT_EQ(s.gate_refusals, 1);
  EXPECT_EQ(s.misses, 2);
  EXPECT_EQ(s.hits, 1);
}

TEST(GrammarCacheTest, MissWaitsForAFreeCompileSlot) {
  HeldCache cache(OneSlot(std::chrono::minutes(10)));
  std::thread holder([&] { EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold").ok()); });
  cache.WaitUntilHeld(1);
  Result waited = InternalError("not run");
  std::thread waiter([&] { waited = cache.Get(GrammarKind::kRegex, "b+"); });
  AwaitStats(cache, [](const GrammarCache::Stats& s) { return s.gate_waits == 1; });
  EXPECT_EQ(cache.compiles(), 1);  // "b+" is parked at the gate, not compiling
  cache.Release();
  holder.join();
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(cache.stats().gate_refusals, 0);
  EXPECT_EQ(cache.stats().peak_compiles, 1);
}

// Misses waiting for the one slot get it client by client: a client's second miss waits behind
// another client's first, whatever order the woken threads take the lock in, and the client
// whose compile held the slot waits behind the one that has not had it.
TEST(GrammarCacheTest, WaitingMissesGetTheSlotOneClientAtATime) {
  HeldCache cache(OneSlot(std::chrono::minutes(10)));
  std::thread holder([&] { EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold", "flood").ok()); });
  cache.WaitUntilHeld(1);
  std::vector<std::thread> waiters;
  const std::pair<const char*, const char*> misses[] = {
      {"a{1}", "flood"}, {"a{2}", "flood"}, {"a{3}", "flood"}, {"b{1}", "user"}};
  for (const auto& miss : misses) {
    waiters.emplace_back([&cache, text = miss.first, client = miss.second] {
      EXPECT_TRUE(cache.Get(GrammarKind::kRegex, text, client).ok());
    });
    // Parked at the gate before the next one comes.
    const int64_t parked = static_cast<int64_t>(waiters.size());
    AwaitStats(cache, [parked](const GrammarCache::Stats& s) { return s.gate_waits == parked; });
  }
  cache.Release();
  holder.join();
  for (auto& w : waiters) w.join();
  EXPECT_EQ(cache.order(), (std::vector<std::string>{"hold", "b{1}", "a{1}", "a{2}", "a{3}"}));
}

TEST(GrammarCacheTest, CompilesUpToTheLimitRunAtOnce) {
  GrammarCacheLimits limits;
  limits.max_concurrent_compiles = 2;
  HeldCache cache(limits);
  std::thread a([&] { EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold1").ok()); });
  std::thread b([&] { EXPECT_TRUE(cache.Get(GrammarKind::kRegex, "hold2").ok()); });
  cache.WaitUntilHeld(2);  // both hold a slot at once
  cache.Release();
  a.join();
  b.join();
  EXPECT_EQ(cache.stats().peak_compiles, 2);
  EXPECT_EQ(cache.stats().gate_waits, 0);
}

TEST(GrammarCacheTest, OneSlotNeverRunsTwoCompiles) {
  GrammarCache cache(ByteVocab(), /*capacity=*/64, {}, GrammarCache::kDefaultMaxBytes,
                     OneSlot(std::chrono::minutes(10)));
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(cache.Get(GrammarKind::kRegex, fmt::format("x{{{}}}y{}", i + 1, t)).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  const GrammarCache::Stats s = cache.stats();
  EXPECT_EQ(s.misses, 40);
  EXPECT_EQ(s.peak_compiles, 1);
  EXPECT_EQ(s.gate_refusals, 0);
}

}  // namespace
}  // namespace tinyserve::structured
