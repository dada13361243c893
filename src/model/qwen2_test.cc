#include "model/qwen2.h"

#include <gtest/gtest.h>

#include "model/dummy.h"

namespace tinyserve {
namespace {

// The forward pass itself is tested through the engine's batch layout and KV cache in
// engine/qwen2_forward_test.cc (the model layer has no KV cache of its own).

TEST(Qwen2WeightsTest, MissingOrMisshapedTensorsAreNamed) {
  auto config = DummyPresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  auto weights = MakeDummyWeights(*config, DummyDType::kF32, 1);
  ASSERT_TRUE(weights.ok());
  const DummyWeights& w = **weights;
  const std::string missing = "model.layers.1.self_attn.k_proj.bias";
  auto bound = BindQwen2Tensors(*config, Qwen2Naming::kHuggingFace,
                                [&](const std::string& name) -> const TensorView* {
                                  return name == missing ? nullptr : w.Find(name);
                                });
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find(missing), std::string::npos);

  TensorView wrong = *w.Find("model.layers.0.mlp.down_proj.weight");
  wrong.shape = {128, 64};
  bound = BindQwen2Tensors(*config, Qwen2Naming::kHuggingFace,
                           [&](const std::string& name) -> const TensorView* {
                             return name == wrong.name ? &wrong : w.Find(name);
                           });
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("down_proj"), std::string::npos);

  ModelConfig untied = *config;
  untied.tie_word_embeddings = false;
  bound = BindQwen2Tensors(untied, Qwen2Naming::kHuggingFace,
                           [&](const std::string& name) { return w.Find(name); });
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("lm_head.weight"), std::string::npos);
}

TEST(Qwen2WeightsTest, GgufNamesAndAnOutputMatrixStoredTwiceBind) {
  auto config = DummyPresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  auto weights = MakeDummyWeights(*config, DummyDType::kF32, 1);
  ASSERT_TRUE(weights.ok());
  const DummyWeights& w = **weights;
  // A GGUF-named view of the same tensors, with output.weight a copy of token_embd.weight.
  auto to_hf = [&](const std::string& gguf) -> std::string {
    if (gguf == "output.weight") return "model.embed_tokens.weight";
    for (auto role : {Qwen2GlobalRole::kEmbed, Qwen2GlobalRole::kFinalNorm})
      if (gguf == Qwen2GlobalTensorName(Qwen2Naming::kGguf, role))
        return Qwen2GlobalTensorName(Qwen2Naming::kHuggingFace, role);
    for (int64_t l = 0; l < config->num_layers; ++l)
      for (int r = 0; r < kNumQwen2LayerRoles; ++r)
        if (gguf == Qwen2LayerTensorName(Qwen2Naming::kGguf, l, Qwen2LayerRole(r)))
          return Qwen2LayerTensorName(Qwen2Naming::kHuggingFace, l, Qwen2LayerRole(r));
    return "";
  };
  auto bound = BindQwen2Tensors(*config, Qwen2Naming::kGguf,
                                [&](const std::string& name) { return w.Find(to_hf(name)); });
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  ASSERT_TRUE(bound->output.has_value());
  EXPECT_EQ(bound->output->name, "output.weight");
  EXPECT_EQ(bound->layers[1].q_bias.name, "blk.1.attn_q.bias");
}

}  // namespace
}  // namespace tinyserve
