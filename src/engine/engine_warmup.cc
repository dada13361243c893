#include "engine/engine_warmup.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace tinyserve {

Status WarmUpEngine(Engine& engine) {
  const int32_t vocab = static_cast<int32_t>(engine.model_config().vocab_size);
  const int32_t max_len = engine.limits().max_model_len;
  auto request = [&](int32_t prompt_len, int32_t salt) {
    GenerateRequest r;
    r.request_id = "warmup-" + std::to_string(salt);
    for (int32_t i = 0; i < prompt_len; ++i) r.prompt_token_ids.push_back((i * 7 + salt) % vocab);
    r.sampling.temperature = 0.0f;
    r.stop.max_tokens = 8;
    r.stop.ignore_eos = true;
    r.detokenize = false;
    r.cache_salt = "warmup";  // its blocks are never shared with client requests
    return r;
  };
  // One long prompt alone (a full-speed prefill step), then up to four short ones together
  // (decode steps at a batch of four, so the per-sequence cost separates from the per-step one).
  std::vector<std::vector<GenerateRequest>> rounds(2);
  rounds[0].push_back(request(std::clamp(max_len - 16, 1, 256), 0));
  // As many as the queue and the batch take at once (a tiny --max-queue-len must not fail it).
  const int32_t batch =
      std::clamp(std::min(engine.options().max_queue_len, engine.options().max_num_seqs), 1, 4);
  for (int32_t k = 1; k <= batch; ++k)
    rounds[1].push_back(request(std::clamp(max_len - 16, 1, 16), k));
  for (auto& round : rounds) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (GenerateRequest& r : round) {
      TS_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine.Submit(std::move(r)));
      streams.push_back(std::move(s));
    }
    for (auto& s : streams) {
      while (auto e = s->Next()) {
        if (e->finish_reason == FinishReason::kError)
          return InternalError("the warm-up request failed: {}", e->error.ToString());
      }
    }
  }
  return OkStatus();
}

}  // namespace tinyserve
