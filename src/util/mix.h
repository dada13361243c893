// The project's one 64-bit mixer: splitmix64 (Steele, Lea and Flood; the finaliser constants
// are Stafford's "Mix13"). Used for hashing (prefix-cache block keys), seeded dummy weights,
// test doubles and the load generator's random streams. Pure functions; any thread.
#pragma once

#include <cstdint>

namespace tinyserve {

// splitmix64's increment (the golden ratio in 64-bit fixed point).
inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ull;

// The finaliser: a bijection of 64-bit values with full avalanche.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The splitmix64 output for state `x` (the generator advances x by kSplitMix64Gamma and
// returns Mix64 of the new state): SplitMix64(x) = Mix64(x + gamma).
constexpr uint64_t SplitMix64(uint64_t x) { return Mix64(x + kSplitMix64Gamma); }

}  // namespace tinyserve
