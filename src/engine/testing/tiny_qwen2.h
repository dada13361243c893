// Engines over the real Qwen2 forward pass on the dummy "tiny" preset (2 layers, hidden 64, the
// real vocabulary, seeded random f32 weights), for engine tests that need real logits.
// Header-only; tests only.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "engine/engine_core.h"
#include "engine/kv_cache.h"
#include "model/qwen2.h"

namespace tinyserve::testing {

// Loaded once per test binary.
inline std::shared_ptr<Model> TinyQwen2Model() {
  static std::shared_ptr<Model> model = [] {
    LoadOptions load;
    load.dtype = "f32";
    auto m = Qwen2Model::Load("dummy:tiny", load);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return std::shared_ptr<Model>(std::move(*m));
  }();
  return model;
}

// Blocks of 4 tokens, an f32 KV cache of 2048 blocks, two threads, a 512-token context.
inline EngineOptions TinyQwen2Options() {
  EngineOptions o;
  o.block_size = 4;
  o.threads = 2;
  o.kv_cache_dtype = DType::kF32;
  o.kv_cache_memory_bytes = 2048 * KvCache::BlockBytes(TinyQwen2Model()->config(), 4, DType::kF32);
  o.max_model_len = 512;
  return o;
}

inline std::unique_ptr<EngineCore> MakeTinyQwen2Engine(const EngineOptions& o) {
  auto e = EngineCore::Create(TinyQwen2Model(), o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(*e) : nullptr;
}

}  // namespace tinyserve::testing
