// The one grammar form every structured-output front end (JSON Schema, regex, choice, GBNF)
// compiles to: a byte-level context-free grammar whose rules are epsilon-free NFAs with edges
// that consume a byte range or call another rule. Built once (any thread), then immutable.
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace tinyserve::structured {

// A regular expression over bytes with rule calls; front ends build these, GrammarBuilder turns
// them into NFAs. Value type.
struct Expr {
  enum class Kind { kBytes, kRef, kSeq, kAlt, kRepeat };
  Kind kind = Kind::kSeq;
  std::vector<std::pair<uint8_t, uint8_t>> ranges;  // kBytes: inclusive byte ranges
  int32_t rule = -1;                                // kRef
  std::vector<Expr> kids;                           // kSeq, kAlt, kRepeat (one kid)
  int32_t min = 0, max = 0;                         // kRepeat; max < 0: unbounded

  static Expr Empty() { return Expr{}; }
  static Expr Byte(uint8_t b) { return Bytes({{b, b}}); }
  static Expr Bytes(std::vector<std::pair<uint8_t, uint8_t>> r);
  static Expr Literal(std::string_view s);
  static Expr Ref(int32_t rule);
  static Expr Seq(std::vector<Expr> kids);
  static Expr Alt(std::vector<Expr> kids);
  // kid{min,max}; a nullable kid's repeat is normalised ((x?){m,n} -> x{0,n}, (x*){m,n} -> x*)
  // so the automaton stays linear, and Seq splices nested Seqs (flat trees for long chains).
  static Expr Repeat(Expr kid, int32_t min, int32_t max);
  static Expr Star(Expr kid) { return Repeat(std::move(kid), 0, -1); }
  static Expr Plus(Expr kid) { return Repeat(std::move(kid), 1, -1); }
  static Expr Opt(Expr kid) { return Repeat(std::move(kid), 0, 1); }
  // Code points in the inclusive ranges (surrogates dropped), as UTF-8 byte sequences.
  static Expr CodePoints(const std::vector<std::pair<uint32_t, uint32_t>>& ranges);
  // Every code point except those in `ranges`.
  static Expr CodePointsExcept(std::vector<std::pair<uint32_t, uint32_t>> ranges);
};

struct GrammarEdge {
  int32_t rule;    // callee rule id, or -1 for a byte edge
  uint8_t lo, hi;  // byte edges: inclusive range
  int32_t target;  // global state id (same rule)
};

struct GrammarState {
  uint32_t edge_begin = 0, edge_end = 0;  // into Grammar::edges; byte edges first
  uint32_t byte_edge_end = 0;             // edges [edge_begin, byte_edge_end) are byte edges
  int32_t rule = 0;
  bool final = false;
};

struct GrammarRule {
  std::string name;
  int32_t start = 0;  // global state id
};

inline constexpr uint32_t kInfiniteBytes = 0x3fffffff;

// Immutable grammar plus the analyses the matcher needs.
struct Grammar {
  std::vector<GrammarRule> rules;
  std::vector<GrammarState> states;
  std::vector<GrammarEdge> edges;
  int32_t root = 0;
  // min_close[s]: fewest bytes from state s to the end of its rule.
  std::vector<uint32_t> min_close;
  // follow[r]: bytes that can come right after rule r ends, in any context.
  std::vector<std::bitset<256>> follow;

  std::string DebugString() const;
};

// Limits that bound compile time and memory; every front end checks them.
struct GrammarLimits {
  int32_t max_states = 200000;
  int32_t max_rules = 20000;
  int32_t max_repeat = 10000;  // largest {m,n} bound
  // Nesting of one rule's Expr tree (the builder's walks recurse once per level).
  int32_t max_expr_depth = 1000;
  // Edges left after epsilon elimination, all rules together: nullable repeats such as
  // (a?b?){n} would otherwise give every state an edge to every later one (quadratic).
  int64_t max_edges = 2000000;
  // Compilation fails once this passes; checked inside every loop that can run long.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// The InvalidArgument error of a compile step (`what`) that ran past its wall-clock deadline.
// Unlike every other compile error it depends on the machine's load, not on the text, so
// GrammarCache does not remember it: IsTimeLimitError tells the two apart.
[[nodiscard]] Status TimeLimitError(std::string_view what);
bool IsTimeLimitError(const Status& status);

// Collects rules, then Finish() checks them (undefined rules, left recursion) and analyses them.
class GrammarBuilder {
 public:
  explicit GrammarBuilder(GrammarLimits limits = {}) : limits_(limits) {}

  // Reserves a rule id to be defined later (for recursion).
  [[nodiscard]] StatusOr<int32_t> DeclareRule(std::string name);
  [[nodiscard]] Status DefineRule(int32_t rule, const Expr& body);
  // Declares and defines; a rule identical to an earlier AddRule'd one returns that rule's id.
  [[nodiscard]] StatusOr<int32_t> AddRule(std::string name, const Expr& body);
  int32_t num_rules() const { return static_cast<int32_t>(rules_.size()); }
  [[nodiscard]] StatusOr<Grammar> Finish(int32_t root);

 private:
  struct LocalEdge {
    int32_t rule;
    uint8_t lo, hi;
    int32_t target;
  };
  struct LocalRule {
    std::string name;
    bool defined = false;
    std::vector<std::vector<LocalEdge>> edges;  // per local state; state 0 is the start
    std::vector<bool> final;
  };
  [[nodiscard]] Status Compile(const Expr& body, LocalRule* out);
  [[nodiscard]] Status CheckDeadline() const;
  static void NormalizeEdges(std::vector<LocalEdge>* edges);
  [[nodiscard]] Status MergeEquivalentStates(LocalRule* r) const;
  std::string Signature(const LocalRule& r) const;

  GrammarLimits limits_;
  std::vector<LocalRule> rules_;
  std::unordered_map<std::string, int32_t> signatures_;
  int64_t total_states_ = 0;
  int64_t total_edges_ = 0;
};

}  // namespace tinyserve::structured
