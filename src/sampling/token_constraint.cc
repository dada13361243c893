#include "sampling/token_constraint.h"

#include <algorithm>
#include <chrono>

namespace tinyserve {

ConstrainedSample SampleWithConstraint(std::span<float> logits,
                                       const ResolvedSamplingParams& params, SamplerState& state,
                                       std::span<const int32_t> banned, TokenConstraint* constraint,
                                       int32_t remaining_tokens) {
  ConstrainedSample out;
  std::span<const uint32_t> allowed;
  if (constraint != nullptr) {
    const auto t0 = std::chrono::steady_clock::now();
    allowed = constraint->AllowedTokens(remaining_tokens);
    out.mask_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (std::all_of(allowed.begin(), allowed.end(), [](uint32_t w) { return w == 0; })) {
      // A grammar keeps a way to close open within the budget: an empty mask is a bug there,
      // or a failure the constraint can name.
      const Status why = constraint->error();
      out.error = why.ok() ? InternalError("the constraint allows no next token") : why;
      return out;
    }
  }
  out.result = Sample(logits, params, state, banned, allowed);
  if (constraint != nullptr && !constraint->Accept(out.result.token_id)) {
    out.error =
        InternalError("sampled token {} outside the constraint's mask", out.result.token_id);
  }
  return out;
}

}  // namespace tinyserve
