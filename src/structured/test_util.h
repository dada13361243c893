// Helpers shared by the structured module's tests (header-only; tests only): the real Qwen
// vocabulary, loaded once per test binary, and mask-driven random generation.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "structured/compiler.h"
#include "structured/matcher.h"
#include "structured/tokenizer_vocabulary.h"
#include "util/paths.h"

namespace tinyserve::structured::testing {

// Null when setup.sh has not fetched the tokenizer files.
inline std::shared_ptr<const Vocabulary> QwenVocabOrNull() {
  static const std::shared_ptr<const Vocabulary> vocab = [] {
    auto v = LoadQwen25Vocabulary(QwenTokenizerDir());
    return v.ok() ? *v : nullptr;
  }();
  return vocab;
}

inline bool UnderSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

// `options` for a test that pins the work limits, not the clock. Sanitizers slow a compile
// 10-60x and the CI machine's speed varies by day (support_ticket's token tables once took over
// the 30 s warm limit under TSan), so there both time limits only guard against a hang: five
// minutes each keeps a hang's own error inside ctest's 900 s timeout.
inline CompileOptions WithSanitizerTimeLimits(CompileOptions options) {
  if (UnderSanitizer()) {
    options.time_limit = std::chrono::minutes(5);
    options.warm_time = std::chrono::minutes(5);
  }
  return options;
}

inline bool BitSet(const std::vector<uint32_t>& mask, int32_t t) {
  return (mask[t >> 5] >> (t & 31)) & 1;
}

// Picks an allowed token: half the time among allowed single-byte tokens (so structure gets
// closed and later grammar states are reached), else uniformly among all allowed tokens.
inline int32_t PickAllowed(const Vocabulary& v, const std::vector<uint32_t>& mask,
                           std::mt19937_64* rng) {
  int64_t count = 0;
  for (uint32_t w : mask) count += __builtin_popcount(w);
  if (count == 0) return -1;
  if ((*rng)() % 2 == 0) {
    // Single-byte tokens are ids 0..255 in byte-level vocabularies; check their bytes anyway.
    std::vector<int32_t> short_ones;
    for (int32_t t = 0; t < std::min<int32_t>(v.size(), 512); ++t) {
      if (BitSet(mask, t) && v.TokenBytes(t).size() == 1) short_ones.push_back(t);
    }
    if (!short_ones.empty()) return short_ones[(*rng)() % short_ones.size()];
  }
  int64_t k = static_cast<int64_t>((*rng)() % count);
  for (size_t w = 0; w < mask.size(); ++w) {
    const int n = __builtin_popcount(mask[w]);
    if (k >= n) {
      k -= n;
      continue;
    }
    uint32_t bits = mask[w];
    for (; k > 0; --k) bits &= bits - 1;
    return static_cast<int32_t>(w * 32 + __builtin_ctz(bits));
  }
  return -1;
}

struct Generated {
  std::string text;
  bool finished = false;  // ended with EOS (the grammar accepted)
};

// Generates up to max_tokens tokens by sampling uniformly from the mask (with the budget).
inline Generated GenerateRandom(const std::shared_ptr<const CompiledGrammar>& g, uint64_t seed,
                                int32_t max_tokens) {
  GrammarMatcher m(g);
  const Vocabulary& v = g->vocab();
  std::vector<uint32_t> mask(v.mask_words());
  std::mt19937_64 rng(seed);
  Generated out;
  for (int32_t i = 0; i < max_tokens; ++i) {
    m.FillNextTokenBitmask(mask.data(), max_tokens - i);
    const int32_t t = PickAllowed(v, mask, &rng);
    if (t < 0 || !m.AcceptToken(t)) break;
    if (v.IsEos(t)) {
      out.finished = true;
      break;
    }
    out.text += v.TokenBytes(t);
  }
  if (!out.finished && m.CanTerminate()) out.finished = true;
  return out;
}

}  // namespace tinyserve::structured::testing
