// Calibration of the admission predictor (engine/admission.h): a few short requests whose steps
// cover a prefill and decodes at several batch sizes, so the step-time model is measured before
// the first client arrives (WarmUpEngine, at start-up) and again when an idle engine's
// estimates are stale (StartCalibration, asked for by AdmissionDecision::recalibrate), instead
// of refusing on what it does not know. Either may be called from any thread.
#pragma once

#include "engine/engine.h"
#include "util/status.h"

namespace tinyserve {

// Runs the calibration batch and returns once it finished. Call before serving.
// Errors: the engine failed a calibration request.
[[nodiscard]] Status WarmUpEngine(Engine& engine);

// Submits the calibration batch and returns at once; its results are dropped. Requests the
// queue refuses are skipped (a busy engine measures itself anyway).
void StartCalibration(Engine& engine);

}  // namespace tinyserve
