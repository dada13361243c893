#include "bench/auto_sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tinyserve::bench {

StatusOr<SweepOutcome> SweepLoads(const AutoSweep& sw, const Slo& slo,
                                  const std::vector<LevelStats>& stats,
                                  const std::function<StatusOr<size_t>(double load)>& run_level,
                                  const std::function<bool()>& fits) {
  SweepOutcome out;
  int good = -1, bad = -1;  // The last good and the first bad level's indices.
  double good_x = 0, bad_x = 0;
  // When even the lowest load misses the SLOs there is no SLO knee to find, but the capacity
  // still matters: keep raising until the server saturates, as GuideLLM's sweep does.
  for (double x = sw.start;;) {
    if (!out.raised.empty() && !fits()) {
      out.stop = "the time budget ran out while raising the load";
      break;
    }
    TS_ASSIGN_OR_RETURN(size_t i, run_level(x));
    out.raised.push_back(x);
    const bool holds = LevelHolds(stats[i], slo);
    if (!holds && out.raised.size() == 1) out.slo_gate = false;
    const bool saturated = good >= 0 && OverSaturated(stats[good], stats[i]);
    if ((out.slo_gate && !holds) || saturated) {
      bad_x = x;
      bad = static_cast<int>(i);
      if (saturated) {
        out.sat_below = good;
        out.sat_above = bad;
      }
      out.stop =
          saturated ? "goodput stopped rising while queueing grew" : "a level missed the SLOs";
      break;
    }
    good = static_cast<int>(i);
    good_x = x;
    if (x >= sw.max) {
      out.stop = fmt::format("the cap of {:g} was reached without saturating", sw.max);
      break;
    }
    x = std::min(sw.max, x * 2);
  }
  // Refine: bisect (geometrically) between the last good and the first bad level.
  while (good >= 0 && bad_x > 0 && (sw.open_loop ? bad_x / good_x > 1.2 : bad_x - good_x > 1) &&
         fits()) {
    double mid = std::sqrt(good_x * bad_x);
    if (!sw.open_loop) mid = std::clamp(std::round(mid), good_x + 1, bad_x - 1);
    TS_ASSIGN_OR_RETURN(size_t i, run_level(mid));
    out.refined.push_back(mid);
    const bool saturated = OverSaturated(stats[good], stats[i]);
    if ((!out.slo_gate || LevelHolds(stats[i], slo)) && !saturated) {
      good_x = mid;
      good = static_cast<int>(i);
    } else {
      bad_x = mid;
      bad = static_cast<int>(i);
      if (saturated) {
        out.sat_below = good;
        out.sat_above = bad;
      }
    }
  }
  // Said of the final pair where it shows saturation, so it names the last level where more load
  // still paid off. Otherwise of the latest pair that did: a refined middle level can fall inside
  // the noise of both neighbours, or miss the SLOs without saturating, and a sweep that saw
  // saturation still says where.
  if (good >= 0 && bad >= 0 && OverSaturated(stats[good], stats[bad])) {
    out.sat_below = good;
    out.sat_above = bad;
  }
  if (!out.slo_gate)
    out.stop += " (the lowest load already missed the SLOs, so only saturation stopped it)";
  return out;
}

}  // namespace tinyserve::bench
