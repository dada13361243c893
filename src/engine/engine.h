// The serving engine: an EngineCore (continuous batching over a paged KV cache, chunked
// prefill, prefix caching, preemption by recompute) stepped by one loop thread that owns it.
// Other threads meet it only through the request queue: Submit, Abort and Stats are
// thread-safe and never wait for a step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/admission.h"
#include "engine/engine_core.h"
#include "engine/request.h"
#include "engine/request_queue.h"
#include "engine/token_text.h"
#include "model/config.h"
#include "model/model.h"
#include "util/status.h"

namespace tinyserve {

class EngineLoop;

class Engine {
 public:
  // Creates the core (see EngineCore::Create) and starts the loop thread.
  [[nodiscard]] static StatusOr<std::unique_ptr<Engine>> Create(
      std::shared_ptr<Model> model, const EngineOptions& options,
      const GenerationDefaults& generation_defaults = {}, TokenText text = {});
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Stops the thread; live requests end with finish reason abort.
  ~Engine();

  // Any thread. Validates the request (InvalidArgument: see EngineCore::ValidateRequest, or a
  // duplicate live id); fails with Unavailable at once when the queue is full. The events go
  // to the returned stream's outbox: its own, or `outbox` when given (shared by the streams
  // of one caller, told apart by `tag`).
  [[nodiscard]] StatusOr<std::shared_ptr<RequestStream>> Submit(
      GenerateRequest request, std::shared_ptr<Outbox> outbox = nullptr, int32_t tag = 0);
  // Any thread. Ends every choice of the request with finish reason abort (at the next step
  // boundary; its blocks are freed then). Unknown ids are ignored.
  void Abort(std::string_view request_id);
  // Any thread. The snapshot after the last step.
  EngineStats Stats() const;
  // Any thread. Deadline-aware admission and its predictor (see engine/admission.h).
  AdmissionController& admission();

  const EngineOptions& options() const;
  const EngineLimits& limits() const;
  const ModelConfig& model_config() const;
  // Tokens that end generation: the model config's and generation_config's EOS ids.
  std::vector<int32_t> eos_token_ids() const;

 private:
  explicit Engine(std::unique_ptr<EngineLoop> loop);
  std::unique_ptr<EngineLoop> loop_;
};

}  // namespace tinyserve
