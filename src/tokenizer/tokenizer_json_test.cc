// tokenizer.json read in one pass (ReadTokenizerJson) against nlohmann's DOM of the same text,
// on the real Qwen2.5 file and on hand-made ones; and Tokenizer::FromJson on hostile documents:
// each a clear error, none a crash or an exception.
#include "tokenizer/tokenizer_json.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"
#include "util/read_file.h"

namespace tinyserve {
namespace {

using JsonDom = nlohmann::json;

TEST(ReadTokenizerJsonTest, QwenFileGivesTheDomsVocabMergesAndTheRest) {
  const std::string path = QwenTokenizerDir() + "/tokenizer.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run scripts/setup.sh";
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto parts = ReadTokenizerJson(*text);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();

  JsonDom dom = JsonDom::parse(*text);
  JsonDom& model = dom["model"];
  std::vector<std::string> vocab;
  for (const auto& [piece, id] : model["vocab"].items()) {
    if (id.get<size_t>() >= vocab.size()) vocab.resize(id.get<size_t>() + 1);
    vocab[id.get<size_t>()] = piece;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (const JsonDom& m : model["merges"]) {
    if (m.is_array()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      const std::string s = m.get<std::string>();
      merges.emplace_back(s.substr(0, s.find(' ', 1)), s.substr(s.find(' ', 1) + 1));
    }
  }
  EXPECT_TRUE(parts->has_vocab);
  EXPECT_TRUE(parts->has_merges);
  EXPECT_EQ(parts->vocab.size(), 151643u);
  EXPECT_EQ(parts->vocab, vocab);
  EXPECT_EQ(parts->merges.size(), 151387u);
  EXPECT_EQ(parts->merges, merges);
  model.erase("vocab");
  model.erase("merges");
  EXPECT_EQ(parts->rest, dom);
}

TEST(ReadTokenizerJsonTest, BothMergeSpellingsAndIdsInAnyOrder) {
  auto parts = ReadTokenizerJson(
      R"({"model": {"type": "BPE", "vocab": {"ab": 2, "a": 0, "b": 1},
          "merges": ["a b", ["a", "b"]]}, "x": [1, {"y": null}]})");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->vocab, (std::vector<std::string>{"a", "b", "ab"}));
  const std::pair<std::string, std::string> ab{"a", "b"};
  EXPECT_EQ(parts->merges, (std::vector<std::pair<std::string, std::string>>{ab, ab}));
  EXPECT_EQ(parts->rest, JsonDom::parse(R"({"model": {"type": "BPE"}, "x": [1, {"y": null}]})"));
}

TEST(ReadTokenizerJsonTest, VocabAndMergesElsewhereStayInTheDocument) {
  const std::string text =
      R"({"other": {"vocab": {"a": "x"}, "merges": 5}, "model": {"vocab": 3, "merges": {}}})";
  auto parts = ReadTokenizerJson(text);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_FALSE(parts->has_vocab);
  EXPECT_FALSE(parts->has_merges);
  EXPECT_EQ(parts->rest, JsonDom::parse(text));
}

TEST(ReadTokenizerJsonTest, MalformedValuesAreErrorsNamingWhatIsWrong) {
  const struct {
    const char* text;
    const char* error;
  } cases[] = {
      {R"({"model": {"vocab": {"a": 0}, )", "not valid JSON"},
      {"", "not valid JSON"},
      {R"({"model": {"vocab": {"a": "0"}}})", "bad vocab id"},
      {R"({"model": {"vocab": {"a": 1.5}}})", "bad vocab id"},
      {R"({"model": {"vocab": {"a": [0]}}})", "bad vocab id"},
      {R"({"model": {"vocab": {"a": -1}}})", "out of range"},
      {R"({"model": {"vocab": {"a": 16777217}}})", "out of range"},
      {R"({"model": {"merges": ["ab"]}})", "bad merge 'ab'"},
      {R"({"model": {"merges": [7]}})", "bad merge entry"},
      {R"({"model": {"merges": [["a"]]}})", "bad merge entry"},
      {R"({"model": {"merges": [["a", "b", "c"]]}})", "bad merge entry"},
      {R"({"model": {"merges": [["a", 1]]}})", "bad merge entry"},
      {R"({"model": {"merges": [[["a", "b"]]]}})", "bad merge entry"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto parts = ReadTokenizerJson(c.text);
    ASSERT_FALSE(parts.ok());
    EXPECT_NE(parts.status().message().find(c.error), std::string::npos)
        << parts.status().ToString();
  }
}

TEST(ReadTokenizerJsonTest, DeepNestingIsReadWithoutRecursion) {
  const int depth = 200000;
  const std::string text = std::string(depth, '[') + std::string(depth, ']');
  auto parts = ReadTokenizerJson(text);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_TRUE(parts->rest.is_array());
}

// The smallest document Tokenizer::FromJson takes: Qwen2's pipeline over the 256 byte tokens
// (id = byte) and "ab" (256), one added token (257).
JsonDom MinimalTokenizerJson() {
  JsonDom vocab = JsonDom::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelEncode(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  return {{"model",
           {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}, {"byte_fallback", nullptr}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", kQwen2PretokenizerRegex}}}},
              {{"type", "ByteLevel"}}}}}},
          {"added_tokens", {{{"id", 257}, {"content", "<|x|>"}, {"special", true}}}}};
}

TEST(TokenizerFromJsonTest, MinimalDocumentEncodes) {
  auto t = Tokenizer::FromJson(MinimalTokenizerJson().dump(), "");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Encode("ab<|x|>a"), (std::vector<int32_t>{256, 257, 'a'}));
}

TEST(TokenizerFromJsonTest, HostileDocumentsAreErrorsNotCrashes) {
  const std::vector<std::pair<std::string, std::function<void(JsonDom&)>>> edits = {
      {"no model", [](JsonDom& j) { j.erase("model"); }},
      {"model not an object", [](JsonDom& j) { j["model"] = "BPE"; }},
      {"model type a number", [](JsonDom& j) { j["model"]["type"] = 5; }},
      {"no vocab", [](JsonDom& j) { j["model"].erase("vocab"); }},
      {"merges an object", [](JsonDom& j) { j["model"]["merges"] = JsonDom::object(); }},
      {"option of the wrong type", [](JsonDom& j) { j["model"]["end_of_word_suffix"] = 1; }},
      {"byte fallback on", [](JsonDom& j) { j["model"]["byte_fallback"] = true; }},
      {"normalizer a number", [](JsonDom& j) { j["normalizer"] = 1; }},
      {"pre-tokenizer an array",
       [](JsonDom& j) {
         j["pre_tokenizer"] = {"Split", "ByteLevel"};
       }},
      {"regex pattern a string",
       [](JsonDom& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = "Split ByteLevel"; }},
      {"added token id 2^31", [](JsonDom& j) { j["added_tokens"][0]["id"] = int64_t{1} << 31; }},
      {"added token id -1", [](JsonDom& j) { j["added_tokens"][0]["id"] = -1; }},
      {"added token content a number", [](JsonDom& j) { j["added_tokens"][0]["content"] = 7; }},
      {"root an array", [](JsonDom& j) { j = JsonDom::array({j}); }},
  };
  for (const auto& [name, edit] : edits) {
    SCOPED_TRACE(name);
    JsonDom doc = MinimalTokenizerJson();
    edit(doc);
    auto t = Tokenizer::FromJson(doc.dump(), "");
    ASSERT_FALSE(t.ok());
    EXPECT_FALSE(t.status().message().empty());
    EXPECT_EQ(t.status().message().find("byte"), std::string::npos)  // not the base's error
        << t.status().ToString();
  }
}

}  // namespace
}  // namespace tinyserve
