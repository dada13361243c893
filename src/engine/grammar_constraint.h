// Structured output as a sampling stage: a grammar matcher behind the sampler's
// TokenConstraint interface (sampling/ knows nothing of grammars). One per constrained choice;
// used by one thread at a time (the engine thread or the pool thread sampling that choice).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sampling/token_constraint.h"
#include "structured/compiled_grammar.h"
#include "structured/matcher.h"

namespace tinyserve {

class GrammarConstraint : public TokenConstraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<const structured::CompiledGrammar> grammar)
      : matcher_(std::move(grammar)) {}

  std::span<const uint32_t> AllowedTokens(int32_t remaining_tokens) override {
    mask_.resize(matcher_.grammar().vocab().mask_words());
    matcher_.FillNextTokenBitmask(mask_.data(), remaining_tokens);
    return mask_;
  }
  bool Accept(int32_t token_id) override { return matcher_.AcceptToken(token_id); }
  bool IsTerminated() const override { return matcher_.IsTerminated(); }
  Status error() const override { return matcher_.error(); }

 private:
  structured::GrammarMatcher matcher_;
  std::vector<uint32_t> mask_;  // scratch, kept to avoid an allocation per token
};

}  // namespace tinyserve
