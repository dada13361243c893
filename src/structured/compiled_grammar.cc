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
  grammar_bytes_ = grammar_.states.size() * sizeof(GrammarState) +
                   grammar_.edges.size() * sizeof(GrammarEdge) + grammar_.min_close.size() * 4 +
                   grammar_.follow.size() * 32 + sets_.size() * 16;
  for (const GrammarRule& r : grammar_.rules) grammar_bytes_ += sizeof(r) + r.name.capacity();
}

size_t CompiledGrammar::ScratchBytesLocked() const {
  size_t bytes = trans_.size() * 4 + can_pop_.size() + close_.size() * 4 + pool_.size() * 48;
  for (const StackConfig& c : configs_) bytes += sizeof(c) + c.stacks.capacity() * 4;
  return bytes + config_ids_.size() * 64;
}

void CompiledGrammar::ResetScratchLocked() const {
  configs_ = {};
  config_ids_ = {};
  trans_ = {};
  can_pop_ = {};
  close_ = {};
  pool_.Clear();
  pda_ = Pda(&grammar_, &pool_);
  InternConfig(StackConfig{});  // id 0: dead
}

size_t CompiledGrammar::memory_bytes() const {
  MutexLock lock(&mu_);
  return grammar_bytes_ + sets_bytes_.load() + ScratchBytesLocked();
}

int32_t CompiledGrammar::InternConfig(const StackConfig& c) const {
  std::string key(reinterpret_cast<const char*>(c.stacks.data()), c.stacks.size() * 4);
  key.push_back(static_cast<char>(c.accepting | (c.can_pop << 1)));
  auto [it, inserted] =
      config_ids_.try_emplace(std::move(key), static_cast<int32_t>(configs_.size()));
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
  if (sets_[state].load(std::memory_order_relaxed) == nullptr) {
    // Without a deadline this always completes; a step that overflowed reads as a dead one, so
    // the sets then allow too little, never too much (CompileGrammar rejects such grammars).
    ComputeLocked(state, std::chrono::steady_clock::time_point::max(), INT64_MAX);
    pda_.ClearOverflow();
  }
  return *sets_[state].load(std::memory_order_relaxed);
}

Status CompiledGrammar::Warm(std::chrono::steady_clock::time_point deadline, size_t max_bytes,
                             int64_t max_work) const {
  MutexLock lock(&mu_);
  for (size_t s = 0; s < grammar_.states.size(); ++s) {
    const GrammarState& st = grammar_.states[s];
    if (st.byte_edge_end == st.edge_begin) continue;
    if (sets_[s].load(std::memory_order_relaxed) != nullptr) continue;
    if (!ComputeLocked(static_cast<int32_t>(s), deadline, max_work)) {
      if (precompute_work_.load() > max_work) {
        return InvalidArgumentError(
            "grammar token tables need more than {} vocabulary-trie steps to precompute", max_work);
      }
      if (pda_.overflowed()) {
        pda_.ClearOverflow();
        return InvalidArgumentError(
            "the grammar is too ambiguous: one step needs more than {} parser stacks or {} "
            "stack visits",
            Pda::kMaxStacks, Pda::kMaxStepWork);
      }
      return TimeLimitError("grammar token tables");
    }
    if (grammar_bytes_ + sets_bytes_.load() + ScratchBytesLocked() > max_bytes) {
      return InvalidArgumentError("grammar token tables need more than {} MiB", max_bytes >> 20);
    }
  }
  ResetScratchLocked();  // every set is computed: the memo tables are no longer needed
  return OkStatus();
}

bool CompiledGrammar::ComputeLocked(int32_t state, std::chrono::steady_clock::time_point deadline,
                                    int64_t max_work) const {
  const bool check_time = deadline != std::chrono::steady_clock::time_point::max();
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
  for (size_t i = 0, n = 0; i < trie.size(); ++n) {
    if (pda_.overflowed() && check_time) return false;
    if ((n & 1023) == 0) {
      if (precompute_work_.load(std::memory_order_relaxed) > max_work) return false;
      if (check_time && std::chrono::steady_clock::now() > deadline) return false;
    }
    const Vocabulary::TrieNode& node = trie[i];
    precompute_work_.fetch_add(1, std::memory_order_relaxed);
    const int d = node.depth;
    const int32_t prev = cfg[d - 1];
    const bool pend = pending[d - 1] || (can_pop_[prev] && follow.test(node.byte));
    const int32_t next = prev == 0 ? 0 : StepConfig(prev, node.byte);
    if (next == 0) {
      if (pend) {
        for (int32_t r = node.rank_begin; r < node.rank_end; ++r)
          sets->uncertain_ranks.push_back(r);
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
  sets_bytes_.fetch_add(sizeof(StateTokenSets) + sets->accepted_bits.capacity() * 4 +
                        sets->accepted_ids.capacity() * 4 + sets->uncertain_ranks.capacity() * 4 +
                        sets->close_increases.capacity() * 8);
  sets_[state].store(sets.get(), std::memory_order_release);
  owned_[state] = std::move(sets);
  num_computed_.fetch_add(1);
  return true;
}

}  // namespace tinyserve::structured
