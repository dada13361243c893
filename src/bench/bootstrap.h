// Confidence intervals for the bench report: seeded (deterministic) bootstrap intervals for
// latency percentiles (over requests) and rates (over time windows), Wilson intervals for
// proportions, the "too few requests" rule for percentiles, and the knee's uncertainty (the knee
// found again on resampled levels). Pure functions; safe from any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "bench/load_generator.h"
#include "bench/stats.h"

namespace tinyserve::bench {

// A percentile q is only reported when n * (1 - q) >= 1: at least one observation is expected
// beyond it (p50 needs 2 requests, p90 10, p99 100). Below that the "p99" is just the maximum.
bool PercentileReportable(int64_t n, double q);
int64_t MinSamplesForPercentile(double q);

// Central 95% bootstrap interval of the q-quantiles of the pooled values of `groups`, resampling
// whole groups (one group per request: a single TTFT, or all of a request's inter-token gaps).
// Returns one interval per q; NaN bounds when there is no value.
std::vector<Interval> BootstrapPercentiles(const std::vector<std::vector<double>>& groups,
                                           const std::vector<double>& qs, uint64_t seed,
                                           int resamples);

// Central 95% bootstrap interval of sum(counts) / duration_s, resampling the time windows.
Interval BootstrapRate(const std::vector<double>& window_counts, double duration_s, uint64_t seed,
                       int resamples);

// 95% Wilson score interval of successes / n (NaN bounds when n == 0).
Interval WilsonInterval(int64_t successes, int64_t n);

// The knee found again on `resamples` bootstrap resamples of every level's measured requests;
// `estimate` is FindKnee's index on the levels themselves. Levels must be in rising load.
struct KneeUncertainty {
  int resamples = 0;
  int low = -1, high = -1;       // Central 95% range of the knee's level index (-1: no knee).
  double share_at_estimate = 0;  // Fraction of resamples whose knee is the point estimate.
};
KneeUncertainty BootstrapKnee(const std::vector<LevelResult>& levels, const Slo& slo, int estimate,
                              uint64_t seed, int resamples);

// Fills the intervals of `stats` (rates, SLO attainment, TTFT/E2E/ITL/TPOT percentiles) from the
// level's records. Deterministic for a given seed.
void AddIntervals(const LevelResult& result, const Slo& slo, uint64_t seed, LevelStats* stats);

}  // namespace tinyserve::bench
