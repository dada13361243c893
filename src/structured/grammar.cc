#include "structured/grammar.h"

#include <algorithm>
#include <deque>

#include "util/check.h"

namespace tinyserve::structured {

namespace {

int64_t EstimateStates(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kBytes:
    case Expr::Kind::kRef:
      return 1;
    case Expr::Kind::kSeq:
    case Expr::Kind::kAlt: {
      int64_t n = 1;
      for (const Expr& k : e.kids) n += EstimateStates(k);
      return std::min<int64_t>(n, int64_t{1} << 40);
    }
    case Expr::Kind::kRepeat: {
      const int64_t copies = e.max < 0 ? std::max(e.min, 1) : std::max(e.max, 1);
      return std::min<int64_t>(copies * EstimateStates(e.kids[0]) + 2, int64_t{1} << 40);
    }
  }
  return 1;
}

// Deepest nesting of `e`, without recursion (the other walks recurse, so this runs first).
int32_t ExprDepth(const Expr& e) {
  int32_t deepest = 0;
  std::vector<std::pair<const Expr*, int32_t>> stack{{&e, 1}};
  while (!stack.empty()) {
    const auto [x, d] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, d);
    for (const Expr& k : x->kids) stack.push_back({&k, d + 1});
  }
  return deepest;
}

int32_t MaxRepeat(const Expr& e) {
  int32_t m = e.kind == Expr::Kind::kRepeat ? std::max(e.min, e.max) : 0;
  for (const Expr& k : e.kids) m = std::max(m, MaxRepeat(k));
  return m;
}

struct EpsNfa {
  struct Edge {
    int32_t rule;
    uint8_t lo, hi;
    int32_t target;
  };
  std::vector<std::vector<Edge>> edges;
  std::vector<std::vector<int32_t>> eps;
  int32_t NewState() {
    edges.emplace_back();
    eps.emplace_back();
    return static_cast<int32_t>(edges.size() - 1);
  }
  void Build(const Expr& e, int32_t from, int32_t to) {
    switch (e.kind) {
      case Expr::Kind::kBytes:
        for (auto [lo, hi] : e.ranges) edges[from].push_back({-1, lo, hi, to});
        return;
      case Expr::Kind::kRef:
        edges[from].push_back({e.rule, 0, 0, to});
        return;
      case Expr::Kind::kAlt:
        for (const Expr& k : e.kids) {
          // Fresh entry and exit states keep loops inside one alternative.
          const int32_t a = NewState(), b = NewState();
          eps[from].push_back(a);
          Build(k, a, b);
          eps[b].push_back(to);
        }
        return;
      case Expr::Kind::kSeq: {
        int32_t cur = from;
        for (const Expr& k : e.kids) {
          const int32_t next = NewState();
          Build(k, cur, next);
          cur = next;
        }
        eps[cur].push_back(to);
        return;
      }
      case Expr::Kind::kRepeat: {
        const Expr& k = e.kids[0];
        int32_t cur = from;
        for (int32_t i = 0; i < e.min; ++i) {
          const int32_t next = NewState();
          Build(k, cur, next);
          cur = next;
        }
        if (e.max < 0) {
          const int32_t a = NewState(), b = NewState();
          eps[cur].push_back(a);
          Build(k, a, b);
          eps[b].push_back(a);
          eps[a].push_back(to);
        } else {
          for (int32_t i = e.min; i < e.max; ++i) {
            const int32_t next = NewState();
            Build(k, cur, next);
            eps[cur].push_back(to);
            cur = next;
          }
          eps[cur].push_back(to);
        }
        return;
      }
    }
  }
};

}  // namespace

// Sorts edges and merges byte ranges that overlap or touch and lead to the same target.
void GrammarBuilder::NormalizeEdges(std::vector<LocalEdge>* edges) {
  std::sort(edges->begin(), edges->end(), [](const LocalEdge& a, const LocalEdge& b) {
    return std::tie(a.rule, a.target, a.lo, a.hi) < std::tie(b.rule, b.target, b.lo, b.hi);
  });
  std::vector<LocalEdge> merged;
  for (const LocalEdge& e : *edges) {
    if (!merged.empty() && merged.back().rule == e.rule && merged.back().target == e.target) {
      LocalEdge& m = merged.back();
      if (e.rule >= 0) continue;
      if (e.lo <= static_cast<int>(m.hi) + 1) {
        m.hi = std::max(m.hi, e.hi);
        continue;
      }
    }
    merged.push_back(e);
  }
  *edges = std::move(merged);
}

// Merges states with the same finality and the same edges (after merging their targets), to a
// fixpoint: e.g. the many "one more UTF-8 continuation byte" states of a character class become
// one. Fewer states means fewer token sets to precompute. State 0 stays the start.
Status GrammarBuilder::MergeEquivalentStates(LocalRule* r) const {
  const size_t n = r->edges.size();
  std::vector<int32_t> rep(n);
  for (size_t i = 0; i < n; ++i) rep[i] = static_cast<int32_t>(i);
  for (bool changed = true; changed;) {
    TS_RETURN_IF_ERROR(CheckDeadline());
    changed = false;
    std::unordered_map<std::string, int32_t> by_sig;
    std::vector<int32_t> next(n);
    for (size_t i = 0; i < n; ++i) {
      std::vector<LocalEdge> edges = r->edges[i];
      for (LocalEdge& e : edges) e.target = rep[e.target];
      NormalizeEdges(&edges);
      std::string sig(1, r->final[i] ? 'F' : 'N');
      for (const LocalEdge& e : edges) {
        const int32_t fields[4] = {e.rule, e.lo, e.hi, e.target};
        sig.append(reinterpret_cast<const char*>(fields), sizeof(fields));
      }
      next[i] = by_sig.try_emplace(std::move(sig), static_cast<int32_t>(i)).first->second;
      if (next[i] != rep[i]) changed = true;
    }
    rep = std::move(next);
  }
  // Renumber representatives densely (the start, 0, is its own representative).
  std::vector<int32_t> id(n, -1);
  int32_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (rep[i] == static_cast<int32_t>(i)) id[i] = count++;
  }
  if (count == static_cast<int32_t>(n)) return OkStatus();
  std::vector<std::vector<LocalEdge>> edges(count);
  std::vector<bool> final(count);
  for (size_t i = 0; i < n; ++i) {
    if (id[i] < 0) continue;
    for (LocalEdge e : r->edges[i]) {
      e.target = id[rep[e.target]];
      edges[id[i]].push_back(e);
    }
    NormalizeEdges(&edges[id[i]]);
    final[id[i]] = r->final[i];
  }
  r->edges = std::move(edges);
  r->final = std::move(final);
  return OkStatus();
}

namespace {
constexpr std::string_view kTimeLimitSuffix = " exceeded the compile time limit";
}  // namespace

Status TimeLimitError(std::string_view what) {
  return InvalidArgumentError("{}{}", what, kTimeLimitSuffix);
}

bool IsTimeLimitError(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument &&
         status.message().find(kTimeLimitSuffix) != std::string::npos;
}

Status GrammarBuilder::CheckDeadline() const {
  if (std::chrono::steady_clock::now() > limits_.deadline) {
    return TimeLimitError("grammar compilation");
  }
  return OkStatus();
}

Status GrammarBuilder::Compile(const Expr& body, LocalRule* out) {
  TS_RETURN_IF_ERROR(CheckDeadline());
  if (ExprDepth(body) > limits_.max_expr_depth) {
    return InvalidArgumentError("grammar nested more than {} levels deep", limits_.max_expr_depth);
  }
  const int64_t est = EstimateStates(body);
  if (total_states_ + est > limits_.max_states) {
    return InvalidArgumentError("grammar too large: more than {} automaton states",
                                limits_.max_states);
  }
  if (MaxRepeat(body) > limits_.max_repeat) {
    return InvalidArgumentError("repetition count {} exceeds the limit {}", MaxRepeat(body),
                                limits_.max_repeat);
  }
  EpsNfa nfa;
  const int32_t from = nfa.NewState(), to = nfa.NewState();
  nfa.Build(body, from, to);
  const int32_t n = static_cast<int32_t>(nfa.edges.size());
  // Epsilon elimination: new state i stands for old state old_of[i] and its epsilon closure.
  std::vector<int32_t> new_of(n, -1), old_of;
  std::vector<int32_t> mark(n, -1), stack, closure;
  auto map_state = [&](int32_t old) {
    if (new_of[old] < 0) {
      new_of[old] = static_cast<int32_t>(old_of.size());
      old_of.push_back(old);
    }
    return new_of[old];
  };
  map_state(from);
  out->edges.clear();
  out->final.clear();
  // Closures of nullable repeats can make this quadratic: count the work and the edges made.
  int64_t work = 0, edges_made = 0;
  const int64_t max_work = limits_.max_edges * 8;
  for (size_t i = 0; i < old_of.size(); ++i) {
    if ((i & 1023) == 0) TS_RETURN_IF_ERROR(CheckDeadline());
    const int32_t old = old_of[i];
    closure.clear();
    stack.assign(1, old);
    mark[old] = static_cast<int32_t>(i);
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      closure.push_back(s);
      work += 1 + static_cast<int64_t>(nfa.eps[s].size() + nfa.edges[s].size());
      for (int32_t t : nfa.eps[s]) {
        if (mark[t] != static_cast<int32_t>(i)) {
          mark[t] = static_cast<int32_t>(i);
          stack.push_back(t);
        }
      }
    }
    std::vector<LocalEdge> edges;
    bool is_final = false;
    for (int32_t s : closure) {
      if (s == to) is_final = true;
      for (const auto& e : nfa.edges[s]) edges.push_back({e.rule, e.lo, e.hi, map_state(e.target)});
    }
    NormalizeEdges(&edges);
    edges_made += static_cast<int64_t>(edges.size());
    if (total_edges_ + edges_made > limits_.max_edges || work > max_work) {
      return InvalidArgumentError(
          "grammar too large: more than {} automaton edges (nullable repetitions such as "
          "(a?b?){{n}} grow quadratically)",
          limits_.max_edges);
    }
    out->edges.push_back(std::move(edges));
    out->final.push_back(is_final);
  }
  TS_RETURN_IF_ERROR(MergeEquivalentStates(out));
  for (const auto& e : out->edges) total_edges_ += static_cast<int64_t>(e.size());
  total_states_ += static_cast<int64_t>(out->edges.size());
  out->defined = true;
  return OkStatus();
}

std::string GrammarBuilder::Signature(const LocalRule& r) const {
  std::string sig;
  for (size_t s = 0; s < r.edges.size(); ++s) {
    sig += r.final[s] ? 'F' : 'N';
    for (const LocalEdge& e : r.edges[s]) {
      sig += fmt::format("{},{},{},{};", e.rule, e.lo, e.hi, e.target);
    }
    sig += '|';
  }
  return sig;
}

StatusOr<int32_t> GrammarBuilder::DeclareRule(std::string name) {
  if (static_cast<int32_t>(rules_.size()) >= limits_.max_rules) {
    return InvalidArgumentError("grammar too large: more than {} rules", limits_.max_rules);
  }
  rules_.emplace_back();
  rules_.back().name = std::move(name);
  return static_cast<int32_t>(rules_.size() - 1);
}

Status GrammarBuilder::DefineRule(int32_t rule, const Expr& body) {
  TS_CHECK(rule >= 0 && rule < num_rules() && !rules_[rule].defined);
  return Compile(body, &rules_[rule]);
}

StatusOr<int32_t> GrammarBuilder::AddRule(std::string name, const Expr& body) {
  LocalRule r;
  r.name = std::move(name);
  TS_RETURN_IF_ERROR(Compile(body, &r));
  std::string sig = Signature(r);
  if (auto it = signatures_.find(sig); it != signatures_.end()) {
    total_states_ -= static_cast<int64_t>(r.edges.size());
    for (const auto& e : r.edges) total_edges_ -= static_cast<int64_t>(e.size());
    return it->second;
  }
  TS_ASSIGN_OR_RETURN(int32_t id, DeclareRule(r.name));
  rules_[id] = std::move(r);
  if (sig.size() < 4096) signatures_.emplace(std::move(sig), id);
  return id;
}

StatusOr<Grammar> GrammarBuilder::Finish(int32_t root) {
  const int32_t num_rules = this->num_rules();
  for (const LocalRule& r : rules_) {
    if (!r.defined) return InvalidArgumentError("rule '{}' is used but never defined", r.name);
  }
  // Productive rules: the start state reaches a final state through productive calls.
  std::vector<bool> productive(num_rules, false);
  for (bool changed = true; changed;) {
    TS_RETURN_IF_ERROR(CheckDeadline());
    changed = false;
    // Last rule first: a chain of rules each calling the next settles in one pass.
    for (int32_t r = num_rules; r-- > 0;) {
      if (productive[r]) continue;
      const LocalRule& lr = rules_[r];
      std::vector<bool> seen(lr.edges.size(), false);
      std::vector<int32_t> stack{0};
      seen[0] = true;
      while (!stack.empty() && !productive[r]) {
        const int32_t s = stack.back();
        stack.pop_back();
        if (lr.final[s]) productive[r] = true;
        for (const LocalEdge& e : lr.edges[s]) {
          if ((e.rule < 0 || productive[e.rule]) && !seen[e.target]) {
            seen[e.target] = true;
            stack.push_back(e.target);
          }
        }
      }
      changed |= productive[r];
    }
  }
  if (!productive[root]) return InvalidArgumentError("the grammar matches no string");

  // Trim each rule to states on a start-to-final path and flatten into global numbering.
  Grammar g;
  g.root = root;
  g.rules.resize(num_rules);
  std::vector<std::vector<int32_t>> global_of(num_rules);
  for (int32_t r = 0; r < num_rules; ++r) {
    const LocalRule& lr = rules_[r];
    const size_t n = lr.edges.size();
    auto usable = [&](const LocalEdge& e) { return e.rule < 0 || productive[e.rule]; };
    std::vector<bool> fwd(n, false), bwd(n, false);
    std::vector<int32_t> stack{0};
    fwd[0] = true;
    std::vector<std::vector<int32_t>> preds(n);
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      for (const LocalEdge& e : lr.edges[s]) {
        if (!usable(e)) continue;
        preds[e.target].push_back(s);
        if (!fwd[e.target]) fwd[e.target] = true, stack.push_back(e.target);
      }
    }
    for (size_t s = 0; s < n; ++s) {
      if (fwd[s] && lr.final[s]) bwd[s] = true, stack.push_back(static_cast<int32_t>(s));
    }
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      for (int32_t p : preds[s]) {
        if (!bwd[p]) bwd[p] = true, stack.push_back(p);
      }
    }
    global_of[r].assign(n, -1);
    for (size_t s = 0; s < n; ++s) {
      if ((fwd[s] && bwd[s]) || (s == 0 && !productive[r])) {
        global_of[r][s] = static_cast<int32_t>(g.states.size());
        GrammarState st;
        st.rule = r;
        st.final = lr.final[s] && productive[r];
        g.states.push_back(st);
      }
    }
    g.rules[r].name = lr.name;
    g.rules[r].start = global_of[r][0];
  }
  for (int32_t r = 0; r < num_rules; ++r) {
    const LocalRule& lr = rules_[r];
    for (size_t s = 0; s < lr.edges.size(); ++s) {
      const int32_t gs = global_of[r][s];
      if (gs < 0) continue;
      GrammarState& st = g.states[gs];
      st.edge_begin = static_cast<uint32_t>(g.edges.size());
      for (int pass = 0; pass < 2; ++pass) {
        for (const LocalEdge& e : lr.edges[s]) {
          if ((e.rule < 0) != (pass == 0)) continue;
          if (e.rule >= 0 && !productive[e.rule]) continue;
          const int32_t t = global_of[r][e.target];
          if (t < 0) continue;
          g.edges.push_back({e.rule, e.lo, e.hi, t});
        }
        if (pass == 0) st.byte_edge_end = static_cast<uint32_t>(g.edges.size());
      }
      st.edge_end = static_cast<uint32_t>(g.edges.size());
    }
  }
  rules_.clear();
  signatures_.clear();

  const size_t num_states = g.states.size();
  // Nullable states and rules.
  std::vector<bool> nullable(num_states, false);
  for (bool changed = true; changed;) {
    TS_RETURN_IF_ERROR(CheckDeadline());
    changed = false;
    for (size_t i = num_states; i-- > 0;) {
      if (nullable[i]) continue;
      const GrammarState& st = g.states[i];
      bool n = st.final;
      for (uint32_t k = st.byte_edge_end; k < st.edge_end && !n; ++k) {
        const GrammarEdge& e = g.edges[k];
        n = nullable[g.rules[e.rule].start] && nullable[e.target];
      }
      if (n) nullable[i] = true, changed = true;
    }
  }
  // Left recursion: a rule that can call itself before consuming a byte would make the
  // pushdown automaton push forever.
  std::vector<std::vector<int32_t>> left_calls(num_rules);
  std::vector<int32_t> seen_by(num_states, -1);
  for (int32_t r = 0; r < num_rules; ++r) {
    std::vector<int32_t> stack{g.rules[r].start};
    seen_by[g.rules[r].start] = r;
    while (!stack.empty()) {
      const GrammarState& st = g.states[stack.back()];
      stack.pop_back();
      for (uint32_t k = st.byte_edge_end; k < st.edge_end; ++k) {
        const GrammarEdge& e = g.edges[k];
        left_calls[r].push_back(e.rule);
        if (nullable[g.rules[e.rule].start] && seen_by[e.target] != r) {
          seen_by[e.target] = r;
          stack.push_back(e.target);
        }
      }
    }
  }
  // Cycle search by an explicit-stack DFS (a chain of 20,000 rules must not recurse 20,000
  // frames deep): color 1 = on the DFS path, 2 = done.
  std::vector<int8_t> color(num_rules, 0);
  for (int32_t r0 = 0; r0 < num_rules; ++r0) {
    if (color[r0] != 0) continue;
    std::vector<std::pair<int32_t, size_t>> path{{r0, 0}};  // rule, next left call to visit
    color[r0] = 1;
    while (!path.empty()) {
      auto& [r, next] = path.back();
      if (next == left_calls[r].size()) {
        color[r] = 2;
        path.pop_back();
        continue;
      }
      const int32_t q = left_calls[r][next++];
      if (color[q] == 1) {
        return InvalidArgumentError("left recursion through rule '{}' is not supported",
                                    g.rules[q].name);
      }
      if (color[q] == 0) {
        color[q] = 1;
        path.push_back({q, 0});
      }
    }
  }

  // min_close: shortest byte distance to the end of the rule (a call costs its rule's length).
  g.min_close.assign(num_states, kInfiniteBytes);
  std::vector<std::vector<int32_t>> preds(num_states), callers(num_rules);
  for (size_t s = 0; s < num_states; ++s) {
    const GrammarState& st = g.states[s];
    for (uint32_t k = st.edge_begin; k < st.edge_end; ++k) {
      preds[g.edges[k].target].push_back(static_cast<int32_t>(s));
      if (g.edges[k].rule >= 0) callers[g.edges[k].rule].push_back(static_cast<int32_t>(s));
    }
  }
  std::deque<int32_t> work;
  std::vector<bool> queued(num_states, false);
  for (size_t s = 0; s < num_states; ++s) {
    if (g.states[s].final) g.min_close[s] = 0, work.push_back(static_cast<int32_t>(s));
  }
  auto relax = [&](int32_t s) {
    const GrammarState& st = g.states[s];
    uint32_t best = st.final ? 0 : kInfiniteBytes;
    for (uint32_t k = st.edge_begin; k < st.edge_end; ++k) {
      const GrammarEdge& e = g.edges[k];
      const uint32_t cost = e.rule < 0 ? 1 : g.min_close[g.rules[e.rule].start];
      best = std::min(best, std::min(kInfiniteBytes, cost + g.min_close[e.target]));
    }
    if (best < g.min_close[s]) {
      g.min_close[s] = best;
      if (!queued[s]) queued[s] = true, work.push_back(s);
    }
  };
  for (int64_t steps = 0; !work.empty(); ++steps) {
    if ((steps & 4095) == 0) TS_RETURN_IF_ERROR(CheckDeadline());
    const int32_t s = work.front();
    work.pop_front();
    queued[s] = false;
    for (int32_t p : preds[s]) relax(p);
    if (s == g.rules[g.states[s].rule].start) {
      for (int32_t c : callers[g.states[s].rule]) relax(c);
    }
  }

  // FIRST of each state, then FOLLOW of each rule.
  std::vector<std::bitset<256>> first(num_states);
  for (bool changed = true; changed;) {
    TS_RETURN_IF_ERROR(CheckDeadline());
    changed = false;
    for (size_t i = num_states; i-- > 0;) {
      const GrammarState& st = g.states[i];
      std::bitset<256> f = first[i];
      for (uint32_t k = st.edge_begin; k < st.edge_end; ++k) {
        const GrammarEdge& e = g.edges[k];
        if (e.rule < 0) {
          for (int b = e.lo; b <= e.hi; ++b) f.set(b);
        } else {
          f |= first[g.rules[e.rule].start];
          if (nullable[g.rules[e.rule].start]) f |= first[e.target];
        }
      }
      if (f != first[i]) first[i] = f, changed = true;
    }
  }
  g.follow.assign(num_rules, {});
  for (bool changed = true; changed;) {
    TS_RETURN_IF_ERROR(CheckDeadline());
    changed = false;
    for (size_t s = 0; s < num_states; ++s) {
      const GrammarState& st = g.states[s];
      for (uint32_t k = st.byte_edge_end; k < st.edge_end; ++k) {
        const GrammarEdge& e = g.edges[k];
        std::bitset<256> f = g.follow[e.rule] | first[e.target];
        if (nullable[e.target]) f |= g.follow[st.rule];
        if (f != g.follow[e.rule]) g.follow[e.rule] = f, changed = true;
      }
    }
  }
  return g;
}

std::string Grammar::DebugString() const {
  std::string out;
  for (size_t r = 0; r < rules.size(); ++r) {
    out += fmt::format("rule {} '{}' start {}\n", r, rules[r].name, rules[r].start);
  }
  for (size_t s = 0; s < states.size(); ++s) {
    const GrammarState& st = states[s];
    out += fmt::format("  s{} (r{}){} close={}:", s, st.rule, st.final ? " F" : "", min_close[s]);
    for (uint32_t k = st.edge_begin; k < st.edge_end; ++k) {
      const GrammarEdge& e = edges[k];
      if (e.rule < 0) {
        out += fmt::format(" [{:02x}-{:02x}]->s{}", e.lo, e.hi, e.target);
      } else {
        out += fmt::format(" <r{}>->s{}", e.rule, e.target);
      }
    }
    out += '\n';
  }
  return out;
}

}  // namespace tinyserve::structured
