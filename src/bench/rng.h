// Deterministic random numbers for the load generator: the same seed gives the same sequence on
// every platform (std:: distributions are implementation-defined, so they are not used).
// One instance per thread; not thread-safe.
#pragma once

#include <cmath>
#include <cstdint>

#include "util/mix.h"

namespace tinyserve::bench {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  // SplitMix64 step.
  uint64_t NextU64() { return Mix64(state_ += kSplitMix64Gamma); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi].
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Exponential with the given rate (mean 1/rate); requires rate > 0.
  double Exponential(double rate) { return -std::log1p(-Uniform()) / rate; }

 private:
  uint64_t state_;
};

// Mixes a stream index into a seed so per-user streams are independent.
inline uint64_t DeriveSeed(uint64_t seed, uint64_t stream) {
  Rng rng(seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return rng.NextU64();
}

}  // namespace tinyserve::bench
