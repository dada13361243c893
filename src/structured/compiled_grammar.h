// A grammar bound to a vocabulary, with the context-independent token sets of each grammar
// state (XGrammar-style adaptive masks): tokens a state accepts whatever stack lies below it,
// and the few "uncertain" tokens that leave the state's rule and must be checked against the
// real stack at run time. Shared read-only by matchers on any thread; the per-state sets are
// computed on first use (or by Warm) under an internal lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"
#include "structured/pda.h"
#include "structured/vocabulary.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve::structured {

struct StateTokenSets {
  // Tokens valid from this state in every context: a bitmask when many, else a list.
  std::vector<uint32_t> accepted_bits;  // empty or [vocab.mask_words()]
  std::vector<int32_t> accepted_ids;
  // Tokens (by vocabulary rank, ascending) that end this state's rule and continue in the
  // caller: valid or not depending on the stack below.
  std::vector<int32_t> uncertain_ranks;
  // Accepted tokens after which the rule needs more bytes to finish than before (opening a
  // nested value, an escape...): (token, bytes to finish this rule after it). Every other
  // accepted token leaves at most the state's own min_close.
  std::vector<std::pair<int32_t, uint32_t>> close_increases;
};

class CompiledGrammar {
 public:
  CompiledGrammar(Grammar grammar, std::shared_ptr<const Vocabulary> vocab);
  CompiledGrammar(const CompiledGrammar&) = delete;
  CompiledGrammar& operator=(const CompiledGrammar&) = delete;

  const Grammar& grammar() const { return grammar_; }
  const Vocabulary& vocab() const { return *vocab_; }
  // Token sets of grammar state `state` (one with byte edges). Thread-safe.
  const StateTokenSets& TokenSets(int32_t state) const;
  // Precomputes the token sets of every state with byte edges, then frees the scratch used to
  // compute them. InvalidArgument when the work (vocabulary-trie nodes visited, a
  // load-independent measure) would exceed `max_work`, `deadline` passes (a safety net), the
  // sets and scratch outgrow `max_bytes`, or a step exceeds the Pda's bounds (a grammar too
  // ambiguous): the server rejects such grammars at compile time instead of computing sets on
  // the engine thread.
  [[nodiscard]] Status Warm(std::chrono::steady_clock::time_point deadline,
                            size_t max_bytes = SIZE_MAX, int64_t max_work = INT64_MAX) const;
  int64_t num_computed_states() const { return num_computed_.load(); }
  // Vocabulary-trie nodes visited computing token sets so far (the precompute's work unit).
  int64_t precompute_work() const { return precompute_work_.load(); }
  // Approximate heap bytes held: grammar, token sets and scratch. Thread-safe.
  size_t memory_bytes() const;

 private:
  // False when `deadline` passed or a step overflowed before the sets were complete (nothing
  // stored then).
  bool ComputeLocked(int32_t state, std::chrono::steady_clock::time_point deadline,
                     int64_t max_work) const REQUIRES(mu_);
  size_t ScratchBytesLocked() const REQUIRES(mu_);
  void ResetScratchLocked() const REQUIRES(mu_);
  // Memoised transitions of configurations over kUnknownStack, shared by all states.
  int32_t InternConfig(const StackConfig& c) const REQUIRES(mu_);
  int32_t StepConfig(int32_t config, uint8_t byte) const REQUIRES(mu_);

  Grammar grammar_;
  std::shared_ptr<const Vocabulary> vocab_;
  // Leaf lock taken only to compute a state's sets: by the HTTP thread compiling the grammar
  // (Warm, before the cache publishes it), then by engine pool threads for states Warm did not
  // reach. Computed sets are read lock-free (release/acquire on sets_).
  mutable Mutex mu_;
  mutable std::vector<std::atomic<const StateTokenSets*>> sets_;
  mutable std::vector<std::unique_ptr<StateTokenSets>> owned_ GUARDED_BY(mu_);
  mutable std::atomic<int64_t> num_computed_{0};
  size_t grammar_bytes_ = 0;
  mutable std::atomic<size_t> sets_bytes_{0};
  mutable std::atomic<int64_t> precompute_work_{0};
  mutable StackPool pool_ GUARDED_BY(mu_);
  mutable Pda pda_ GUARDED_BY(mu_);
  mutable std::vector<StackConfig> configs_ GUARDED_BY(mu_);
  mutable std::unordered_map<std::string, int32_t> config_ids_ GUARDED_BY(mu_);
  // [config * 256 + byte] -> config, -1 unknown
  mutable std::vector<int32_t> trans_ GUARDED_BY(mu_);
  mutable std::vector<uint8_t> can_pop_ GUARDED_BY(mu_);  // [config]
  // [config]: fewest bytes to finish the analysed rule
  mutable std::vector<uint32_t> close_ GUARDED_BY(mu_);
};

}  // namespace tinyserve::structured
