#include "engine/step_time_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tinyserve {
namespace {

constexpr int kParams = 3;
// A floor on the per-token prefill cost: it divides chunk sizes.
constexpr double kMinPrefillTokenSeconds = 1e-7;

// Solves the normal equations restricted to the `active` parameters (others stay 0). A tiny
// ridge keeps collinear columns (e.g. every step had one decode) solvable; it splits the weight
// between them, which only matters until the steps vary.
std::array<double, kParams> Solve(const double (&xtx)[kParams][kParams],
                                  const double (&xty)[kParams],
                                  const std::array<bool, kParams>& active) {
  int idx[kParams];
  int n = 0;
  for (int j = 0; j < kParams; ++j)
    if (active[j]) idx[n++] = j;
  double a[kParams][kParams + 1] = {};
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) a[r][c] = xtx[idx[r]][idx[c]];
    a[r][r] += 1e-9 * xtx[idx[r]][idx[r]] + 1e-18;
    a[r][n] = xty[idx[r]];
  }
  for (int p = 0; p < n; ++p) {  // Gaussian elimination with partial pivoting
    int best = p;
    for (int r = p + 1; r < n; ++r)
      if (std::abs(a[r][p]) > std::abs(a[best][p])) best = r;
    std::swap(a[p], a[best]);
    for (int r = p + 1; r < n; ++r) {
      const double f = a[r][p] / a[p][p];
      for (int c = p; c <= n; ++c) a[r][c] -= f * a[p][c];
    }
  }
  std::array<double, kParams> out{0, 0, 0};
  for (int r = n - 1; r >= 0; --r) {
    double v = a[r][n];
    for (int c = r + 1; c < n; ++c) v -= a[r][c] * out[idx[c]];
    out[idx[r]] = v / a[r][r];
  }
  return out;
}

}  // namespace

StepTimeModel::StepTimeModel(int32_t window) : window_(std::max(8, window)) {}

void StepTimeModel::Observe(const StepObservation& step) {
  if (step.seconds <= 0 || (step.num_decodes == 0 && step.num_prefill_tokens == 0)) return;
  if (static_cast<int32_t>(ring_.size()) < window_) {
    ring_.push_back(step);
  } else {
    ring_[next_] = step;
    next_ = (next_ + 1) % ring_.size();
  }
  if (step.num_prefill_tokens > 0) seen_prefill_ = true;
  if (step.num_decodes > 0) seen_decode_ = true;
  Fit();
}

// Least squares of relative errors (each step weighted by 1 / seconds^2: a 1,024-token prefill
// step takes 50x a decode step, and its few percent of noise would otherwise outweigh every
// decode step) over the steps `use` accepts, for the parameters in `active`; a parameter that
// comes out negative is dropped and the rest refitted (costs are never negative).
std::array<double, kParams> StepTimeModel::FitSteps(
    bool (*use)(const StepObservation&), std::array<bool, kParams> active,
    const std::array<double, kParams>& known) const {
  double xtx[kParams][kParams] = {};
  double xty[kParams] = {};
  for (const StepObservation& s : ring_) {
    if (!use(s)) continue;
    const double x[kParams] = {1.0, double(s.num_decodes), double(s.num_prefill_tokens)};
    double y = s.seconds;  // less what the parameters already known explain
    for (int j = 0; j < kParams; ++j)
      if (!active[j]) y -= known[j] * x[j];
    const double w = 1.0 / (s.seconds * s.seconds);
    for (int r = 0; r < kParams; ++r) {
      for (int c = 0; c < kParams; ++c) xtx[r][c] += w * x[r] * x[c];
      xty[r] += w * x[r] * y;
    }
  }
  std::array<double, kParams> out = known;
  for (int round = 0; round < kParams; ++round) {
    std::array<double, kParams> c = Solve(xtx, xty, active);
    int worst = -1;
    for (int j = 0; j < kParams; ++j)
      if (active[j] && !(c[j] >= 0) && (worst < 0 || c[j] < c[worst])) worst = j;
    if (worst < 0) {
      for (int j = 0; j < kParams; ++j)
        if (active[j]) out[j] = c[j];
      return out;
    }
    active[worst] = false;
    out[worst] = 0;
  }
  return out;
}

// The per-step and per-decode costs come from decode-only steps when the window has some:
// in mixed steps the prefill chunk shrinks as decodes grow (the step budget), and prompts of
// different depths cost different amounts per token, so a joint fit let the per-decode cost,
// which decides how many requests fit, absorb the prefill's variation (it came out 0 under
// load, and admitted requests timed out). The per-token prefill cost is then fitted to what
// the decodes leave of the other steps.
void StepTimeModel::Fit() {
  auto decode_only = [](const StepObservation& s) { return s.num_prefill_tokens == 0; };
  auto with_prefill = [](const StepObservation& s) { return s.num_prefill_tokens > 0; };
  auto any = [](const StepObservation&) { return true; };
  // Decode-only steps of one batch size cannot separate the per-step cost from the per-decode
  // one: then the joint fit, with the pure prefill steps' intercept, is the better guess.
  int32_t min_batch = INT32_MAX, max_batch = 0;
  for (const StepObservation& s : ring_) {
    if (!decode_only(s)) continue;
    min_batch = std::min(min_batch, s.num_decodes);
    max_batch = std::max(max_batch, s.num_decodes);
  }
  if (restarted_) {
    if (ring_.size() < kRefitSteps || max_batch <= min_batch ||
        std::none_of(ring_.begin(), ring_.end(), with_prefill))
      return;
    restarted_ = false;
  }
  if (max_batch > min_batch) {
    coef_ = FitSteps(decode_only, {true, true, false}, {0, 0, 0});
    coef_ = FitSteps(with_prefill, {false, false, true}, coef_);
  } else {
    coef_ = FitSteps(any, {true, true, true}, {0, 0, 0});
  }
  coef_[2] = std::max(coef_[2], kMinPrefillTokenSeconds);
  max_batch_ = 0;
  for (const StepObservation& s : ring_) max_batch_ = std::max(max_batch_, s.num_decodes);
}

// Beyond the largest batch in the window the line is not trusted: a step costs at least its
// share of the largest batch measured, per decode. That bounds a step whose cost is flat while
// weights dominate and grows once compute does (decodes at batch 1 and 4 cost about the same,
// so a line fitted there predicts batch 32 far too cheap); the bound loosens as batches grow.
double StepTimeModel::DecodeSeconds(int32_t num_decodes) const {
  const double line = coef_[0] + coef_[1] * num_decodes;
  if (num_decodes <= max_batch_ || max_batch_ == 0) return line;
  const double largest = coef_[0] + coef_[1] * max_batch_;
  return std::max(line, largest * num_decodes / max_batch_);
}

void StepTimeModel::Restart() {
  ring_.clear();
  next_ = 0;
  restarted_ = true;
}

double StepTimeModel::StepSeconds(int32_t num_decodes, int32_t num_prefill_tokens) const {
  if (num_decodes == 0 && num_prefill_tokens == 0) return 0;
  return DecodeSeconds(num_decodes) + coef_[2] * num_prefill_tokens;
}

double StepTimeModel::PrefillTokensPerSecond(int32_t tokens) const {
  const double s = StepSeconds(0, tokens);
  return s > 0 ? tokens / s : 0;
}

int32_t StepTimeModel::PrefillTokensWithin(double max_seconds, int32_t num_decodes) const {
  const double left = max_seconds - DecodeSeconds(num_decodes);
  if (left <= 0) return 0;
  const double tokens = std::floor(left / coef_[2]);
  return static_cast<int32_t>(std::min<double>(tokens, std::numeric_limits<int32_t>::max()));
}

}  // namespace tinyserve
