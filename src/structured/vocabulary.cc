#include "structured/vocabulary.h"

#include <algorithm>
#include <numeric>

namespace tinyserve::structured {

StatusOr<std::shared_ptr<const Vocabulary>> Vocabulary::Build(std::vector<std::string> token_bytes,
                                                              std::vector<int32_t> eos_ids) {
  auto v = std::make_shared<Vocabulary>();
  const int32_t n = static_cast<int32_t>(token_bytes.size());
  for (int32_t id : eos_ids) {
    if (id < 0 || id >= n) return InvalidArgumentError("EOS id {} outside vocabulary of {}", id, n);
  }
  v->token_bytes_ = std::move(token_bytes);
  v->eos_ids_ = std::move(eos_ids);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < n; ++id) {
    const std::string& b = v->token_bytes_[id];
    if (b.empty() || v->IsEos(id)) continue;
    if (b.size() > 0xffff) return InvalidArgumentError("token {} is longer than 65535 bytes", id);
    ids.push_back(id);
    v->max_token_bytes_ = std::max<int32_t>(v->max_token_bytes_, static_cast<int32_t>(b.size()));
  }
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return v->token_bytes_[a] < v->token_bytes_[b]; });
  // Build the preorder trie from the sorted tokens: keep the path of open nodes.
  std::vector<int32_t> path;  // node index per depth-1
  std::string prev;
  for (int32_t id : ids) {
    const std::string& b = v->token_bytes_[id];
    if (!v->by_rank_.empty() && b == prev) {
      const int32_t owner = v->trie_[path.back()].token;
      auto it = std::find_if(v->aliases_.begin(), v->aliases_.end(),
                             [&](const auto& a) { return a.first == owner; });
      if (it == v->aliases_.end()) {
        v->aliases_.push_back({owner, {}});
        it = v->aliases_.end() - 1;
      }
      it->second.push_back(id);
      continue;
    }
    size_t lcp = 0;
    while (lcp < prev.size() && lcp < b.size() && prev[lcp] == b[lcp]) ++lcp;
    const int32_t rank = static_cast<int32_t>(v->by_rank_.size());
    while (path.size() > lcp) {
      TrieNode& node = v->trie_[path.back()];
      node.end = static_cast<int32_t>(v->trie_.size());
      node.rank_end = rank;
      path.pop_back();
    }
    for (size_t d = lcp; d < b.size(); ++d) {
      path.push_back(static_cast<int32_t>(v->trie_.size()));
      v->trie_.push_back(
          {static_cast<uint8_t>(b[d]), static_cast<uint16_t>(d + 1), -1, 0, rank, 0});
    }
    v->trie_[path.back()].token = id;
    v->by_rank_.push_back(id);
    prev = b;
  }
  while (!path.empty()) {
    TrieNode& node = v->trie_[path.back()];
    node.end = static_cast<int32_t>(v->trie_.size());
    node.rank_end = static_cast<int32_t>(v->by_rank_.size());
    path.pop_back();
  }
  return std::shared_ptr<const Vocabulary>(std::move(v));
}

bool Vocabulary::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

const std::vector<int32_t>* Vocabulary::Aliases(int32_t id) const {
  for (const auto& [owner, others] : aliases_) {
    if (owner == id) return &others;
  }
  return nullptr;
}

}  // namespace tinyserve::structured
