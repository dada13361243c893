#include "engine/engine.h"

#include <fmt/format.h>

#include <atomic>
#include <thread>

namespace tinyserve {

// Owns the core and the thread that steps it; everything else goes through the queue.
class EngineLoop {
 public:
  explicit EngineLoop(std::unique_ptr<EngineCore> core)
      : core_(std::move(core)), queue_(core_->options().max_queue_len) {
    core_->set_callbacks(
        {.on_scheduled = [this](int64_t waiting) { queue_.SetEngineWaiting(waiting); },
         .on_request_released = [this](const std::string& id) { queue_.Release(id); },
         .before_events = [this] { stats_.Set(core_->Stats()); }});
    stats_.Set(core_->Stats());
    thread_ = std::thread([this] { Run(); });
  }

  ~EngineLoop() {
    queue_.Stop();
    thread_.join();
    // The loop is over: this thread now owns the core.
    std::vector<PendingRequest> incoming;
    std::vector<std::string> aborts;
    queue_.Take(/*block=*/false, &incoming, &aborts);
    for (PendingRequest& p : incoming) core_->AddValidatedRequest(std::move(p));
    core_->AbortAll();
  }

  // The one place a request is accepted or refused before it is queued.
  StatusOr<std::shared_ptr<RequestStream>> Submit(GenerateRequest request,
                                                  std::shared_ptr<Outbox> outbox, int32_t tag) {
    Status s = core_->ValidateRequest(request);
    if (!s.ok()) {
      ++rejected_;
      return s;
    }
    if (request.request_id.empty()) {
      request.request_id = fmt::format("req-{}", next_request_number_.fetch_add(1));
    }
    // Requests the server admitted carry their ticket; others are registered here, without a
    // deadline, so that they still count in the predictor's view of the queued work.
    const bool registered = request.admission_ticket == 0;
    const auto now = std::chrono::steady_clock::now();
    if (registered) {
      request.admission_ticket =
          core_->admission().Register(WorkOfRequest(request, core_->limits().max_model_len), now);
    }
    const int64_t ticket = request.admission_ticket;
    auto stream =
        std::make_shared<RequestStream>(request.request_id, request.n, std::move(outbox), tag);
    s = queue_.Push(PendingRequest{std::move(request), stream, now});
    if (!s.ok()) {
      if (registered) core_->admission().Cancel(ticket);
      ++rejected_;
      return s;
    }
    return stream;
  }

  void Abort(std::string_view id) { queue_.Abort(std::string(id)); }
  EngineStats Stats() const {
    EngineStats s = stats_.Get();
    s.requests_rejected = rejected_.load();
    return s;
  }
  const EngineCore& core() const { return *core_; }
  AdmissionController& admission() { return core_->admission(); }

 private:
  void Run() {
    std::vector<PendingRequest> incoming;
    std::vector<std::string> aborts;
    bool progressed = true;
    while (true) {
      incoming.clear();
      aborts.clear();
      // Nothing to do, or nothing that fits until a request ends or arrives: wait for the
      // queue instead of spinning.
      queue_.Take(/*block=*/!core_->has_work() || !progressed, &incoming, &aborts);
      for (PendingRequest& p : incoming) core_->AddValidatedRequest(std::move(p));
      if (queue_.stopped()) break;
      for (const std::string& id : aborts) core_->AbortRequest(id);
      progressed = core_->has_work() && core_->Step();
      queue_.SetEngineWaiting(core_->num_waiting());
      stats_.Set(core_->Stats());
    }
  }

  const std::unique_ptr<EngineCore> core_;
  RequestQueue queue_;
  Published<EngineStats> stats_;
  std::atomic<int64_t> next_request_number_{0};
  std::atomic<int64_t> rejected_{0};
  std::thread thread_;  // last: starts after everything above exists
};

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<Model> model,
                                                 const EngineOptions& options,
                                                 const GenerationDefaults& generation_defaults,
                                                 TokenText text) {
  TS_ASSIGN_OR_RETURN(
      std::unique_ptr<EngineCore> core,
      EngineCore::Create(std::move(model), options, generation_defaults, std::move(text)));
  return std::unique_ptr<Engine>(new Engine(std::make_unique<EngineLoop>(std::move(core))));
}

Engine::Engine(std::unique_ptr<EngineLoop> loop) : loop_(std::move(loop)) {}
Engine::~Engine() = default;

StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(GenerateRequest request,
                                                        std::shared_ptr<Outbox> outbox,
                                                        int32_t tag) {
  return loop_->Submit(std::move(request), std::move(outbox), tag);
}
void Engine::Abort(std::string_view request_id) { loop_->Abort(request_id); }
EngineStats Engine::Stats() const { return loop_->Stats(); }
AdmissionController& Engine::admission() { return loop_->admission(); }
const EngineOptions& Engine::options() const { return loop_->core().options(); }
const EngineLimits& Engine::limits() const { return loop_->core().limits(); }
const ModelConfig& Engine::model_config() const { return loop_->core().model_config(); }
std::vector<int32_t> Engine::eos_token_ids() const { return loop_->core().eos_token_ids(); }

}  // namespace tinyserve
