// Entry point of structured output: a request's constraint (kind + text) -> CompiledGrammar,
// with limits and a thread-safe bounded LRU cache. Call from HTTP threads (never the engine
// thread: compiling may take milliseconds); the result is shared read-only with matchers.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

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

// Compiled grammars keyed by (kind, text), least recently used evicted when the entries exceed
// `capacity` or their bytes (CompiledGrammar::memory_bytes plus the key) exceed `max_bytes`.
// Thread-safe.
class GrammarCache {
 public:
  struct Stats {
    int64_t hits = 0, misses = 0, errors = 0;
    double compile_seconds = 0;
  };

  static constexpr size_t kDefaultMaxBytes = size_t{256} << 20;

  GrammarCache(std::shared_ptr<const Vocabulary> vocab, size_t capacity,
               CompileOptions options = {}, size_t max_bytes = kDefaultMaxBytes);

  [[nodiscard]] StatusOr<std::shared_ptr<const CompiledGrammar>> Get(GrammarKind kind,
                                                                     std::string_view text);
  Stats stats() const;
  size_t size() const;
  size_t bytes() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CompiledGrammar> grammar;
    size_t bytes;
  };
  void EvictLocked() REQUIRES(mu_);
  std::shared_ptr<const Vocabulary> vocab_;
  size_t capacity_;
  size_t max_bytes_;
  size_t bytes_ GUARDED_BY(mu_) = 0;  // sum of the entries' bytes
  CompileOptions options_;
  mutable Mutex mu_;
  std::list<Entry> lru_ GUARDED_BY(mu_);  // front: most recent
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ GUARDED_BY(mu_);
  Stats stats_ GUARDED_BY(mu_);
};

}  // namespace tinyserve::structured
