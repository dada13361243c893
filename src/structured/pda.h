// The pushdown automaton that runs a Grammar over bytes: stacks of grammar states, hash-consed
// in a StackPool so a configuration (the set of live stacks) is a short list of ids. Used by one
// thread at a time (a matcher, or the compiler's mask precomputation under its lock).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"

namespace tinyserve::structured {

inline constexpr int32_t kEmptyStack = -1;    // below the root rule's frame
inline constexpr int32_t kUnknownStack = -2;  // below a frame analysed without its context

// A set of parser stacks after some bytes. Each stack id names a node whose top state has byte
// edges (ready to consume). Invariant: ids are unique.
struct StackConfig {
  std::vector<int32_t> stacks;
  bool accepting = false;  // the root rule can end here (EOS allowed)
  bool can_pop = false;    // the frame on kUnknownStack can end here
  bool alive() const { return !stacks.empty() || accepting || can_pop; }
  void Clear() {
    stacks.clear();
    accepting = can_pop = false;
  }
};

class StackPool {
 public:
  struct Node {
    int32_t state;
    int32_t parent;  // node id, kEmptyStack or kUnknownStack
    int32_t depth;
  };
  int32_t Intern(int32_t state, int32_t parent);
  const Node& node(int32_t id) const { return nodes_[id]; }
  size_t size() const { return nodes_.size(); }
  void Clear() {
    nodes_.clear();
    index_.clear();
  }

 private:
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> index_;
};

class Pda {
 public:
  // Deeper stacks are treated as dead (bounds recursion such as "[[[[...").
  static constexpr int32_t kMaxDepth = 512;
  // Work bounds of one Expand or Step: stack nodes visited, and stacks in the result. An
  // ambiguous recursive grammar (x ::= "a" x | "a" x x | ...) can double its live stacks per
  // byte; past these bounds the step fails and overflowed() says why, instead of the engine
  // thread spending seconds on one byte.
  static constexpr int64_t kMaxStepWork = int64_t{1} << 16;
  static constexpr size_t kMaxStacks = 4096;

  Pda(const Grammar* grammar, StackPool* pool) : g_(grammar), pool_(pool) {}

  // Adds to `out` every stack reachable from state `state` over `parent` without consuming a
  // byte (calls pushed, finished rules popped).
  void Expand(int32_t state, int32_t parent, StackConfig* out);
  // The configuration after consuming `byte` from `in`; returns out->alive() (false, with `out`
  // cleared, when the step overflowed its work bounds).
  bool Step(const StackConfig& in, uint8_t byte, StackConfig* out);
  // Fewest bytes that finish the input from this configuration (kInfiniteBytes if none).
  uint32_t MinClose(const StackConfig& c) const;
  // Fewest bytes that finish the stack `id` (its top state plus every return state below).
  uint32_t StackMinClose(int32_t id) const;
  const Grammar& grammar() const { return *g_; }
  StackPool& pool() { return *pool_; }
  // True once a step has exceeded its bounds (sticky until ClearOverflow).
  bool overflowed() const { return overflowed_; }
  void ClearOverflow() { overflowed_ = false; }
  // Stack nodes visited by every step so far (callers budget whole masks with it).
  int64_t total_work() const { return total_work_; }

 private:
  void NewStamp();
  // Depth-first expansion from node `start` with an explicit stack (no recursion: the walk can
  // visit thousands of nodes in a chain).
  void ExpandFrom(int32_t start, StackConfig* out);
  const Grammar* g_;
  StackPool* pool_;
  std::vector<uint32_t> stamp_;
  uint32_t cur_stamp_ = 0;
  std::vector<int32_t> todo_;
  int64_t step_work_ = 0;
  int64_t total_work_ = 0;
  bool overflowed_ = false;
};

}  // namespace tinyserve::structured
