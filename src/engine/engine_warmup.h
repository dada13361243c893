// Start-up calibration: a few requests run through a new engine before it serves, so that the
// admission predictor (engine/admission.h) has measured prefill and decode steps (at more than
// one batch size) before the first client arrives, instead of refusing while it knows nothing.
// Call once, from the thread that created the engine, before serving.
#pragma once

#include "engine/engine.h"
#include "util/status.h"

namespace tinyserve {

// Runs a prefill of up to 256 tokens and a batch of short decodes; returns once they finished.
// Errors: the engine failed a warm-up request.
[[nodiscard]] Status WarmUpEngine(Engine& engine);

}  // namespace tinyserve
