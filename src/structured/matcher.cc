#include "structured/matcher.h"

#include <algorithm>
#include <cstring>

namespace tinyserve::structured {

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar)
    : grammar_(std::move(grammar)), pda_(&grammar_->grammar(), &pool_) {
  const Grammar& g = grammar_->grammar();
  pda_.Expand(g.rules[g.root].start, kEmptyStack, &config_);
  FailIfOverflowed();
}

void GrammarMatcher::FailIfOverflowed() {
  if (!pda_.overflowed() || !error_.ok()) return;
  error_ = InvalidArgumentError(
      "the grammar is too ambiguous to follow: one step needed more than {} parser stacks or "
      "{} stack visits",
      Pda::kMaxStacks, Pda::kMaxStepWork);
  config_.Clear();
}

bool GrammarMatcher::AcceptToken(int32_t token) {
  const Vocabulary& v = grammar_->vocab();
  if (terminated_ || !error_.ok() || token < 0 || token >= v.size()) return false;
  if (v.IsEos(token)) {
    if (!config_.accepting) return false;
    terminated_ = true;
    return true;
  }
  const std::string& bytes = v.TokenBytes(token);
  if (bytes.empty()) return false;
  return AcceptBytes(bytes);
}

bool GrammarMatcher::AcceptBytes(std::string_view bytes) {
  if (terminated_ || !error_.ok()) return false;
  StackConfig cur = config_, next;
  for (char c : bytes) {
    if (!pda_.Step(cur, static_cast<uint8_t>(c), &next)) {
      FailIfOverflowed();
      return false;
    }
    std::swap(cur, next);
  }
  config_ = std::move(cur);
  CompactPoolIfLarge();
  return true;
}

void GrammarMatcher::CompactPoolIfLarge() {
  if (pool_.size() < (1u << 18)) return;
  // Re-intern only the live stacks; every other node is garbage from mask walks.
  StackPool fresh;
  std::vector<int32_t> new_stacks;
  for (int32_t id : config_.stacks) {
    std::vector<int32_t> states;
    for (int32_t n = id; n >= 0; n = pool_.node(n).parent) states.push_back(pool_.node(n).state);
    int32_t parent = kEmptyStack;
    for (size_t i = states.size(); i-- > 0;) parent = fresh.Intern(states[i], parent);
    new_stacks.push_back(parent);
  }
  pool_ = std::move(fresh);
  config_.stacks = std::move(new_stacks);
  pda_ = Pda(&grammar_->grammar(), &pool_);
}

void GrammarMatcher::SetToken(int32_t token, uint32_t* words) const {
  words[token >> 5] |= 1u << (token & 31);
  if (const auto* aliases = grammar_->vocab().Aliases(token)) {
    for (int32_t a : *aliases) words[a >> 5] |= 1u << (a & 31);
  }
}

void GrammarMatcher::FillNextTokenBitmask(uint32_t* words, int32_t remaining_tokens) {
  const Vocabulary& v = grammar_->vocab();
  const int32_t num_words = v.mask_words();
  std::memset(words, 0, sizeof(uint32_t) * num_words);
  if (terminated_ || !error_.ok()) return;
  if (remaining_tokens >= 0) {
    const uint32_t close = pda_.MinClose(config_);
    if (close + kBudgetMargin >= static_cast<uint32_t>(remaining_tokens)) {
      // Tight budget: only tokens along one shortest completion (each shortens it).
      const std::string path = ShortestCompletion();
      if (path.empty()) {
        for (int32_t e : v.eos_ids()) words[e >> 5] |= 1u << (e & 31);
        return;
      }
      // Only the longest token along the path: the fewest tokens to close.
      const auto& trie = v.trie();
      int32_t longest = -1;
      size_t depth = 0;
      for (size_t i = 0; i < trie.size() && depth < path.size();) {
        if (trie[i].depth != depth + 1) break;  // left the matched node's subtree
        if (trie[i].byte != static_cast<uint8_t>(path[depth])) {
          i = trie[i].end;
          continue;
        }
        if (trie[i].token >= 0) longest = trie[i].token;
        ++depth;
        ++i;
      }
      if (longest >= 0) SetToken(longest, words);
      return;
    }
  }
  // With a budget, a token may not leave more bytes to close than tokens remain after it.
  const uint32_t limit =
      remaining_tokens >= 0 ? static_cast<uint32_t>(remaining_tokens - 1) : kInfiniteBytes;
  std::vector<int32_t>& drop = drop_scratch_;
  drop.clear();
  const int64_t work_at_start = pda_.total_work();
  for (int32_t id : config_.stacks) {
    const StackPool::Node& node = pool_.node(id);
    const StateTokenSets& sets = grammar_->TokenSets(node.state);
    const uint32_t below = node.parent >= 0 ? pda_.StackMinClose(node.parent) : 0;
    if (remaining_tokens >= 0) {
      if (below + grammar_->grammar().min_close[node.state] > limit) continue;
      for (const auto& [t, close] : sets.close_increases) {
        if (below + close > limit) drop.push_back(t);
      }
    }
    if (!sets.accepted_bits.empty()) {
      const uint32_t* src = sets.accepted_bits.data();
      for (int32_t w = 0; w < num_words; ++w) words[w] |= src[w];
    } else {
      for (int32_t t : sets.accepted_ids) words[t >> 5] |= 1u << (t & 31);
    }
    if (!sets.uncertain_ranks.empty()) CheckUncertain(id, sets.uncertain_ranks, limit, words);
    if (pda_.total_work() - work_at_start > kMaxMaskWork) {
      error_ = InvalidArgumentError(
          "the grammar is too ambiguous to follow: one token mask needed more than {} parser "
          "stack visits",
          kMaxMaskWork);
    }
    FailIfOverflowed();
    if (!error_.ok()) {
      std::memset(words, 0, sizeof(uint32_t) * num_words);
      return;
    }
  }
  for (int32_t t : drop) {
    words[t >> 5] &= ~(1u << (t & 31));
    if (const auto* aliases = v.Aliases(t)) {
      for (int32_t a : *aliases) words[a >> 5] &= ~(1u << (a & 31));
    }
  }
  if (config_.accepting) {
    for (int32_t e : v.eos_ids()) words[e >> 5] |= 1u << (e & 31);
  }
}

void GrammarMatcher::CheckUncertain(int32_t stack, const std::vector<int32_t>& ranks,
                                    uint32_t close_limit, uint32_t* words) {
  const Vocabulary& v = grammar_->vocab();
  if (scratch_.size() < static_cast<size_t>(v.max_token_bytes()) + 1) {
    scratch_.resize(v.max_token_bytes() + 1);
  }
  scratch_[0].Clear();
  scratch_[0].stacks.push_back(stack);
  // Tokens come sorted, so each one reuses the configurations of the prefix it shares with the
  // previous token; `dead_at` > 0 marks a prefix length already known to fail.
  const std::string* prev = nullptr;
  size_t computed = 0;  // scratch_[0..computed] are valid for *prev
  size_t dead_at = 0;
  const int64_t work_at_start = pda_.total_work();
  for (int32_t rank : ranks) {
    if (pda_.overflowed() || pda_.total_work() - work_at_start > kMaxMaskWork) return;
    const int32_t token = v.TokenAtRank(rank);
    const std::string& b = v.TokenBytes(token);
    size_t lcp = 0;
    if (prev != nullptr) {
      const size_t lim = std::min(prev->size(), b.size());
      while (lcp < lim && (*prev)[lcp] == b[lcp]) ++lcp;
    }
    if (dead_at > 0 && lcp >= dead_at) continue;  // shares a failing prefix
    size_t d = std::min(lcp, computed);
    dead_at = 0;
    bool alive = true;
    for (; d < b.size(); ++d) {
      if (!pda_.Step(scratch_[d], static_cast<uint8_t>(b[d]), &scratch_[d + 1]) ||
          scratch_[d + 1].stacks.empty()) {
        // Alive without stacks means accepting/can_pop only: no further byte fits.
        if (d + 1 == b.size() && scratch_[d + 1].alive()) {
          d = b.size();
          break;
        }
        alive = false;
        dead_at = d + 1;
        break;
      }
    }
    computed = alive ? b.size() : d;
    prev = &b;
    if (alive &&
        (close_limit == kInfiniteBytes || pda_.MinClose(scratch_[b.size()]) <= close_limit)) {
      SetToken(token, words);
    }
  }
}

void GrammarMatcher::FillNextTokenBitmaskBruteForce(uint32_t* words) const {
  const Vocabulary& v = grammar_->vocab();
  std::memset(words, 0, sizeof(uint32_t) * v.mask_words());
  if (terminated_) return;
  StackConfig cur, next;
  for (int32_t t = 0; t < v.size(); ++t) {
    const std::string& b = v.TokenBytes(t);
    if (v.IsEos(t)) {
      if (config_.accepting) words[t >> 5] |= 1u << (t & 31);
      continue;
    }
    if (b.empty()) continue;
    cur = config_;
    bool ok = true;
    for (char c : b) {
      if (!pda_.Step(cur, static_cast<uint8_t>(c), &next)) {
        ok = false;
        break;
      }
      std::swap(cur, next);
    }
    if (ok) words[t >> 5] |= 1u << (t & 31);
  }
}

std::string GrammarMatcher::ShortestCompletion(size_t max_bytes) const {
  if (config_.accepting || config_.stacks.empty()) return "";
  const Grammar& g = grammar_->grammar();
  int32_t best = config_.stacks[0];
  for (int32_t id : config_.stacks) {
    if (pda_.StackMinClose(id) < pda_.StackMinClose(best)) best = id;
  }
  std::vector<int32_t> frames;  // bottom .. top
  for (int32_t n = best; n >= 0; n = pool_.node(n).parent) frames.push_back(pool_.node(n).state);
  std::reverse(frames.begin(), frames.end());
  std::string out;
  while (!frames.empty() && out.size() < max_bytes) {
    const int32_t s = frames.back();
    const GrammarState& st = g.states[s];
    if (st.final && g.min_close[s] == 0) {
      frames.pop_back();
      continue;
    }
    bool moved = false;
    for (uint32_t k = st.edge_begin; k < st.edge_end && !moved; ++k) {
      const GrammarEdge& e = g.edges[k];
      const uint64_t cost = e.rule < 0 ? 1 : g.min_close[g.rules[e.rule].start];
      if (cost + g.min_close[e.target] != g.min_close[s]) continue;
      frames.back() = e.target;
      if (e.rule < 0) {
        out.push_back(static_cast<char>(e.lo));
      } else {
        frames.push_back(g.rules[e.rule].start);
      }
      moved = true;
    }
    if (!moved) break;  // unreachable for a trimmed grammar
  }
  return out;
}

std::string GrammarMatcher::ForcedBytes(size_t max_bytes) const {
  std::string out;
  if (terminated_) return out;
  StackConfig cur = config_, next;
  const Grammar& g = grammar_->grammar();
  while (out.size() < max_bytes && !cur.accepting && !cur.stacks.empty()) {
    int lo = 256, hi = -1;
    for (int32_t id : cur.stacks) {
      const GrammarState& st = g.states[pool_.node(id).state];
      for (uint32_t k = st.edge_begin; k < st.byte_edge_end; ++k) {
        lo = std::min<int>(lo, g.edges[k].lo);
        hi = std::max<int>(hi, g.edges[k].hi);
      }
    }
    if (lo != hi) break;
    out.push_back(static_cast<char>(lo));
    if (!pda_.Step(cur, static_cast<uint8_t>(lo), &next)) break;
    std::swap(cur, next);
  }
  return out;
}

}  // namespace tinyserve::structured
