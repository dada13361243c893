// Moving estimate of how long one engine step takes: seconds = c0 + c1 * decodes + c2 * prefill
// tokens, fitted by least squares of relative errors over the most recent steps (so it follows
// the machine as load and contention change); c0 and c1 from decode-only steps when they vary,
// and past the largest batch measured no less per decode than that batch cost. Admission
// predicts waits with it and the scheduler sizes prefill chunks with it. Not thread-safe: the
// admission controller guards it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tinyserve {

// One engine step as measured.
struct StepObservation {
  int32_t num_decodes = 0;         // sequences that computed exactly one (sampled) token
  int32_t num_prefill_tokens = 0;  // every other token computed in the step
  double seconds = 0;              // forward pass + sampling
};

class StepTimeModel {
 public:
  // `window`: how many recent steps the fit uses.
  explicit StepTimeModel(int32_t window = 256);

  void Observe(const StepObservation& step);
  // Enough varied steps were seen to predict (a prefill step and a decode step).
  bool ready() const { return seen_prefill_ && seen_decode_; }
  // A prefill step was seen: enough to size prefill chunks.
  bool seen_prefill() const { return seen_prefill_; }
  // Predicted seconds of a step with `num_decodes` decodes and `num_prefill_tokens` others.
  // Before ready(), whatever the steps so far imply (0 when none).
  double StepSeconds(int32_t num_decodes, int32_t num_prefill_tokens) const;
  // Prefill tokens per second of a pure prefill step of `tokens` tokens.
  double PrefillTokensPerSecond(int32_t tokens = 512) const;
  // Largest prefill chunk that keeps a step with `num_decodes` decodes within `max_seconds`
  // (0 when the decodes alone take that long).
  int32_t PrefillTokensWithin(double max_seconds, int32_t num_decodes) const;
  // Starts a new window (the machine may have changed while the engine was idle): the current
  // estimate stays in use until the new steps alone determine one (at least kRefitSteps, a
  // prefill step and decode-only steps of two batch sizes: what a calibration batch gives).
  void Restart();
  static constexpr size_t kRefitSteps = 16;
  // The fitted coefficients {c0 seconds, c1 seconds per decode, c2 seconds per prefill token}.
  const std::array<double, 3>& coefficients() const { return coef_; }

 private:
  void Fit();
  double DecodeSeconds(int32_t num_decodes) const;
  std::array<double, 3> FitSteps(bool (*use)(const StepObservation&), std::array<bool, 3> active,
                                 const std::array<double, 3>& known) const;

  const int32_t window_;
  std::vector<StepObservation> ring_;  // the last `window_` steps
  size_t next_ = 0;
  bool seen_prefill_ = false, seen_decode_ = false;
  std::array<double, 3> coef_{0, 0, 0};
  int32_t max_batch_ = 0;   // the most decodes of a step in the window
  bool restarted_ = false;  // Restart() was called and the new window cannot refit yet
};

}  // namespace tinyserve
