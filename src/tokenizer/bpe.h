// Byte-level BPE by merge rank: turns one pre-tokenized piece (raw bytes) into token ids,
// exactly as Hugging Face's BPE model does (lowest-rank adjacent pair first, leftmost on ties).
// Short pieces use an array scan; long ones a heap over a linked list (no quadratic work).
// A bounded, sharded cache keeps the ids of frequent pieces. Encode is const and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve {

class BpeModel {
 public:
  struct Merge {
    int32_t left;
    int32_t right;
    int32_t merged;
  };
  // `token_bytes[id]` are the raw bytes of token id (ids without bytes may be empty); every one
  // of the 256 single bytes must be a token. `merges` in rank order (rank = index).
  [[nodiscard]] static StatusOr<std::unique_ptr<BpeModel>> Create(
      const std::vector<std::string>& token_bytes, const std::vector<Merge>& merges);

  // Appends the ids of `piece` (non-empty bytes) to `ids`.
  void Encode(std::string_view piece, std::vector<int32_t>* ids) const;
  // As Encode, without the cache and always with the given algorithm (for tests).
  void EncodeWithScan(std::string_view piece, std::vector<int32_t>* ids) const;
  void EncodeWithHeap(std::string_view piece, std::vector<int32_t>* ids) const;

  // Sets the cache capacity in entries (0 disables it). Call before sharing across threads.
  void set_cache_capacity(size_t entries) { cache_capacity_per_shard_ = entries / kNumShards; }

 private:
  static constexpr size_t kNumShards = 64;
  static constexpr size_t kMaxCachedPieceBytes = 64;
  static constexpr size_t kScanLimit = 48;  // pieces up to this many bytes use the scan

  struct MergeEntry {
    uint64_t key = ~uint64_t{0};  // (left << 32) | right; all ones = empty slot
    int32_t rank = 0;
    int32_t merged = 0;
  };
  // Looks pieces up by string_view, without building a std::string per lookup.
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    Mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>> map
        GUARDED_BY(mu);
  };

  BpeModel() = default;
  // Rank and merged id of the pair, or false if the pair is not a merge.
  bool Lookup(int32_t left, int32_t right, int32_t* rank, int32_t* merged) const;
  void EncodeUncached(std::string_view piece, std::vector<int32_t>* ids) const;

  std::array<int32_t, 256> byte_ids_{};
  std::vector<MergeEntry> table_;  // open addressing, power-of-two size
  uint64_t table_mask_ = 0;
  size_t cache_capacity_per_shard_ = 4096;
  mutable std::array<Shard, kNumShards> shards_;
};

}  // namespace tinyserve
