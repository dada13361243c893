// A vocabulary as the grammar matcher sees it: each token's bytes, the EOS ids, and a byte trie
// over the tokens (preorder arrays) so one walk tests every token sharing a prefix at once.
// Immutable after Build; shared by all matchers on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace tinyserve::structured {

class Vocabulary {
 public:
  // One trie node per distinct token prefix, in preorder (children sorted by byte).
  struct TrieNode {
    uint8_t byte;
    uint16_t depth;      // >= 1 (the root is implicit)
    int32_t token;       // token ending here, or -1
    int32_t end;         // index one past this node's subtree
    int32_t rank_begin;  // tokens in the subtree have ranks [rank_begin, rank_end)
    int32_t rank_end;
  };

  // token_bytes[id] holds the bytes of token id, or is empty for ids never allowed in structured
  // text (special tokens, padding rows). vocab_size = token_bytes.size() is the bitmask length.
  [[nodiscard]] static StatusOr<std::shared_ptr<const Vocabulary>> Build(
      std::vector<std::string> token_bytes, std::vector<int32_t> eos_ids);

  int32_t size() const { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t mask_words() const { return (size() + 31) / 32; }
  const std::string& TokenBytes(int32_t id) const { return token_bytes_[id]; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool IsEos(int32_t id) const;
  const std::vector<TrieNode>& trie() const { return trie_; }
  // Tokens sorted by their bytes; rank r is the r-th.
  int32_t TokenAtRank(int32_t rank) const { return by_rank_[rank]; }
  int32_t num_ranked() const { return static_cast<int32_t>(by_rank_.size()); }
  // Other token ids with the same bytes as `id` (rare; usually empty).
  const std::vector<int32_t>* Aliases(int32_t id) const;
  int32_t max_token_bytes() const { return max_token_bytes_; }

 private:
  std::vector<std::string> token_bytes_;
  std::vector<int32_t> eos_ids_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> by_rank_;
  std::vector<std::pair<int32_t, std::vector<int32_t>>> aliases_;
  int32_t max_token_bytes_ = 0;
};

}  // namespace tinyserve::structured
