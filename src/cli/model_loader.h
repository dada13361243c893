// Loading what a verb serves: the model (directory, .gguf or dummy:<preset>), its tokenizer
// (from the GGUF, the model directory, or the cached Qwen2.5 files for dummy models) and its
// generation defaults. Main thread only.
#pragma once

#include <memory>
#include <string>

#include "model/config.h"
#include "model/qwen2.h"
#include "tokenizer/tokenizer.h"
#include "util/status.h"

namespace tinyserve::cli {

// The tokenizer that belongs to `model`.
[[nodiscard]] StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const Qwen2Model& model);

// vLLM's --generation-config: "auto" = the model's generation_config.json (Qwen2.5's published
// values for dummy models), "vllm" = none (OpenAI defaults), else a directory holding one.
[[nodiscard]] StatusOr<GenerationDefaults> LoadGenerationDefaults(const Qwen2Model& model,
                                                                  const std::string& source);

}  // namespace tinyserve::cli
