#include "bench/bootstrap.h"

#include <algorithm>
#include <cmath>

#include "bench/rng.h"

namespace tinyserve::bench {
namespace {

constexpr double kZ95 = 1.959963984540054;
constexpr int kWindows = 10;  // Time windows per level for the rate intervals.

// Linear interpolation between order statistics, as Summarize does, on an unsorted vector.
double Quantile(std::vector<double>* v, double q) {
  double pos = q * static_cast<double>(v->size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  std::nth_element(v->begin(), v->begin() + lo, v->end());
  double a = (*v)[lo];
  if (lo + 1 >= v->size()) return a;
  double b = *std::min_element(v->begin() + lo + 1, v->end());
  return a + (b - a) * (pos - static_cast<double>(lo));
}

Interval Central95(std::vector<double> estimates) {
  Interval ci;
  if (estimates.empty()) return ci;
  std::sort(estimates.begin(), estimates.end());
  auto at = [&](double q) {
    double pos = q * static_cast<double>(estimates.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, estimates.size() - 1);
    return estimates[lo] + (estimates[hi] - estimates[lo]) * (pos - static_cast<double>(lo));
  };
  ci.lo = at(0.025);
  ci.hi = at(0.975);
  return ci;
}

size_t Pick(Rng& rng, size_t n) {
  return std::min(n - 1, static_cast<size_t>(rng.Uniform() * static_cast<double>(n)));
}

}  // namespace

bool PercentileReportable(int64_t n, double q) {
  return static_cast<double>(n) * (1 - q) >= 1 - 1e-9;
}

int64_t MinSamplesForPercentile(double q) {
  return static_cast<int64_t>(std::ceil(1 / (1 - q) - 1e-9));
}

std::vector<Interval> BootstrapPercentiles(const std::vector<std::vector<double>>& groups,
                                           const std::vector<double>& qs, uint64_t seed,
                                           int resamples) {
  std::vector<Interval> out(qs.size());
  size_t total = 0;
  for (const auto& g : groups) total += g.size();
  if (total == 0 || resamples <= 0) return out;
  std::vector<std::vector<double>> estimates(qs.size());
  Rng rng(seed);
  std::vector<double> pooled;
  pooled.reserve(total * 2);
  for (int b = 0; b < resamples; ++b) {
    pooled.clear();
    for (size_t i = 0; i < groups.size(); ++i) {
      const auto& g = groups[Pick(rng, groups.size())];
      pooled.insert(pooled.end(), g.begin(), g.end());
    }
    if (pooled.empty()) continue;
    for (size_t k = 0; k < qs.size(); ++k) estimates[k].push_back(Quantile(&pooled, qs[k]));
  }
  for (size_t k = 0; k < qs.size(); ++k) out[k] = Central95(std::move(estimates[k]));
  return out;
}

Interval BootstrapRate(const std::vector<double>& window_counts, double duration_s, uint64_t seed,
                       int resamples) {
  if (window_counts.empty() || duration_s <= 0 || resamples <= 0) return {};
  Rng rng(seed);
  std::vector<double> estimates;
  estimates.reserve(resamples);
  for (int b = 0; b < resamples; ++b) {
    double sum = 0;
    for (size_t i = 0; i < window_counts.size(); ++i) {
      sum += window_counts[Pick(rng, window_counts.size())];
    }
    estimates.push_back(sum / duration_s);
  }
  return Central95(std::move(estimates));
}

Interval WilsonInterval(int64_t successes, int64_t n) {
  if (n <= 0) return {};
  double p = static_cast<double>(successes) / n, z2 = kZ95 * kZ95, nn = static_cast<double>(n);
  double center = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  double half = kZ95 * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

namespace {

// One measured request as the knee sees it.
struct KneeSample {
  bool ok;
  double ttft_ms, e2e_ms;
};

}  // namespace

KneeUncertainty BootstrapKnee(const std::vector<LevelResult>& levels, const Slo& slo, int estimate,
                              uint64_t seed, int resamples) {
  KneeUncertainty out;
  out.resamples = resamples;
  std::vector<std::vector<KneeSample>> samples(levels.size());
  for (size_t l = 0; l < levels.size(); ++l) {
    for (const RequestRecord& r : levels[l].records) {
      if (r.warmup) continue;
      const RequestOutcome& o = r.outcome;
      samples[l].push_back({o.ok(), (o.ttft_s >= 0 ? o.ttft_s : o.e2e_s) * 1e3, o.e2e_s * 1e3});
    }
  }
  // Whether a resample of level l holds, as LevelHolds decides it.
  auto holds = [&](size_t l, Rng& rng) {
    const auto& s = samples[l];
    if (s.empty()) return false;
    std::vector<double> ttft, e2e;
    for (size_t i = 0; i < s.size(); ++i) {
      const KneeSample& k = s[Pick(rng, s.size())];
      if (!k.ok) return false;
      ttft.push_back(k.ttft_ms);
      e2e.push_back(k.e2e_ms);
    }
    if (slo.ttft_ms > 0 && Quantile(&ttft, 0.99) > slo.ttft_ms) return false;
    if (slo.e2e_ms > 0 && Quantile(&e2e, 0.99) > slo.e2e_ms) return false;
    return true;
  };
  std::vector<double> knees;
  Rng rng(seed);
  for (int b = 0; b < resamples; ++b) {
    int knee = -1;
    for (size_t l = 0; l < levels.size() && holds(l, rng); ++l) knee = static_cast<int>(l);
    knees.push_back(knee);
  }
  if (knees.empty()) return out;
  out.share_at_estimate =
      static_cast<double>(std::count(knees.begin(), knees.end(), estimate)) / knees.size();
  std::sort(knees.begin(), knees.end());
  out.low = static_cast<int>(knees[static_cast<size_t>(0.025 * (knees.size() - 1))]);
  out.high = static_cast<int>(knees[static_cast<size_t>(std::ceil(0.975 * (knees.size() - 1)))]);
  return out;
}

void AddIntervals(const LevelResult& result, const Slo& slo, uint64_t seed, LevelStats* s) {
  constexpr int kResamples = 1000;
  std::vector<std::vector<double>> ttft, e2e, itl, tpot;
  std::vector<double> ok_windows(kWindows, 0), good_windows(kWindows, 0);
  const double width = (result.window_end_s - result.window_start_s) / kWindows;
  size_t gaps = 0;
  for (const RequestRecord& r : result.records) {
    if (r.warmup || !r.outcome.ok()) continue;
    const RequestOutcome& o = r.outcome;
    double ttft_ms = (o.ttft_s >= 0 ? o.ttft_s : o.e2e_s) * 1e3, e2e_ms = o.e2e_s * 1e3;
    ttft.push_back({ttft_ms});
    e2e.push_back({e2e_ms});
    std::vector<double> g;
    for (double x : o.itl_s) g.push_back(x * 1e3);
    gaps += g.size();
    itl.push_back(std::move(g));
    if (o.output_tokens > 1 && o.ttft_s >= 0) {
      tpot.push_back({(o.e2e_s - o.ttft_s) * 1e3 / (o.output_tokens - 1)});
    }
    int w = width > 0 ? static_cast<int>((r.start_s - result.window_start_s) / width) : 0;
    w = std::clamp(w, 0, kWindows - 1);
    ok_windows[w] += 1;
    bool meets =
        (slo.ttft_ms <= 0 || ttft_ms <= slo.ttft_ms) && (slo.e2e_ms <= 0 || e2e_ms <= slo.e2e_ms);
    good_windows[w] += meets;
  }
  const std::vector<double> qs = {0.5, 0.9, 0.99};
  auto fill = [&](const std::vector<std::vector<double>>& groups, uint64_t stream, int resamples,
                  Distribution* d) {
    std::vector<Interval> ci =
        BootstrapPercentiles(groups, qs, DeriveSeed(seed, stream), resamples);
    d->p50_ci = ci[0];
    d->p90_ci = ci[1];
    d->p99_ci = ci[2];
  };
  fill(ttft, 1, kResamples, &s->ttft_ms);
  fill(e2e, 2, kResamples, &s->e2e_ms);
  fill(tpot, 3, kResamples, &s->tpot_ms);
  // Inter-token gaps pool many values per request: fewer resamples keep a long level to about
  // 2e7 values copied (the interval's ends move by well under its width at 200 resamples).
  int itl_resamples =
      static_cast<int>(std::clamp<double>(2e7 / std::max<size_t>(gaps, 1), 200, kResamples));
  fill(itl, 4, itl_resamples, &s->itl_ms);
  s->rps_ci = BootstrapRate(ok_windows, s->duration_s, DeriveSeed(seed, 5), kResamples);
  s->goodput_ci = BootstrapRate(good_windows, s->duration_s, DeriveSeed(seed, 6), kResamples);
  int64_t good = static_cast<int64_t>(std::llround(s->slo_attainment * s->requests));
  s->slo_attainment_ci = WilsonInterval(good, s->requests);
}

}  // namespace tinyserve::bench
