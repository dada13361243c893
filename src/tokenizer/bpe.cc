#include "tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <queue>

namespace tinyserve {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

constexpr int32_t kNoRank = INT32_MAX;

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(const std::vector<std::string>& token_bytes,
                                                     const std::vector<Merge>& merges) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->byte_ids_.fill(-1);
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    if (token_bytes[id].size() == 1) {
      auto& slot = model->byte_ids_[static_cast<uint8_t>(token_bytes[id][0])];
      if (slot < 0) slot = static_cast<int32_t>(id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (model->byte_ids_[b] < 0) return InvalidArgumentError("BPE vocabulary lacks byte {}", b);
  }
  size_t size = 1;
  while (size < merges.size() * 2 + 16) size <<= 1;
  model->table_.assign(size, MergeEntry{});
  model->table_mask_ = size - 1;
  const auto num_tokens = static_cast<int32_t>(token_bytes.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& m = merges[rank];
    if (m.left < 0 || m.left >= num_tokens || m.right < 0 || m.right >= num_tokens ||
        m.merged < 0 || m.merged >= num_tokens) {
      return InvalidArgumentError("BPE merge {} has a token id out of range", rank);
    }
    const uint64_t key = PairKey(m.left, m.right);
    uint64_t slot = Mix(key) & model->table_mask_;
    while (model->table_[slot].key != ~uint64_t{0} && model->table_[slot].key != key) {
      slot = (slot + 1) & model->table_mask_;
    }
    // A repeated pair keeps its first (lowest) rank, as Hugging Face's loader does.
    if (model->table_[slot].key == key) continue;
    model->table_[slot] = {key, static_cast<int32_t>(rank), m.merged};
  }
  return model;
}

bool BpeModel::Lookup(int32_t left, int32_t right, int32_t* rank, int32_t* merged) const {
  const uint64_t key = PairKey(left, right);
  uint64_t slot = Mix(key) & table_mask_;
  while (true) {
    const MergeEntry& e = table_[slot];
    if (e.key == key) {
      *rank = e.rank;
      *merged = e.merged;
      return true;
    }
    if (e.key == ~uint64_t{0}) return false;
    slot = (slot + 1) & table_mask_;
  }
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.size() == 1) {
    ids->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (cache_capacity_per_shard_ == 0 || piece.size() > kMaxCachedPieceBytes) {
    EncodeUncached(piece, ids);
    return;
  }
  Shard& shard = shards_[std::hash<std::string_view>{}(piece) % kNumShards];
  {
    MutexLock lock(&shard.mu);
    auto it = shard.map.find(piece);
    if (it != shard.map.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = ids->size();
  EncodeUncached(piece, ids);
  std::vector<int32_t> value(ids->begin() + static_cast<std::ptrdiff_t>(start), ids->end());
  MutexLock lock(&shard.mu);
  // Bounded: a full shard starts over (frequent pieces come back at once).
  if (shard.map.size() >= cache_capacity_per_shard_) shard.map.clear();
  shard.map.emplace(std::string(piece), std::move(value));
}

void BpeModel::EncodeUncached(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.size() <= kScanLimit) {
    EncodeWithScan(piece, ids);
  } else {
    EncodeWithHeap(piece, ids);
  }
}

void BpeModel::EncodeWithScan(std::string_view piece, std::vector<int32_t>* ids) const {
  // symbols[i] with rank[i] = rank of the pair (symbols[i], symbols[i+1]).
  int32_t symbols[kScanLimit];
  int32_t ranks[kScanLimit];
  int32_t merged[kScanLimit];
  std::vector<int32_t> big_symbols, big_ranks, big_merged;
  int32_t* sym = symbols;
  int32_t* rk = ranks;
  int32_t* mg = merged;
  if (piece.size() > kScanLimit) {
    big_symbols.resize(piece.size());
    big_ranks.resize(piece.size());
    big_merged.resize(piece.size());
    sym = big_symbols.data();
    rk = big_ranks.data();
    mg = big_merged.data();
  }
  size_t n = piece.size();
  for (size_t i = 0; i < n; ++i) sym[i] = byte_ids_[static_cast<uint8_t>(piece[i])];
  auto rank_at = [&](size_t i) {
    if (!Lookup(sym[i], sym[i + 1], &rk[i], &mg[i])) rk[i] = kNoRank;
  };
  for (size_t i = 0; i + 1 < n; ++i) rank_at(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (rk[i] < rk[best]) best = i;
    }
    if (rk[best] == kNoRank) break;
    sym[best] = mg[best];
    for (size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      rk[i] = rk[i + 1];
      mg[i] = mg[i + 1];
    }
    --n;
    if (best + 1 < n) rank_at(best);
    if (best > 0) rank_at(best - 1);
  }
  ids->insert(ids->end(), sym, sym + n);
}

void BpeModel::EncodeWithHeap(std::string_view piece, std::vector<int32_t>* ids) const {
  const size_t n = piece.size();
  std::vector<int32_t> sym(n), prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = byte_ids_[static_cast<uint8_t>(piece[i])];
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  // (rank, left position) ordered smallest first; the pair's ids validate it when popped.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t left, right, merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t pos) {
    const int32_t right_pos = next[pos];
    if (right_pos < 0) return;
    int32_t rank = 0, m = 0;
    if (Lookup(sym[pos], sym[right_pos], &rank, &m)) {
      heap.push({rank, pos, sym[pos], sym[right_pos], m});
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.pos] || sym[c.pos] != c.left) continue;
    const int32_t right_pos = next[c.pos];
    if (right_pos < 0 || sym[right_pos] != c.right) continue;
    sym[c.pos] = c.merged;
    alive[right_pos] = false;
    next[c.pos] = next[right_pos];
    if (next[right_pos] >= 0) prev[next[right_pos]] = c.pos;
    if (prev[c.pos] >= 0) push(prev[c.pos]);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) ids->push_back(sym[i]);
}

}  // namespace tinyserve
