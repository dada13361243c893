// A constraint stage in front of the sampler chain: something that decides which tokens may
// come next (a grammar, in the engine) and learns which one was drawn. The sampler knows only
// this interface, so it stays below the grammar code. Engine thread or one pool thread at a
// time per constraint (each belongs to one sequence).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampler.h"
#include "util/status.h"

namespace tinyserve {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // The tokens allowed next as a bitmask (bit t of word t/32), valid until the next call.
  // `remaining_tokens`: how many tokens the sequence may still generate, so the constraint can
  // steer to a way of ending in time.
  virtual std::span<const uint32_t> AllowedTokens(int32_t remaining_tokens) = 0;
  // Records the drawn token; false when it was outside the last mask.
  virtual bool Accept(int32_t token_id) = 0;
  // The constrained output is complete (e.g. the grammar accepted EOS).
  virtual bool IsTerminated() const = 0;
  // Why the constraint failed (e.g. a grammar too ambiguous to follow within its work
  // bounds); OK when it knows of no failure.
  virtual Status error() const { return OkStatus(); }
};

struct ConstrainedSample {
  SampleResult result;
  Status error;              // the constraint allowed nothing, or rejected the drawn token
  double mask_seconds = -1;  // time spent building the mask; < 0 without a constraint
};

// The whole chain for one sequence: the constraint's mask (when `constraint` is not null) ->
// Sample (banned tokens, penalties, temperature, ...) -> the constraint accepts the token.
ConstrainedSample SampleWithConstraint(std::span<float> logits,
                                       const ResolvedSamplingParams& params, SamplerState& state,
                                       std::span<const int32_t> banned, TokenConstraint* constraint,
                                       int32_t remaining_tokens);

}  // namespace tinyserve
