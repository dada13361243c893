#include "tokenizer/qwen25_files.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/paths.h"

namespace tinyserve {
namespace {

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str());
}

TEST(Qwen25FilesTest, TokenizerJsonDropsOnlyQwen3AddedTokens) {
  const std::string dir = QwenTokenizerDir();
  if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_FAIL() << "run scripts/setup.sh";
  auto text = Qwen25TokenizerJson(dir);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  nlohmann::json ours = nlohmann::json::parse(*text);
  nlohmann::json expected = ReadJson(dir + "/tokenizer.json");
  auto& added = expected["added_tokens"];
  added.erase(std::remove_if(added.begin(), added.end(),
                             [](const nlohmann::json& t) { return t["id"].get<int>() >= 151665; }),
              added.end());
  ASSERT_EQ(added.size(), 22u);
  EXPECT_EQ(ours["added_tokens"].back()["content"], "<|file_sep|>");
  EXPECT_TRUE(ours == expected);
}

TEST(Qwen25FilesTest, MissingDirectoryIsNotFound) {
  auto text = Qwen25TokenizerJson("/nonexistent/dir");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kNotFound);
}

TEST(Qwen25FilesTest, ConfigHasQwen25Fields) {
  nlohmann::json config = nlohmann::json::parse(Qwen25TokenizerConfigJson());
  EXPECT_EQ(config["eos_token"], "<|im_end|>");
  EXPECT_EQ(config["pad_token"], "<|endoftext|>");
  EXPECT_TRUE(config["bos_token"].is_null());
  EXPECT_EQ(config["model_max_length"], 131072);
  EXPECT_EQ(config["added_tokens_decoder"].size(), 22u);
  EXPECT_EQ(config["added_tokens_decoder"]["151657"]["content"], "<tool_call>");
  EXPECT_FALSE(config["added_tokens_decoder"]["151657"]["special"].get<bool>());
  EXPECT_TRUE(config["added_tokens_decoder"]["151645"]["special"].get<bool>());
  EXPECT_EQ(config["chat_template"].get<std::string>(), std::string(kQwen25ChatTemplate));
}

TEST(Qwen25FilesTest, TemplateHasThePublishedShape) {
  EXPECT_TRUE(kQwen25ChatTemplate.starts_with(
      "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == "
      "'system' %}"));
  EXPECT_TRUE(kQwen25ChatTemplate.ends_with(
      "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"));
  EXPECT_NE(kQwen25ChatTemplate.find("You are Qwen, created by Alibaba Cloud. You are a helpful "
                                     "assistant."),
            std::string_view::npos);
}

}  // namespace
}  // namespace tinyserve
