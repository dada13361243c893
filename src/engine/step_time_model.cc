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

void StepTimeModel::Fit() {
  double xtx[kParams][kParams] = {};
  double xty[kParams] = {};
  for (const StepObservation& s : ring_) {
    const double x[kParams] = {1.0, double(s.num_decodes), double(s.num_prefill_tokens)};
    for (int r = 0; r < kParams; ++r) {
      for (int c = 0; c < kParams; ++c) xtx[r][c] += x[r] * x[c];
      xty[r] += x[r] * s.seconds;
    }
  }
  // Costs are never negative: drop the most negative coefficient and refit (active set).
  std::array<bool, kParams> active{true, true, true};
  for (int round = 0; round < kParams; ++round) {
    std::array<double, kParams> c = Solve(xtx, xty, active);
    int worst = -1;
    for (int j = 0; j < kParams; ++j)
      if (active[j] && !(c[j] >= 0) && (worst < 0 || c[j] < c[worst])) worst = j;
    if (worst < 0) {
      coef_ = c;
      break;
    }
    active[worst] = false;
    coef_ = {0, 0, 0};
  }
  coef_[2] = std::max(coef_[2], kMinPrefillTokenSeconds);
}

double StepTimeModel::StepSeconds(int32_t num_decodes, int32_t num_prefill_tokens) const {
  if (num_decodes == 0 && num_prefill_tokens == 0) return 0;
  return coef_[0] + coef_[1] * num_decodes + coef_[2] * num_prefill_tokens;
}

double StepTimeModel::PrefillTokensPerSecond(int32_t tokens) const {
  const double s = StepSeconds(0, tokens);
  return s > 0 ? tokens / s : 0;
}

int32_t StepTimeModel::PrefillTokensWithin(double max_seconds, int32_t num_decodes) const {
  const double left = max_seconds - coef_[0] - coef_[1] * num_decodes;
  if (left <= 0) return 0;
  const double tokens = std::floor(left / coef_[2]);
  return static_cast<int32_t>(std::min<double>(tokens, std::numeric_limits<int32_t>::max()));
}

}  // namespace tinyserve
