#include "engine/block_manager.h"

#include <algorithm>

#include "util/check.h"
#include "util/mix.h"

namespace tinyserve {

BlockManager::BlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(enable_prefix_caching),
      blocks_(num_blocks) {
  TS_CHECK(num_blocks > 0 && block_size > 0);
  for (int32_t i = 0; i < num_blocks; ++i) PushFree(i);
}

uint64_t BlockManager::Key(uint64_t parent_key, bool first, std::span<const int32_t> tokens,
                           std::string_view salt) const {
  uint64_t h = SplitMix64(parent_key);
  if (first) {
    for (unsigned char c : salt) h = Mix64(h ^ (uint64_t{c} + 0x100));
    h = Mix64(h ^ salt.size());
  }
  for (int32_t t : tokens) h = Mix64(h ^ static_cast<uint32_t>(t));
  return h;
}

int32_t BlockManager::Lookup(uint64_t key, int32_t parent, std::span<const int32_t> tokens,
                             std::string_view salt) const {
  auto it = cache_.find(key);
  if (it == cache_.end()) return -1;
  const Block& b = blocks_[it->second];
  if (b.parent != parent) return -1;
  if (parent < 0 ? b.salt != salt : b.parent_generation != blocks_[parent].generation) return -1;
  if (!std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end())) return -1;
  return it->second;
}

std::vector<int32_t> BlockManager::FindCachedPrefix(std::span<const int32_t> tokens,
                                                    std::string_view cache_salt) const {
  std::vector<int32_t> hits;
  if (!prefix_caching_ || tokens.empty()) return hits;
  const size_t max_blocks = (tokens.size() - 1) / block_size_;
  uint64_t key = 0;
  int32_t parent = -1;
  for (size_t i = 0; i < max_blocks; ++i) {
    auto block_tokens = tokens.subspan(i * block_size_, block_size_);
    key = Key(key, i == 0, block_tokens, cache_salt);
    const int32_t b = Lookup(key, parent, block_tokens, cache_salt);
    if (b < 0) break;
    hits.push_back(b);
    parent = b;
  }
  return hits;
}

bool BlockManager::Allocate(BlockTable* table, std::span<const int32_t> cached,
                            int64_t num_tokens) {
  TS_CHECK(cached.empty() || table->blocks.empty());
  const int64_t have = static_cast<int64_t>(table->blocks.size() + cached.size());
  const int64_t need_new = std::max<int64_t>(0, BlocksFor(num_tokens) - have);
  int64_t cached_free = 0;
  for (int32_t b : cached) cached_free += blocks_[b].ref_count == 0 ? 1 : 0;
  if (need_new + cached_free > num_free_) return false;
  for (int32_t b : cached) {
    if (blocks_[b].ref_count == 0) RemoveFree(b);
    ++blocks_[b].ref_count;
    table->blocks.push_back(b);
  }
  if (!cached.empty()) {
    table->num_registered = static_cast<int32_t>(cached.size());
    table->last_canonical = cached.back();
    table->last_key = blocks_[cached.back()].key;
  }
  for (int64_t i = 0; i < need_new; ++i) {
    const int32_t b = PopFree();
    blocks_[b].ref_count = 1;
    table->blocks.push_back(b);
  }
  return true;
}

void BlockManager::RegisterComputed(BlockTable* table, std::span<const int32_t> tokens,
                                    int64_t num_computed, std::string_view cache_salt) {
  if (!prefix_caching_) return;
  const int64_t num_full =
      std::min<int64_t>(num_computed / block_size_, static_cast<int64_t>(table->blocks.size()));
  for (int64_t i = table->num_registered; i < num_full; ++i) {
    auto block_tokens = tokens.subspan(i * block_size_, block_size_);
    const int32_t parent = table->last_canonical;
    const uint64_t key = Key(table->last_key, i == 0, block_tokens, cache_salt);
    int32_t canonical = Lookup(key, parent, block_tokens, cache_salt);
    const int32_t own = table->blocks[i];
    if (canonical < 0) {
      canonical = own;
      Block& b = blocks_[own];
      if (!b.cached && !cache_.contains(key)) {
        b.cached = true;
        b.key = key;
        b.parent = parent;
        b.parent_generation = parent < 0 ? 0 : blocks_[parent].generation;
        b.tokens.assign(block_tokens.begin(), block_tokens.end());
        b.salt = i == 0 ? std::string(cache_salt) : std::string();
        cache_[key] = own;
      }
    }
    table->last_canonical = canonical;
    table->last_key = key;
    table->num_registered = static_cast<int32_t>(i + 1);
  }
}

void BlockManager::Free(BlockTable* table) {
  for (auto it = table->blocks.rbegin(); it != table->blocks.rend(); ++it) {
    Block& b = blocks_[*it];
    TS_CHECK(b.ref_count > 0);
    if (--b.ref_count == 0) {
      if (b.cached) {
        PushFree(*it);
      } else {
        // Nothing worth keeping: reuse it before any cached block.
        b.prev = -1;
        b.next = free_head_;
        if (free_head_ >= 0) blocks_[free_head_].prev = *it;
        free_head_ = *it;
        if (free_tail_ < 0) free_tail_ = *it;
        ++num_free_;
      }
    }
  }
  *table = BlockTable{};
}

void BlockManager::PushFree(int32_t id) {
  Block& b = blocks_[id];
  b.prev = free_tail_;
  b.next = -1;
  if (free_tail_ >= 0) blocks_[free_tail_].next = id;
  free_tail_ = id;
  if (free_head_ < 0) free_head_ = id;
  ++num_free_;
}

void BlockManager::RemoveFree(int32_t id) {
  Block& b = blocks_[id];
  if (b.prev >= 0)
    blocks_[b.prev].next = b.next;
  else
    free_head_ = b.next;
  if (b.next >= 0)
    blocks_[b.next].prev = b.prev;
  else
    free_tail_ = b.prev;
  b.prev = b.next = -1;
  --num_free_;
}

int32_t BlockManager::PopFree() {
  const int32_t id = free_head_;
  TS_CHECK(id >= 0);
  RemoveFree(id);
  Block& b = blocks_[id];
  if (b.cached) {
    auto it = cache_.find(b.key);
    if (it != cache_.end() && it->second == id) cache_.erase(it);
    b.cached = false;
    b.tokens.clear();
    b.salt.clear();
  }
  ++b.generation;
  return id;
}

Status BlockManager::CheckInvariants(std::span<const BlockTable* const> tables) const {
  std::vector<int32_t> refs(num_blocks_, 0);
  for (const BlockTable* t : tables) {
    for (int32_t b : t->blocks) {
      if (b < 0 || b >= num_blocks_) return InternalError("block id {} out of range", b);
      ++refs[b];
    }
  }
  int32_t free_count = 0;
  std::vector<bool> in_free(num_blocks_, false);
  for (int32_t id = free_head_, prev = -1; id >= 0; prev = id, id = blocks_[id].next) {
    if (blocks_[id].prev != prev) return InternalError("free list link broken at {}", id);
    if (in_free[id]) return InternalError("block {} twice in the free list", id);
    in_free[id] = true;
    if (++free_count > num_blocks_) return InternalError("free list cycle");
  }
  if (free_count != num_free_) {
    return InternalError("free list holds {} blocks, counter says {}", free_count, num_free_);
  }
  for (int32_t i = 0; i < num_blocks_; ++i) {
    if (blocks_[i].ref_count != refs[i]) {
      return InternalError("block {}: ref count {} but {} tables hold it", i, blocks_[i].ref_count,
                           refs[i]);
    }
    if ((refs[i] == 0) != in_free[i]) {
      return InternalError("block {}: ref count {} but free-list membership {}", i, refs[i],
                           in_free[i]);
    }
  }
  for (const auto& [key, id] : cache_) {
    const Block& b = blocks_[id];
    if (!b.cached || b.key != key) return InternalError("cache entry {} mismatches block", id);
    if (static_cast<int32_t>(b.tokens.size()) != block_size_) {
      return InternalError("cached block {} is not full", id);
    }
  }
  return OkStatus();
}

}  // namespace tinyserve
