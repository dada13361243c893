// Drives an EngineCore deterministically for tests: steps it until no request is left and
// reads streams without waiting (every event of a finished request is already there).
// Header-only; tests only. Same thread as the core.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "engine/engine_core.h"

namespace tinyserve::testing {

// Steps until the core has no unfinished request; the number of steps. Fails the test when a
// step schedules nothing while work remains (that work could never finish) or after
// `max_steps` (a runaway loop).
inline int64_t RunUntilIdle(EngineCore& core, int64_t max_steps = 1'000'000) {
  int64_t steps = 0;
  while (core.has_work()) {
    if (steps == max_steps) {
      ADD_FAILURE() << "still busy after " << max_steps << " steps";
      break;
    }
    if (!core.Step()) {
      ADD_FAILURE() << "a step scheduled nothing while requests are unfinished";
      break;
    }
    ++steps;
  }
  return steps;
}

// Steps exactly `n` times (each must schedule something).
inline void StepTimes(EngineCore& core, int n) {
  for (int i = 0; i < n; ++i) ASSERT_TRUE(core.Step()) << "step " << i;
}

}  // namespace tinyserve::testing
