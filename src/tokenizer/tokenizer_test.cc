#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "formats/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/pretokenizer_pcre2.h"
#include "tokenizer/qwen25_files.h"
#include "tokenizer/testing/qwen_tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/paths.h"

namespace tinyserve {
namespace {

// Corpus texts as the C++ side sees them (see tests/node/tokenizer_hf.test.mjs).
std::vector<std::string> CorpusBytes() {
  std::ifstream in(std::string(TINYSERVE_SOURCE_DIR) + "/tests/data/tokenizer_corpus.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    // Lines with lone surrogates do not parse as strict JSON here; the node test covers them.
    const auto c = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded()) continue;
    if (c.contains("hex")) {
      const std::string hex = c["hex"];
      std::string bytes;
      for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      }
      out.push_back(bytes);
    } else {
      out.push_back(c["text"].get<std::string>());
    }
  }
  return out;
}

class QwenTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tokenizer_ = testing::SharedQwenTokenizer().tokenizer; }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_FAIL() << testing::SharedQwenTokenizer().error;
  }
  static const Tokenizer* tokenizer_;
};
const Tokenizer* QwenTokenizerTest::tokenizer_ = nullptr;

TEST_F(QwenTokenizerTest, PublishedExamplesEncodeAsInTheReference) {
  EXPECT_EQ(tokenizer_->Encode("Hello, world! 你好，世界"),
            (std::vector<int32_t>{9707, 11, 1879, 0, 220, 108386, 3837, 99489}));
  EXPECT_EQ(tokenizer_->Encode("<|im_start|>user\nhi<|im_end|>"),
            (std::vector<int32_t>{151644, 872, 198, 6023, 151645}));
  EXPECT_EQ(tokenizer_->num_tokens(), 151665);
  EXPECT_EQ(tokenizer_->eos_id(), 151645);
  EXPECT_EQ(tokenizer_->pad_id(), 151643);
  EXPECT_FALSE(tokenizer_->bos_id().has_value());
}

TEST_F(QwenTokenizerTest, SpecialTokenTextIsPlainWhenNotAllowed) {
  const auto ids = tokenizer_->Encode("<|im_start|>user", /*allow_special=*/false);
  for (int32_t id : ids) EXPECT_FALSE(tokenizer_->IsSpecial(id));
  EXPECT_EQ(tokenizer_->Decode(ids), "<|im_start|>user");
}

TEST_F(QwenTokenizerTest, DecodeSkipsOnlySpecialTokens) {
  const auto ids = tokenizer_->Encode("<|im_start|>a<tool_call>b<|im_end|>");
  EXPECT_EQ(tokenizer_->Decode(ids, /*skip_special=*/true), "a<tool_call>b");
}

TEST_F(QwenTokenizerTest, EncodeIsThreadSafeAndDeterministic) {
  const auto corpus = CorpusBytes();
  ASSERT_GE(corpus.size(), 300u);
  std::vector<std::vector<int32_t>> expected;
  expected.reserve(corpus.size());
  for (const auto& text : corpus) expected.push_back(tokenizer_->Encode(text));
  std::vector<std::thread> threads;
  threads.reserve(4);
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < corpus.size() * 2; i += 3) {
        const size_t idx = i % corpus.size();
        if (tokenizer_->Encode(corpus[idx]) != expected[idx]) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST_F(QwenTokenizerTest, CacheDoesNotChangeResults) {
  const auto corpus = CorpusBytes();
  auto uncached = Tokenizer::Qwen25FromNpmDir(QwenTokenizerDir());
  ASSERT_TRUE(uncached.ok());
  (*uncached)->set_cache_capacity(0);
  for (const auto& text : corpus) ASSERT_EQ((*uncached)->Encode(text), tokenizer_->Encode(text));
}

TEST_F(QwenTokenizerTest, HandScannerSplitsLikePcre2OnTheCorpus) {
  auto pcre = Pcre2Pretokenizer::Create();
  ASSERT_TRUE(pcre.ok()) << pcre.status().ToString();
  std::vector<std::string> texts = CorpusBytes();
  texts.push_back(
      "a\xC2\x85\xC2\x85"
      "b x\xE2\x80\xA8\xE2\x80\xA8y \t\t\n z  ");
  for (const auto& raw : texts) {
    const std::string text = RepairUtf8(raw);
    std::vector<std::string_view> ours, theirs;
    Qwen2Pretokenize(text, &ours);
    (*pcre)->Split(text, &theirs);
    ASSERT_EQ(ours, theirs) << text.substr(0, 80);
  }
}

TEST_F(QwenTokenizerTest, GgufMetadataGivesTheSameTokenizer) {
  auto json_text = Qwen25TokenizerJson(QwenTokenizerDir());
  ASSERT_TRUE(json_text.ok());
  const auto doc = nlohmann::json::parse(*json_text);
  std::vector<std::string> tokens(151665);
  std::vector<int32_t> types(151665, 1);
  for (const auto& [piece, id] : doc["model"]["vocab"].items()) tokens[id.get<int>()] = piece;
  for (const auto& a : doc["added_tokens"]) {
    tokens[a["id"].get<int>()] = a["content"];
    types[a["id"].get<int>()] = a["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : doc["model"]["merges"]) {
    merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  GgufWriter writer;
  writer.SetString("general.architecture", "qwen2");
  writer.SetString("tokenizer.ggml.model", "gpt2");
  writer.SetString("tokenizer.ggml.pre", "qwen2");
  writer.SetStringArray("tokenizer.ggml.tokens", tokens);
  writer.SetInt32Array("tokenizer.ggml.token_type", types);
  writer.SetStringArray("tokenizer.ggml.merges", merges);
  writer.SetUint32("tokenizer.ggml.bos_token_id", 151643);
  writer.SetUint32("tokenizer.ggml.eos_token_id", 151645);
  writer.SetUint32("tokenizer.ggml.padding_token_id", 151643);
  writer.SetString("tokenizer.chat_template", std::string(kQwen25ChatTemplate));
  const std::string path = ::testing::TempDir() + "/tokenizer_only.gguf";
  ASSERT_TRUE(writer.Write(path).ok());
  auto gguf_tok = Tokenizer::FromGgufPath(path);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().ToString();
  const Tokenizer& g = **gguf_tok;
  ASSERT_EQ(g.num_tokens(), tokenizer_->num_tokens());
  EXPECT_EQ(g.eos_id(), tokenizer_->eos_id());
  EXPECT_EQ(g.chat_template(), tokenizer_->chat_template());
  for (int32_t id = 0; id < g.num_tokens(); ++id) {
    ASSERT_EQ(g.TokenBytes(id), tokenizer_->TokenBytes(id)) << id;
    // "</s>" (128247) is NORMAL in tokenizer.json and in the file; llama.cpp, and so the GGUF
    // reader, makes it a control token (IsGgufEndOfGenerationText).
    ASSERT_EQ(g.IsSpecial(id), tokenizer_->IsSpecial(id) || id == 128247) << id;
  }
  // A GGUF vocabulary is tokenized without NFC (as llama.cpp does), tokenizer.json with HF's
  // NFC normalizer: they may differ only on text that NFC changes, and agree after NFC.
  auto nfc = [](const std::string& text) {
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                     static_cast<utf8proc_ssize_t>(text.size()), &out,
                     static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::string composed = n >= 0 ? std::string(reinterpret_cast<const char*>(out), n) : text;
    std::free(out);
    return composed;
  };
  int differing = 0;
  for (const auto& text : CorpusBytes()) {
    for (bool special : {true, false}) {
      if (g.Encode(text, special) == tokenizer_->Encode(text, special)) continue;
      ++differing;
      ASSERT_NE(nfc(text), text);
      ASSERT_EQ(g.Encode(nfc(text), special), tokenizer_->Encode(text, special));
    }
  }
  EXPECT_GT(differing, 0) << "the corpus has no text NFC changes: the NFC difference is untested";
}

TEST_F(QwenTokenizerTest, HeapAndScanBpeAgreeOnLongRandomWords) {
  // Build a standalone BpeModel from the tokenizer's own tables through the public path.
  std::mt19937 rng(7);
  const std::string alphabet = "abcdeeeeeeffghijklmnooooopqrstuvwxyz";
  auto json_text = Qwen25TokenizerJson(QwenTokenizerDir());
  ASSERT_TRUE(json_text.ok());
  const auto doc = nlohmann::json::parse(*json_text);
  std::vector<std::string> bytes(151643);
  std::unordered_map<std::string, int32_t> ids;
  for (const auto& [piece, id] : doc["model"]["vocab"].items()) {
    bytes[id.get<int>()] = std::string(tokenizer_->TokenBytes(id.get<int>()));
    ids[piece] = id.get<int>();
  }
  std::vector<BpeModel::Merge> merges;
  for (const auto& m : doc["model"]["merges"]) {
    const std::string l = m[0], r = m[1];
    merges.push_back({ids[l], ids[r], ids[l + r]});
  }
  auto bpe = BpeModel::Create(bytes, merges);
  ASSERT_TRUE(bpe.ok());
  for (int trial = 0; trial < 200; ++trial) {
    std::string word;
    const int len = 2 + static_cast<int>(rng() % 300);
    for (int i = 0; i < len; ++i) word.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<int32_t> scan, heap;
    (*bpe)->EncodeWithScan(word, &scan);
    (*bpe)->EncodeWithHeap(word, &heap);
    ASSERT_EQ(scan, heap) << word;
  }
}

TEST(Utf8Test, RepairFollowsTheUnicodeMaximalSubpartExample) {
  // Unicode Standard, section 3.9 (U+FFFD substitution of maximal subparts), Table 3-8.
  EXPECT_EQ(RepairUtf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(RepairUtf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate: 3 subparts
  EXPECT_EQ(RepairUtf8("\xF0\x9F\x98"), "\uFFFD");              // truncated: 1 subpart
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));
}

TEST(Utf8Test, StreamDecoderHoldsBackOnlyIncompleteCharacters) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.Push("a\xE4"), "a");
  EXPECT_EQ(d.pending_bytes(), 1u);
  EXPECT_EQ(d.Push("\xB8"), "");
  EXPECT_EQ(d.Push("\xAD"
                   "b"),
            "\xE4\xB8\xAD"
            "b");
  EXPECT_EQ(d.Push("\xE4\x28"), "\uFFFD(");  // invalid at once: no hold-back
  EXPECT_EQ(d.Push("\xF0\x9F"), "");
  EXPECT_EQ(d.Flush(), "\uFFFD");
}

}  // namespace
}  // namespace tinyserve
