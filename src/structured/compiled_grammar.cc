#include "structured/compiled_grammar.h"

#include <algorithm>
#include <string>

namespace tinyserve::structured {

CompiledGrammar::CompiledGrammar(Grammar grammar, std::shared_ptr<const Vocabulary> vocab)
    : grammar_(std::move(grammar)),
      vocab_(std::move(vocab)),
      sets_(grammar_.states.size()),
      owned_(grammar_.states.size()),
      pda_(&grammar_, &pool_) {
  for (auto& s : sets_) s.store(nullptr, std::memory_order_relaxed);
  InternConfig(StackConfig{});  // id 0: dead
}

int32_t CompiledGrammar::InternConfig(const StackConfig& c) const {
  std::string key(reinterpret_cast<const char*>(c.stacks.data()), c.stacks.size() * 4);
  key.push_back(static_cast<char>(c.accepting | (c.can_pop << 1)));
  auto [it, inserted] = config_ids_.try_emplace(std::move(key), static_cast<int32_t>(configs_.size()));
  if (inserted) {
    configs_.push_back(c);
    can_pop_.push_back(c.can_pop);
    close_.push_back(pda_.MinClose(c));
    trans_.resize(trans_.size() + 256, -1);
  }
  return it->second;
}

int32_t CompiledGrammar::StepConfig(int32_t config, uint8_t byte) const {
  const int32_t t = trans_[static_cast<size_t>(config) * 256 + byte];
  if (t >= 0) return t;
  StackConfig next;
  pda_.Step(configs_[config], byte, &next);
  std::sort(next.stacks.begin(), next.stacks.end());
  const int32_t id = next.alive() ? InternConfig(next) : 0;
  trans_[static_cast<size_t>(config) * 256 + byte] = id;
  return id;
}

const StateTokenSets& CompiledGrammar::TokenSets(int32_t state) const {
  const StateTokenSets* s = sets_[state].load(std::memory_order_acquire);
  if (s != nullptr) return *s;
  MutexLock lock(&mu_);
  if (sets_[state].load(std::memory_order_relaxed) == nullptr) ComputeLocked(state);
  return *sets_[state].load(std::memory_order_relaxed);
}

bool CompiledGrammar::Warm(std::chrono::steady_clock::time_point deadline) const {
  for (size_t s = 0; s < grammar_.states.size(); ++s) {
    const GrammarState& st = grammar_.states[s];
    if (st.byte_edge_end == st.edge_begin) continue;
    if (std::chrono::steady_clock::now() > deadline) return false;
    TokenSets(static_cast<int32_t>(s));
  }
  return true;
}

void CompiledGrammar::ComputeLocked(int32_t state) const {
  auto sets = std::make_unique<StateTokenSets>();
  const Vocabulary& v = *vocab_;
  const auto& trie = v.trie();
  const std::bitset<256>& follow = grammar_.follow[grammar_.states[state].rule];
  StackConfig start;
  start.stacks.push_back(pool_.Intern(state, kUnknownStack));
  std::vector<int32_t> cfg(v.max_token_bytes() + 1, 0);
  std::vector<uint8_t> pending(v.max_token_bytes() + 1, 0);
  cfg[0] = InternConfig(start);
  std::vector<int32_t> accepted;
  for (size_t i = 0; i < trie.size();) {
    const Vocabulary::TrieNode& node = trie[i];
    const int d = node.depth;
    const int32_t prev = cfg[d - 1];
    const bool pend = pending[d - 1] || (can_pop_[prev] && follow.test(node.byte));
    const int32_t next = prev == 0 ? 0 : StepConfig(prev, node.byte);
    if (next == 0) {
      if (pend) {
        for (int32_t r = node.rank_begin; r < node.rank_end; ++r) sets->uncertain_ranks.push_back(r);
      }
      i = node.end;
      continue;
    }
    cfg[d] = next;
    pending[d] = pend;
    if (node.token >= 0) {
      accepted.push_back(node.token);
      if (close_[next] > grammar_.min_close[state]) {
        sets->close_increases.push_back({node.token, close_[next]});
      }
      if (const auto* aliases = v.Aliases(node.token)) {
        accepted.insert(accepted.end(), aliases->begin(), aliases->end());
      }
    }
    ++i;
  }
  if (static_cast<int64_t>(accepted.size()) > v.mask_words()) {
    sets->accepted_bits.assign(v.mask_words(), 0);
    for (int32_t t : accepted) sets->accepted_bits[t >> 5] |= 1u << (t & 31);
  } else {
    sets->accepted_ids = std::move(accepted);
  }
  sets_[state].store(sets.get(), std::memory_order_release);
  owned_[state] = std::move(sets);
  num_computed_.fetch_add(1);
}

}  // namespace tinyserve::structured
