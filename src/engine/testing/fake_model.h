// Test doubles for the engine: a Model whose logits are a hash of the whole context it reads
// back from the paged KV cache (so any paging, chunking, prefix-reuse or preemption bug changes
// its output), the same function as a plain oracle, and a byte-level fake vocabulary.
// Header-only; tests and benchmarks only. Forward runs on the engine thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/request.h"
#include "engine/token_text.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "model/model.h"
#include "util/mix.h"

namespace tinyserve::testing {

// The fake model's logits for the context `tokens` (independent of how it was batched).
inline void FakeLogits(const std::vector<int32_t>& tokens, int64_t vocab, float* out) {
  uint64_t h = 0x1234;
  for (int32_t t : tokens) h = Mix64(h ^ static_cast<uint32_t>(t));
  for (int64_t v = 0; v < vocab; ++v) {
    out[v] =
        static_cast<float>(Mix64(h ^ (static_cast<uint64_t>(v) << 20)) >> 40) * 0x1.0p-24f * 8.0f;
  }
}

// A request for `max_tokens` greedy tokens after `prompt`, EOS ignored: what FakeGreedy predicts.
inline GenerateRequest GreedyRequest(std::vector<int32_t> prompt, int32_t max_tokens) {
  GenerateRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

// Greedy continuation of `prompt` by the fake model: the oracle for engine tests.
inline std::vector<int32_t> FakeGreedy(std::vector<int32_t> prompt, int64_t vocab,
                                       int32_t num_tokens) {
  std::vector<float> logits(vocab);
  std::vector<int32_t> out;
  for (int32_t i = 0; i < num_tokens; ++i) {
    FakeLogits(prompt, vocab, logits.data());
    int32_t best = 0;
    for (int64_t v = 1; v < vocab; ++v) {
      if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
    }
    out.push_back(best);
    prompt.push_back(best);
  }
  return out;
}

class FakeModel : public Model {
 public:
  static constexpr int64_t kVocab = 512;
  static constexpr int32_t kEos = 511;

  FakeModel() {
    config_.vocab_size = kVocab;
    config_.hidden_size = 8;
    config_.intermediate_size = 8;
    config_.num_layers = 2;
    config_.num_heads = 2;
    config_.num_kv_heads = 1;
    config_.head_dim = 4;
    config_.max_position_embeddings = 4096;
    config_.eos_token_ids = {kEos};
  }

  const ModelConfig& config() const override { return config_; }

  // Called at the start of every Forward with the step number (tests abort / submit from it).
  std::function<void(int64_t step, const ForwardBatch&)> on_forward;
  // When set, the token after generated position g (0-based, counted from script_start) is
  // script[g] (cycling): scripted outputs for text tests.
  std::vector<int32_t> script;
  int32_t script_start = 0;

  // Forward fails (InternalError) at this step number; -1: never.
  int64_t fail_at_step = -1;

  std::atomic<int64_t> num_forward_tokens{0};
  std::atomic<int64_t> num_steps{0};

  Status Forward(const ForwardBatch& batch, std::span<const kernels::PagedKvLayer> kv_layers,
                 float* logits, ThreadPool* pool) override {
    const int64_t step = num_steps++;
    if (on_forward) on_forward(step, batch);
    if (step == fail_at_step) return InternalError("injected failure at step {}", step);
    num_forward_tokens += batch.num_tokens();
    if (static_cast<int64_t>(kv_layers.size()) != config_.num_layers) {
      return InvalidArgumentError("expected {} kv layers", config_.num_layers);
    }
    // Write every token's K/V first (as a real model does layer by layer before attention).
    for (int64_t t = 0; t < batch.num_tokens(); ++t) {
      for (size_t l = 0; l < kv_layers.size(); ++l) {
        const float k[4] = {static_cast<float>(batch.token_ids[t]),
                            static_cast<float>(batch.positions[t] % 2048), static_cast<float>(l),
                            1.0f};
        const float v[4] = {static_cast<float>(l), 0.0f, 0.0f,
                            static_cast<float>(batch.token_ids[t])};
        Store(kv_layers[l], batch.slot_mapping[t], k, v);
      }
    }
    // Logits: read each context back from the cache through the block table.
    for (size_t r = 0; r < batch.logit_rows.size(); ++r) {
      const int32_t row = batch.logit_rows[r];
      int32_t s = 0;
      while (batch.query_start[s + 1] <= row) ++s;
      const int32_t pos = batch.positions[row];
      if (pos != batch.seq_lens[s] - (batch.query_start[s + 1] - row)) {
        return InternalError("row {} position {} disagrees with seq_lens", row, pos);
      }
      std::vector<int32_t> context;
      for (int32_t j = 0; j <= pos; ++j) {
        const int64_t block =
            batch.block_tables[s * batch.max_blocks_per_seq + j / kv_layers[0].block_size];
        const int64_t slot = block * kv_layers[0].block_size + j % kv_layers[0].block_size;
        int32_t token = -1;
        for (size_t l = 0; l < kv_layers.size(); ++l) {
          float k[4], v[4];
          Load(kv_layers[l], slot, k, v);
          if (k[1] != static_cast<float>(j % 2048) || k[2] != static_cast<float>(l) ||
              v[0] != static_cast<float>(l) || k[0] != v[3] || k[3] != 1.0f) {
            return InternalError("KV slot {} holds the wrong token for position {}", slot, j);
          }
          token = static_cast<int32_t>(k[0]);
        }
        context.push_back(token);
      }
      float* out = logits + r * kVocab;
      if (!script.empty() && pos + 1 >= script_start) {
        const size_t g = static_cast<size_t>(pos + 1 - script_start) % script.size();
        for (int64_t v = 0; v < kVocab; ++v) out[v] = 0.0f;
        out[script[g]] = 10.0f;
      } else {
        FakeLogits(context, kVocab, out);
      }
    }
    return OkStatus();
  }

 private:
  static void Store(const kernels::PagedKvLayer& layer, int64_t slot, const float* k,
                    const float* v) {
    const int64_t n = int64_t{layer.num_kv_heads} * layer.head_dim;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = slot * n + i;
      switch (layer.dtype) {
        case DType::kF32:
          static_cast<float*>(layer.k)[at] = k[i % 4];
          static_cast<float*>(layer.v)[at] = v[i % 4];
          break;
        case DType::kF16:
          static_cast<uint16_t*>(layer.k)[at] = F32ToFp16(k[i % 4]);
          static_cast<uint16_t*>(layer.v)[at] = F32ToFp16(v[i % 4]);
          break;
        default:
          static_cast<uint16_t*>(layer.k)[at] = F32ToBf16(k[i % 4]);
          static_cast<uint16_t*>(layer.v)[at] = F32ToBf16(v[i % 4]);
      }
    }
  }
  static void Load(const kernels::PagedKvLayer& layer, int64_t slot, float* k, float* v) {
    const int64_t n = int64_t{layer.num_kv_heads} * layer.head_dim;
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t at = slot * n + i;
      switch (layer.dtype) {
        case DType::kF32:
          k[i] = static_cast<const float*>(layer.k)[at];
          v[i] = static_cast<const float*>(layer.v)[at];
          break;
        case DType::kF16:
          k[i] = Fp16ToF32(static_cast<const uint16_t*>(layer.k)[at]);
          v[i] = Fp16ToF32(static_cast<const uint16_t*>(layer.v)[at]);
          break;
        default:
          k[i] = Bf16ToF32(static_cast<const uint16_t*>(layer.k)[at]);
          v[i] = Bf16ToF32(static_cast<const uint16_t*>(layer.v)[at]);
      }
    }
  }

  ModelConfig config_;
};

// Fake vocabulary: ids 0..255 are single bytes; 256.. are the strings in `extra`; the EOS
// (FakeModel::kEos) is special and reads "<eos>".
inline TokenText FakeTokenText(std::vector<std::string> extra) {
  TokenText t;
  t.token_bytes = [extra = std::move(extra)](int32_t id) -> std::string {
    if (id < 256) return std::string(1, static_cast<char>(id));
    if (id == FakeModel::kEos) return "<eos>";
    const size_t k = static_cast<size_t>(id - 256);
    return k < extra.size() ? extra[k] : std::string("?");
  };
  t.is_special = [](int32_t id) { return id == FakeModel::kEos; };
  return t;
}

}  // namespace tinyserve::testing
