#include "model/config.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

// Qwen2.5-0.5B-Instruct's config.json as published (shared/reference/qwen2.5.md).
constexpr const char* kPublishedConfig = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

TEST(ModelConfigTest, ParsesThePublishedQwen25Config) {
  auto c = ModelConfigFromJson(kPublishedConfig);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->hidden_size, 896);
  EXPECT_EQ(c->intermediate_size, 4864);
  EXPECT_EQ(c->num_layers, 24);
  EXPECT_EQ(c->num_heads, 14);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_ids, std::vector<int32_t>{151645});
}

TEST(ModelConfigTest, WrittenConfigParsesBackToTheSameValues) {
  ModelConfig c;
  c.tie_word_embeddings = false;
  c.eos_token_ids = {1, 2};
  auto back = ModelConfigFromJson(ModelConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->hidden_size, c.hidden_size);
  EXPECT_FALSE(back->tie_word_embeddings);
  EXPECT_EQ(back->eos_token_ids, c.eos_token_ids);
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(ModelConfigTest, RejectsHeadsThatDoNotDivideHidden) {
  auto c = ModelConfigFromJson(
      Replace(kPublishedConfig, "\"num_attention_heads\": 14", "\"num_attention_heads\": 13"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("num_attention_heads"), std::string::npos);
}

TEST(ModelConfigTest, RejectsKvHeadsThatDoNotDivideHeads) {
  auto c = ModelConfigFromJson(
      Replace(kPublishedConfig, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("num_key_value_heads"), std::string::npos);
}

TEST(ModelConfigTest, RejectsUnknownArchitectureByName) {
  auto c = ModelConfigFromJson(Replace(kPublishedConfig, "Qwen2ForCausalLM", "LlamaForCausalLM"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("LlamaForCausalLM"), std::string::npos);
}

TEST(ModelConfigTest, RejectsMissingAndMistypedKeys) {
  auto missing = ModelConfigFromJson(Replace(kPublishedConfig, "\"hidden_size\": 896,", ""));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("hidden_size"), std::string::npos);
  auto mistyped = ModelConfigFromJson(
      Replace(kPublishedConfig, "\"vocab_size\": 151936", "\"vocab_size\": \"big\""));
  ASSERT_FALSE(mistyped.ok());
  EXPECT_FALSE(ModelConfigFromJson("not json").ok());
  EXPECT_FALSE(
      ModelConfigFromJson(Replace(kPublishedConfig, "\"vocab_size\": 151936", "\"vocab_size\": -5"))
          .ok());
  EXPECT_FALSE(ModelConfigFromJson(Replace(kPublishedConfig, "\"eos_token_id\": 151645",
                                           "\"eos_token_id\": 999999"))
                   .ok());
}

TEST(GenerationDefaultsTest, ParsesQwenGenerationConfig) {
  auto d = GenerationDefaultsFromJson(QwenGenerationConfigJson());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FLOAT_EQ(*d->temperature, 0.7f);
  EXPECT_FLOAT_EQ(*d->top_p, 0.8f);
  EXPECT_EQ(*d->top_k, 20);
  EXPECT_FLOAT_EQ(*d->repetition_penalty, 1.1f);
  EXPECT_EQ(d->eos_token_ids, (std::vector<int32_t>{151645, 151643}));
  EXPECT_EQ(*d->pad_token_id, 151643);
  EXPECT_FALSE(d->min_p.has_value());
}

TEST(GenerationDefaultsTest, DoSampleFalseMeansGreedy) {
  auto d = GenerationDefaultsFromJson(R"({"do_sample": false, "top_k": 5})");
  ASSERT_TRUE(d.ok());
  EXPECT_FLOAT_EQ(*d->temperature, 0.0f);
  EXPECT_FALSE(GenerationDefaultsFromJson(R"({"temperature": "hot"})").ok());
}

}  // namespace
}  // namespace tinyserve
