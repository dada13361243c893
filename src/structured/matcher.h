// Per-sequence grammar state: advances over the tokens a sequence samples and writes the
// bitmask of tokens allowed next. One matcher per sequence, used by one thread at a time (the
// engine thread); many matchers may share one CompiledGrammar.
//
// Engine hook: before sampling a sequence's next token call
//   matcher.FillNextTokenBitmask(words, /*remaining_tokens=*/max_tokens - generated)
// and set the logits of tokens whose bit is 0 to -inf; after sampling call
//   matcher.AcceptToken(token)   (false means the token was not allowed: a bug upstream).
// After an EOS is accepted IsTerminated() is true. ForcedBytes() gives bytes the grammar forces
// (jump-forward), for an engine that wants to append them without sampling.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "structured/compiled_grammar.h"
#include "structured/pda.h"

namespace tinyserve::structured {

class GrammarMatcher {
 public:
  // Under this many bytes of slack between the remaining token budget and the shortest close,
  // the mask only allows the longest token along a shortest completion. Before that, tokens
  // that would leave more bytes to close than tokens remain are masked out.
  static constexpr int32_t kBudgetMargin = 16;
  // Stack nodes one mask may visit while checking uncertain tokens (a few tens of ms); past it,
  // or past a step's own bounds (Pda::kMaxStepWork), the matcher fails with error() set rather
  // than hold the engine thread.
  static constexpr int64_t kMaxMaskWork = int64_t{1} << 22;

  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar);

  // Advances over `token` if the grammar allows it (EOS only where the grammar can end).
  // Returns false, with the state unchanged, when it is not allowed.
  bool AcceptToken(int32_t token);
  // Advances over raw bytes (for jump-forward and tests); false and unchanged if not allowed.
  bool AcceptBytes(std::string_view bytes);
  // words: [vocab().mask_words()]; bit t of word t/32 is set when token t is allowed next.
  // remaining_tokens < 0: no budget; else the number of tokens still allowed including the one
  // being sampled (steers to a shortest completion as it runs out).
  void FillNextTokenBitmask(uint32_t* words, int32_t remaining_tokens = -1);
  // Same as FillNextTokenBitmask without the budget, by advancing a copy through every token:
  // the slow reference the tests compare with.
  void FillNextTokenBitmaskBruteForce(uint32_t* words) const;

  // Non-OK once the grammar proved too ambiguous to follow within the work bounds; from then
  // on no token is allowed (an all-zero mask) and the request should fail with this status.
  const Status& error() const { return error_; }
  bool CanTerminate() const { return config_.accepting; }
  bool IsTerminated() const { return terminated_; }
  // Fewest bytes that finish the output from here.
  uint32_t MinCloseBytes() const { return pda_.MinClose(config_); }
  // A shortest completion (bytes), empty when the grammar can end here.
  std::string ShortestCompletion(size_t max_bytes = 4096) const;
  // Bytes every continuation must start with (jump-forward), up to max_bytes.
  std::string ForcedBytes(size_t max_bytes = 256) const;
  const CompiledGrammar& grammar() const { return *grammar_; }

 private:
  // Sets the uncertain tokens valid from `stack` that leave at most close_limit bytes to close.
  void CheckUncertain(int32_t stack, const std::vector<int32_t>& ranks, uint32_t close_limit,
                      uint32_t* words);
  void SetToken(int32_t token, uint32_t* words) const;
  void CompactPoolIfLarge();
  void FailIfOverflowed();

  std::shared_ptr<const CompiledGrammar> grammar_;
  StackPool pool_;
  mutable Pda pda_;
  StackConfig config_;
  bool terminated_ = false;
  Status error_;
  std::vector<StackConfig> scratch_;  // per-depth configurations for the uncertain walk
  std::vector<int32_t> drop_scratch_;
};

}  // namespace tinyserve::structured
