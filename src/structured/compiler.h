// Entry point of structured output: a request's constraint (kind + text) -> CompiledGrammar,
// with limits and a thread-safe bounded LRU cache. Call from HTTP threads (never the engine
// thread: compiling may take milliseconds); the result is shared read-only with matchers.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "structured/compile_gate.h"
#include "structured/compiled_grammar.h"
#include "structured/grammar.h"
#include "structured/vocabulary.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve::structured {

enum class GrammarKind {
  kJsonSchema,  // text: a JSON Schema
  kJsonObject,  // text ignored: any JSON object
  kRegex,       // text: a pattern the whole output must match
  kChoice,      // text: a JSON array of strings; the output is one of them
  kGbnf,        // text: a llama.cpp GBNF grammar
  kToolCalls,   // text: tool-call spec, see tool_calls.h ToolCallGrammarSpec
};

std::string_view GrammarKindName(GrammarKind kind);

struct CompileOptions {
  GrammarLimits limits;
  int32_t max_schema_depth = 32;
  size_t max_text_bytes = 256 * 1024;
  // Compilation (parse + automaton) must finish in this time or fails.
  std::chrono::milliseconds time_limit{2000};
  // After compiling, every per-state token set is precomputed within this work (vocabulary-trie
  // nodes visited, ~6 ns each on one quiet Zen 4 core) and size, or the grammar is rejected: the
  // engine thread never computes them. Ordinary schemas need up to ~75M (a string with
  // maxLength 200 in the stress test's support_ticket: workload_schemas_test prints each), so
  // 256M (~1.5 s of one HTTP worker) leaves them a 3x margin while bounding what one hostile
  // grammar costs. The time is only a safety net against a starved machine.
  int64_t max_precompute_work = 256'000'000;
  size_t max_grammar_bytes = size_t{64} << 20;
  std::chrono::milliseconds warm_time{30000};
  // False: no precompute, sets computed on first use (offline tools whose walks visit a few
  // states; never the server, whose engine thread must not compute them).
  bool precompute = true;
};

// Text -> grammar (no vocabulary). Errors are InvalidArgument with a message for the client.
[[nodiscard]] StatusOr<Grammar> CompileToGrammar(GrammarKind kind, std::string_view text,
                                                 const CompileOptions& options = {});
[[nodiscard]] StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGrammar(
    GrammarKind kind, std::string_view text, std::shared_ptr<const Vocabulary> vocab,
    const CompileOptions& options = {});

// How many misses GrammarCache compiles at once and what failures it remembers.
struct GrammarCacheLimits {
  // Compiles run on HTTP workers and each may take seconds of CPU (the 2 s time limit plus the
  // precompute budget): past this many at once the others wait, so hostile grammars cannot take
  // every core from the engine and the other requests. Half the cores by default.
  int32_t max_concurrent_compiles =
      std::max(1, static_cast<int32_t>(std::thread::hardware_concurrency() / 2));
  // A miss waiting for a compile slot longer than this fails with Unavailable (503). 10 s is a
  // few worst-case compiles (~2 s compile + ~1.5 s precompute each) per slot: a legitimate schema
  // queued behind a burst of hostile ones still compiles, while a flood gets answers instead of
  // holding its HTTP workers for as long as the queue grows.
  std::chrono::milliseconds max_compile_wait{10000};
  // Failures that depend only on (kind, text), returned again without compiling: a repeated
  // hostile text costs a lookup. Keys can be 256 KiB, hence the byte bound too.
  size_t max_failures = 1024;
  size_t max_failure_bytes = size_t{16} << 20;
};

// Compiled grammars keyed by (kind, text), least recently used evicted when the entries exceed
// `capacity` or their bytes (CompiledGrammar::memory_bytes plus the key) exceed `max_bytes`.
// A miss compiles at most once at a time per key (later requests for it wait for that result),
// within GrammarCacheLimits' concurrency gate; its deterministic failures (every error but
// IsTimeLimitError) are remembered in a second, bounded LRU. Thread-safe.
class GrammarCache {
 public:
  struct Stats {
    int64_t hits = 0, misses = 0, errors = 0;  // misses: compiles run; errors: those that failed
    int64_t failure_hits = 0;   // requests answered a remembered failure, without compiling
    int64_t shared = 0;         // requests that waited for the same text's compile in flight
    int64_t gate_waits = 0;     // misses that waited for a compile slot
    int64_t gate_refusals = 0;  // misses refused (Unavailable) after max_compile_wait
    int32_t peak_compiles = 0;  // most compiles seen running at once
    double compile_seconds = 0;
  };

  using Result = StatusOr<std::shared_ptr<const CompiledGrammar>>;

  static constexpr size_t kDefaultMaxBytes = size_t{256} << 20;

  GrammarCache(std::shared_ptr<const Vocabulary> vocab, size_t capacity,
               CompileOptions options = {}, size_t max_bytes = kDefaultMaxBytes,
               GrammarCacheLimits limits = {});
  virtual ~GrammarCache() = default;

  // The grammar, or InvalidArgument (the text is refused; the message is for the client), or
  // Unavailable (no compile slot within max_compile_wait; the text may be fine). `client` names
  // who asks: misses waiting for a slot get it client by client (CompileGate).
  [[nodiscard]] Result Get(GrammarKind kind, std::string_view text, std::string_view client = "");
  Stats stats() const;
  size_t size() const;
  size_t bytes() const;

 protected:
  // Compiles one miss, outside the lock (a virtual seam: tests hold a compile slot with it).
  [[nodiscard]] virtual Result Compile(GrammarKind kind, std::string_view text);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CompiledGrammar> grammar;
    size_t bytes;
  };
  struct Failure {
    std::string key;
    Status status;
    size_t bytes;
  };
  // A compile in progress; the requests that share it wait until `result` is set.
  struct Flight {
    std::optional<Result> result;  // guarded by the cache's mu_
  };
  // A cached grammar or failure for `key`, or the result of its compile in flight (waited for).
  std::optional<Result> LookupLocked(const std::string& key) REQUIRES(mu_);
  // Takes a compile slot in `client`'s turn, waiting up to max_compile_wait; Unavailable when
  // none came to it.
  [[nodiscard]] Status AcquireSlotLocked(std::string_view client) REQUIRES(mu_);
  // Keeps a compiled grammar, or a failure that does not depend on the load.
  void StoreLocked(std::string key, const Result& result) REQUIRES(mu_);
  void EvictLocked() REQUIRES(mu_);
  std::shared_ptr<const Vocabulary> vocab_;
  size_t capacity_;
  size_t max_bytes_;
  size_t bytes_ GUARDED_BY(mu_) = 0;  // sum of the entries' bytes
  CompileOptions options_;
  GrammarCacheLimits limits_;
  mutable Mutex mu_;
  // Signalled when a compile ends: it frees a slot and completes a flight. Waiters are few (at
  // most one per HTTP worker) and each re-check is a counter or a flag, so all are woken.
  CondVar cv_;
  std::list<Entry> lru_ GUARDED_BY(mu_);  // front: most recent
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ GUARDED_BY(mu_);
  std::list<Failure> failures_ GUARDED_BY(mu_);  // front: most recent
  std::unordered_map<std::string, std::list<Failure>::iterator> failure_index_ GUARDED_BY(mu_);
  size_t failure_bytes_ GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_ GUARDED_BY(mu_);
  CompileGate gate_ GUARDED_BY(mu_);
  Stats stats_ GUARDED_BY(mu_);
};

}  // namespace tinyserve::structured
