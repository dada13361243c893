// The Qwen2 forward pass with the norms and SiLU * up quantizing their output for the next
// matmul (Qwen2Model::set_fused_quantization, on by default) against the unfused path (every
// matmul quantizing its f32 input): logits bit for bit equal for every dummy weight type
// (q4_k_m mixes block formats, so some consumers fall back to the f32 path; bf16 takes it
// everywhere), for f16 and int8 KV caches, across thread counts, for prefill chunks of odd
// lengths followed by a decode step in one batch.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/testing/forward_batches.h"
#include "model/qwen2.h"

namespace tinyserve {
namespace {

constexpr int32_t kFusedBlockSize = 4;

using testing::Chunk;
using testing::RandomTokens;

// The engine's layout of `chunks`, with logits for every token.
ForwardBatch Layout(const std::vector<Chunk>& chunks) {
  return testing::LayoutChunks(chunks, kFusedBlockSize, /*all_logits=*/true);
}

// Logits of two steps on a fresh cache: prompts of 7 and 13 tokens, then a batch mixing one
// decode row of the first with a 5-token chunk continuing the second.
std::vector<float> RunTwoSteps(Qwen2Model* model, DType kv_dtype, int threads) {
  const ModelConfig& c = model->config();
  auto kv = KvCache::Create(c, kFusedBlockSize, kv_dtype,
                            16 * KvCache::BlockBytes(c, kFusedBlockSize, kv_dtype));
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  if (!kv.ok()) return {};
  ThreadPool pool(threads);
  const std::vector<int32_t> a = RandomTokens(7, 1), b = RandomTokens(18, 2);
  const std::vector<int32_t> table_a = {3, 9, 0}, table_b = {5, 1, 12, 7, 2};
  std::vector<float> logits;
  for (const ForwardBatch& batch :
       {Layout({{a, 0, table_a}, {{b.begin(), b.begin() + 13}, 0, table_b}}),
        Layout({{{b[0]}, 7, table_a}, {{b.begin() + 13, b.end()}, 13, table_b}})}) {
    std::vector<float> step(batch.num_tokens() * c.vocab_size);
    EXPECT_TRUE(model->Forward(batch, kv->layers(), step.data(), &pool).ok());
    logits.insert(logits.end(), step.begin(), step.end());
  }
  return logits;
}

TEST(Qwen2FusedQuantizationTest, LogitsBitIdenticalToTheUnfusedPath) {
  for (const char* dtype : {"q8_0", "q4_0", "q4_k_m", "bf16"}) {
    LoadOptions options;
    options.dtype = dtype;
    options.seed = 7;
    auto loaded = Qwen2Model::Load("dummy:tiny", options);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    Qwen2Model& model = **loaded;
    for (DType kv : {DType::kF16, DType::kI8}) {
      model.set_fused_quantization(false);
      const std::vector<float> want = RunTwoSteps(&model, kv, 1);
      ASSERT_FALSE(want.empty());
      model.set_fused_quantization(true);
      for (int threads : {1, 2, 3}) {
        const std::vector<float> got = RunTwoSteps(&model, kv, threads);
        ASSERT_EQ(got.size(), want.size());
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << dtype << " kv " << DTypeName(kv) << " threads " << threads;
      }
    }
  }
}

}  // namespace
}  // namespace tinyserve
