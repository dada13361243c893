#include "engine/engine_warmup.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace tinyserve {
namespace {

// One prompt of up to 256 tokens (a full-speed prefill step) and up to four short ones, all
// together: one prefill step, then decode-only steps whose batch shrinks by one every 8 steps
// as the short requests end (8, 16, 24, 32 tokens), so the per-sequence cost separates from
// the per-step one.
std::vector<GenerateRequest> CalibrationRequests(const Engine& engine) {
  const int32_t vocab = static_cast<int32_t>(engine.model_config().vocab_size);
  const int32_t max_len = engine.limits().max_model_len;
  auto request = [&](int32_t prompt_len, int32_t max_tokens, int32_t salt) {
    GenerateRequest r;
    r.request_id = "calibration-" + std::to_string(salt);
    for (int32_t i = 0; i < prompt_len; ++i) r.prompt_token_ids.push_back((i * 7 + salt) % vocab);
    r.sampling.temperature = 0.0f;
    r.stop.max_tokens = std::max(1, std::min(max_tokens, max_len - prompt_len));
    r.stop.ignore_eos = true;
    r.detokenize = false;
    r.cache_salt = "calibration";  // its blocks are never shared with client requests
    return r;
  };
  std::vector<GenerateRequest> requests;
  requests.push_back(request(std::clamp(max_len - 32, 1, 256), 32, 0));
  // As many as the queue and the batch take at once (a tiny --max-queue-len must not fail it).
  const int32_t extra =
      std::clamp(std::min(engine.options().max_queue_len, engine.options().max_num_seqs), 1, 5) - 1;
  for (int32_t k = 1; k <= extra; ++k)
    requests.push_back(request(std::clamp(max_len - 32, 1, 16), 8 * k, k));
  return requests;
}

}  // namespace

Status WarmUpEngine(Engine& engine) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (GenerateRequest& r : CalibrationRequests(engine)) {
    TS_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine.Submit(std::move(r)));
    streams.push_back(std::move(s));
  }
  for (auto& s : streams) {
    while (auto e = s->Next()) {
      if (e->finish_reason == FinishReason::kError)
        return InternalError("the warm-up request failed: {}", e->error.ToString());
    }
  }
  return OkStatus();
}

void StartCalibration(Engine& engine) {
  for (GenerateRequest& r : CalibrationRequests(engine)) {
    // Unique ids: a calibration still running would refuse the same ones.
    r.request_id.clear();
    (void)engine.Submit(std::move(r));
  }
}

}  // namespace tinyserve
