// The Qwen2 forward pass against the plain-loop reference (and the dummy weight formats
// against each other), run the way the engine runs it: batches laid out by BuildForwardBatch
// over the engine's KvCache, with sequences built by hand instead of by the scheduler.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/testing/forward_batches.h"
#include "model/dummy.h"
#include "model/qwen2.h"
#include "model/qwen2_reference.h"
#include "util/paths.h"

namespace tinyserve {
namespace {

constexpr int32_t kBlockSize = 4;  // small blocks: sequences span several, out of order

using testing::Chunk;
using testing::RandomTokens;

// The engine's layout of `chunks` in this file's blocks.
ForwardBatch Layout(const std::vector<Chunk>& chunks, bool all_logits) {
  return testing::LayoutChunks(chunks, kBlockSize, all_logits);
}

std::unique_ptr<Qwen2Model> LoadTiny(const std::string& dtype, uint64_t seed = 7) {
  LoadOptions options;
  options.dtype = dtype;
  options.seed = seed;
  auto m = Qwen2Model::Load("dummy:tiny", options);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

double RelError(const float* a, const float* b, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += double(a[i] - b[i]) * (a[i] - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

// Block tables drawn from a shuffled pool, so consecutive blocks of a sequence are scattered.
std::vector<std::vector<int32_t>> ScatteredTables(int num_seqs, int blocks_each, uint32_t seed) {
  std::vector<int32_t> pool(num_seqs * blocks_each);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937(seed));
  std::vector<std::vector<int32_t>> tables(num_seqs);
  for (int s = 0; s < num_seqs; ++s)
    tables[s].assign(pool.begin() + s * blocks_each, pool.begin() + (s + 1) * blocks_each);
  return tables;
}

// A KV cache of exactly `num_blocks` blocks.
KvCache MakeCache(const ModelConfig& config, int64_t num_blocks) {
  auto kv = KvCache::Create(config, kBlockSize, DType::kF32,
                            num_blocks * KvCache::BlockBytes(config, kBlockSize, DType::kF32));
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  return std::move(*kv);
}

TEST(Qwen2ModelTest, EveryPromptPositionMatchesTheReference) {
  auto model = LoadTiny("f32");
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  auto ref = Qwen2Reference::Create(model->config(), model->tensors());
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const std::vector<int32_t> prompt = RandomTokens(10, 1);
  Qwen2Reference::Sequence seq;
  const std::vector<float> expected = ref->Forward(&seq, prompt);

  KvCache cache = MakeCache(model->config(), 8);
  ForwardBatch batch = Layout({{prompt, 0, {5, 2, 7}}}, /*all_logits=*/true);
  std::vector<float> logits(prompt.size() * vocab);
  ThreadPool pool(2);
  ASSERT_TRUE(model->Forward(batch, cache.layers(), logits.data(), &pool).ok());
  for (size_t t = 0; t < prompt.size(); ++t)
    EXPECT_LE(RelError(&logits[t * vocab], &expected[t * vocab], vocab), 1e-4) << "position " << t;
}

TEST(Qwen2ModelTest, SequencesInOneBatchAndDecodeStepsMatchTheReference) {
  auto model = LoadTiny("f32");
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  auto ref = Qwen2Reference::Create(model->config(), model->tensors());
  ASSERT_TRUE(ref.ok());
  const std::vector<int> prompt_lens = {7, 1, 5};
  const int kSteps = 3;
  const auto tables = ScatteredTables(3, 4, 3);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Qwen2Reference::Sequence> ref_seqs(3);
  std::vector<std::vector<float>> ref_logits;
  for (int s = 0; s < 3; ++s) {
    prompts.push_back(RandomTokens(prompt_lens[s], 10 + s));
    ref_logits.push_back(ref->Forward(&ref_seqs[s], prompts[s]));
  }
  KvCache cache = MakeCache(model->config(), 12);
  ThreadPool pool(2);
  // Prefill: the three prompts in one call, logits of the last token of each.
  std::vector<Chunk> prefill;
  prefill.reserve(3);
  for (int s = 0; s < 3; ++s) prefill.push_back({prompts[s], 0, tables[s]});
  ForwardBatch batch = Layout(prefill, false);
  std::vector<float> logits(3 * vocab);
  ASSERT_TRUE(model->Forward(batch, cache.layers(), logits.data(), &pool).ok());
  for (int s = 0; s < 3; ++s) {
    EXPECT_LE(RelError(&logits[s * vocab], &ref_logits[s][(prompt_lens[s] - 1) * vocab], vocab),
              1e-4)
        << "sequence " << s;
  }
  // Decode: one new token per sequence per step, through the paged cache.
  std::vector<int> lens = prompt_lens;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<Chunk> chunks;
    std::vector<std::vector<float>> expected;
    for (int s = 0; s < 3; ++s) {
      const std::vector<int32_t> next = RandomTokens(1, 100 + step * 3 + s);
      chunks.push_back({next, lens[s], tables[s]});
      expected.push_back(ref->Forward(&ref_seqs[s], next));
      ++lens[s];
    }
    ForwardBatch decode = Layout(chunks, false);
    ASSERT_TRUE(model->Forward(decode, cache.layers(), logits.data(), &pool).ok());
    for (int s = 0; s < 3; ++s)
      EXPECT_LE(RelError(&logits[s * vocab], expected[s].data(), vocab), 1e-4)
          << "step " << step << " sequence " << s;
  }
}

TEST(Qwen2ModelTest, MalformedBatchesAreErrors) {
  auto model = LoadTiny("f32");
  ASSERT_NE(model, nullptr);
  KvCache cache = MakeCache(model->config(), 4);
  std::vector<float> logits(4 * model->config().vocab_size);
  auto good = [] { return Layout({{{1, 2, 3}, 0, {0, 1}}}, true); };
  ASSERT_TRUE(model->Forward(good(), cache.layers(), logits.data(), nullptr).ok());
  auto expect_error = [&](const ForwardBatch& b, const char* what) {
    Status s = model->Forward(b, cache.layers(), logits.data(), nullptr);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << what;
  };
  ForwardBatch b = good();
  b.token_ids[1] = 151936;
  expect_error(b, "token id out of the vocabulary");
  b = good();
  b.slot_mapping[2] = 4 * kBlockSize;
  expect_error(b, "slot outside the cache");
  b = good();
  b.positions.pop_back();
  expect_error(b, "positions shorter than tokens");
  b = good();
  b.positions[1] = 5;
  expect_error(b, "position inconsistent with seq_len");
  b = good();
  b.logit_rows = {2, 1};
  expect_error(b, "logit rows not ascending");
  b = good();
  b.block_tables[0] = 9;
  expect_error(b, "block outside the cache");
  b = good();
  b.seq_lens[0] = 2;
  expect_error(b, "seq_len shorter than the query");
  b = good();
  b.query_start = {0, 2};
  expect_error(b, "query_start not ending at num_tokens");
  b = good();
  EXPECT_EQ(model->Forward(b, cache.layers().subspan(1), logits.data(), nullptr).code(),
            StatusCode::kInvalidArgument);
}

std::vector<float> LastLogits(Qwen2Model& model, const std::vector<int32_t>& prompt) {
  KvCache cache = MakeCache(model.config(), 8);
  std::vector<float> logits(model.config().vocab_size);
  EXPECT_TRUE(model
                  .Forward(Layout({{prompt, 0, {0, 1, 2, 3, 4, 5, 6, 7}}}, false), cache.layers(),
                           logits.data(), nullptr)
                  .ok());
  return logits;
}

TEST(DummyModelTest, QuantizedModelsGiveFiniteLogitsCloseToF32) {
  const std::vector<int32_t> prompt = RandomTokens(6, 5);
  auto f32 = LoadTiny("f32");
  ASSERT_NE(f32, nullptr);
  const std::vector<float> reference = LastLogits(*f32, prompt);
  // Bounds: per-weight rounding of q8_0 is ~0.4% of the block's scale, q4_0 ~7%; through two
  // layers with activations quantized to int8 too, the logits move by a few percent at most.
  for (auto [dtype, bound] : {std::pair{"bf16", 0.02}, std::pair{"q8_0", 0.05},
                              std::pair{"q4_k_m", 0.25}, std::pair{"q4_0", 0.35}}) {
    auto model = LoadTiny(dtype);
    ASSERT_NE(model, nullptr) << dtype;
    const std::vector<float> logits = LastLogits(*model, prompt);
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << dtype;
    EXPECT_LE(RelError(logits.data(), reference.data(), logits.size()), bound) << dtype;
  }
}

TEST(DummyModelTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  auto a = LoadTiny("bf16", 3), b = LoadTiny("bf16", 3), c = LoadTiny("bf16", 4);
  const std::vector<int32_t> prompt = RandomTokens(3, 9);
  EXPECT_EQ(LastLogits(*a, prompt), LastLogits(*b, prompt));
  EXPECT_NE(LastLogits(*a, prompt), LastLogits(*c, prompt));
}

TEST(DummyModelTest, GgufAndSafetensorsOfOneSeedGiveTheSameLogits) {
  const std::string tokenizer_dir = QwenTokenizerDir();
  if (!std::filesystem::exists(tokenizer_dir + "/tokenizer.json"))
    GTEST_FAIL() << "no tokenizer files in " << tokenizer_dir << " (run scripts/setup.sh)";
  auto config = DummyPresetConfig("tiny");
  auto weights = MakeDummyWeights(*config, DummyDType::kBF16, 11);
  ASSERT_TRUE(weights.ok());
  const std::string dir = ::testing::TempDir() + "/tinyserve_dummy_model_test";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteDummySafetensors(**weights, tokenizer_dir, dir + "/st").ok());
  Status s = WriteDummyGguf(**weights, tokenizer_dir, dir + "/tiny.gguf");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(WriteDummySafetensors(**MakeDummyWeights(*config, DummyDType::kQ8_0, 1),
                                     tokenizer_dir, dir + "/q8")
                   .ok());
  auto st = Qwen2Model::Load(dir + "/st", {});
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto gguf = Qwen2Model::Load(dir + "/tiny.gguf", {});
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  EXPECT_TRUE((*st)->generation_defaults().has_value());
  EXPECT_EQ((*gguf)->config().num_layers, 2);
  const std::vector<int32_t> prompt = RandomTokens(5, 2);
  const std::vector<float> a = LastLogits(**st, prompt), b = LastLogits(**gguf, prompt);
  EXPECT_LE(RelError(a.data(), b.data(), a.size()), 1e-6);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tinyserve
