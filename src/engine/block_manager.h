// KV block bookkeeping (no tensors): a pool of fixed-size blocks with reference counts, a free
// list kept in least-recently-freed order, and the prefix cache that maps a chained hash of
// (parent block, block token ids, cache salt) to a block holding exactly those tokens. A hit is
// verified exactly: same tokens, same parent block (by id and reuse generation), same salt.
// Engine thread only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace tinyserve {

// What a sequence needs the block manager to remember between calls.
struct BlockTable {
  std::vector<int32_t> blocks;  // block ids, in token order
  // Leading full blocks already registered in the prefix cache (or known to be cached).
  int32_t num_registered = 0;
  // The cached block each registered block resolves to (itself, or an identical block that was
  // registered first), used as the parent when registering the next one.
  int32_t last_canonical = -1;
  uint64_t last_key = 0;
};

class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return num_blocks_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks with reference count 0 (free, possibly still holding a cached prefix).
  int32_t num_free_blocks() const { return num_free_; }
  int32_t num_used_blocks() const { return num_blocks_ - num_free_; }
  int32_t BlocksFor(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + block_size_ - 1) / block_size_);
  }

  // The cached blocks that hold a prefix of `tokens` (full blocks only, and never all of
  // `tokens`: at least one token is left to compute, since its logits are needed). They are
  // not referenced yet: pass them to Allocate in the same step.
  std::vector<int32_t> FindCachedPrefix(std::span<const int32_t> tokens,
                                        std::string_view cache_salt) const;

  // Makes `table` cover `num_tokens` tokens. An empty table first takes `cached` (from
  // FindCachedPrefix). Returns false, changing nothing, when there are not enough free blocks.
  [[nodiscard]] bool Allocate(BlockTable* table, std::span<const int32_t> cached,
                              int64_t num_tokens);

  // Registers the full blocks of `table` whose tokens (`tokens[0..num_computed)`) are computed.
  void RegisterComputed(BlockTable* table, std::span<const int32_t> tokens, int64_t num_computed,
                        std::string_view cache_salt);

  // Drops the table's references; blocks reaching 0 go to the free list (tail blocks first, so
  // a sequence's later blocks are reused before its earlier, more shareable ones).
  void Free(BlockTable* table);

  // Tests: reference counts equal the number of `tables` naming each block, the free list holds
  // exactly the blocks with count 0, and every cache entry is verified by its block.
  [[nodiscard]] Status CheckInvariants(std::span<const BlockTable* const> tables) const;

 private:
  struct Block {
    int32_t ref_count = 0;
    uint32_t generation = 0;  // bumped each time the block is handed out fresh
    bool cached = false;      // has an entry in cache_
    uint64_t key = 0;
    int32_t parent = -1;  // canonical parent block (-1: first block)
    uint32_t parent_generation = 0;
    std::vector<int32_t> tokens;
    std::string salt;              // first blocks only
    int32_t prev = -1, next = -1;  // free list links
  };

  uint64_t Key(uint64_t parent_key, bool first, std::span<const int32_t> tokens,
               std::string_view salt) const;
  // The cached block holding `tokens` after `parent` (-1: first), or -1.
  int32_t Lookup(uint64_t key, int32_t parent, std::span<const int32_t> tokens,
                 std::string_view salt) const;
  void PushFree(int32_t id);
  void RemoveFree(int32_t id);
  int32_t PopFree();  // evicts the block's cache entry

  const int32_t num_blocks_;
  const int32_t block_size_;
  const bool prefix_caching_;
  std::vector<Block> blocks_;
  int32_t free_head_ = -1, free_tail_ = -1, num_free_ = 0;
  std::unordered_map<uint64_t, int32_t> cache_;  // key -> block
};

}  // namespace tinyserve
