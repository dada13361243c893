#include "structured/pda.h"

#include <algorithm>

namespace tinyserve::structured {

int32_t StackPool::Intern(int32_t state, int32_t parent) {
  const uint64_t key =
      (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 32) | static_cast<uint32_t>(parent);
  auto [it, inserted] = index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (inserted) {
    const int32_t depth = parent >= 0 ? nodes_[parent].depth + 1 : 1;
    nodes_.push_back({state, parent, depth});
  }
  return it->second;
}

void Pda::NewStamp() {
  if (++cur_stamp_ == 0) {
    std::fill(stamp_.begin(), stamp_.end(), 0);
    cur_stamp_ = 1;
  }
  step_work_ = 0;
}

void Pda::Expand(int32_t state, int32_t parent, StackConfig* out) {
  NewStamp();
  if (parent >= 0 && pool_->node(parent).depth >= kMaxDepth) return;
  ExpandFrom(pool_->Intern(state, parent), out);
  if (overflowed_) out->Clear();
}

void Pda::ExpandFrom(int32_t start, StackConfig* out) {
  todo_.assign(1, start);
  while (!todo_.empty()) {
    const int32_t id = todo_.back();
    todo_.pop_back();
    if (stamp_.size() <= static_cast<size_t>(id)) stamp_.resize(pool_->size() * 2 + 16, 0);
    if (stamp_[id] == cur_stamp_) continue;
    stamp_[id] = cur_stamp_;
    ++total_work_;
    if (++step_work_ > kMaxStepWork) {
      overflowed_ = true;
      return;
    }
    const StackPool::Node n = pool_->node(id);
    const GrammarState& st = g_->states[n.state];
    if (st.byte_edge_end > st.edge_begin) {
      out->stacks.push_back(id);
      if (out->stacks.size() > kMaxStacks) {
        overflowed_ = true;
        return;
      }
    }
    if (st.final) {
      if (n.parent == kEmptyStack) {
        out->accepting = true;
      } else if (n.parent == kUnknownStack) {
        out->can_pop = true;
      } else {
        todo_.push_back(n.parent);
      }
    }
    if (n.depth >= kMaxDepth) continue;
    for (uint32_t k = st.edge_end; k-- > st.byte_edge_end;) {
      const GrammarEdge& e = g_->edges[k];
      const int32_t ret = pool_->Intern(e.target, n.parent);
      todo_.push_back(pool_->Intern(g_->rules[e.rule].start, ret));
    }
  }
}

bool Pda::Step(const StackConfig& in, uint8_t byte, StackConfig* out) {
  out->Clear();
  NewStamp();
  for (int32_t id : in.stacks) {
    const StackPool::Node n = pool_->node(id);
    const GrammarState& st = g_->states[n.state];
    for (uint32_t k = st.edge_begin; k < st.byte_edge_end; ++k) {
      const GrammarEdge& e = g_->edges[k];
      if (byte >= e.lo && byte <= e.hi) ExpandFrom(pool_->Intern(e.target, n.parent), out);
      if (overflowed_) {
        out->Clear();
        return false;
      }
    }
  }
  return out->alive();
}

uint32_t Pda::StackMinClose(int32_t id) const {
  uint64_t total = 0;
  while (id >= 0) {
    const StackPool::Node& n = pool_->node(id);
    total += g_->min_close[n.state];
    id = n.parent;
  }
  return static_cast<uint32_t>(std::min<uint64_t>(total, kInfiniteBytes));
}

uint32_t Pda::MinClose(const StackConfig& c) const {
  uint32_t best = (c.accepting || c.can_pop) ? 0 : kInfiniteBytes;
  for (int32_t id : c.stacks) best = std::min(best, StackMinClose(id));
  return best;
}

}  // namespace tinyserve::structured
