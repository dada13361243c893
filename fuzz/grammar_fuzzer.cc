// libFuzzer target: the structured-output compilers (JSON Schema, regex, GBNF, choice,
// tool-call spec) and the matcher. The first byte picks the kind, the rest is the text. A
// grammar that compiles is then walked for a few tokens chosen by the input, checking at each
// step that the fast token mask equals the brute-force one (every token tried on a copy) and
// that each allowed token is accepted. Compilation must finish or fail within its limits.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "structured/compiler.h"
#include "structured/matcher.h"

namespace {

using tinyserve::structured::GrammarKind;

constexpr GrammarKind kKinds[] = {GrammarKind::kJsonSchema, GrammarKind::kRegex,
                                  GrammarKind::kGbnf,       GrammarKind::kChoice,
                                  GrammarKind::kToolCalls,  GrammarKind::kJsonObject};

void Fail(const char* what, int32_t step) {
  std::fprintf(stderr, "grammar_fuzzer: %s at step %d\n", what, step);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const GrammarKind kind = kKinds[data[0] % std::size(kKinds)];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  tinyserve::structured::CompileOptions options;
  // Short limits keep each input fast under the sanitizers; the limits' own checks are fuzzed.
  options.time_limit = std::chrono::milliseconds(300);
  options.warm_time = std::chrono::milliseconds(5000);
  options.max_precompute_work = 1'000'000;
  options.limits.max_states = 20000;
  options.limits.max_edges = 200000;
  auto compiled =
      tinyserve::structured::CompileGrammar(kind, text, tinyserve::fuzz::FuzzVocab(), options);
  if (!compiled.ok()) return 0;
  tinyserve::structured::GrammarMatcher matcher(*compiled);
  const auto& vocab = (*compiled)->vocab();
  std::vector<uint32_t> fast(vocab.mask_words()), slow(vocab.mask_words());
  // Walk: the input's bytes (from the end) choose among the allowed tokens.
  for (int32_t step = 0; step < 24 && matcher.error().ok() && !matcher.IsTerminated(); ++step) {
    matcher.FillNextTokenBitmask(fast.data());
    if (!matcher.error().ok()) break;
    matcher.FillNextTokenBitmaskBruteForce(slow.data());
    if (fast != slow) {
      // The brute force may overflow the matcher's work bounds where the fast mask did not;
      // the next fast mask then reports it as an error, which is a clean outcome.
      matcher.FillNextTokenBitmask(fast.data());
      if (!matcher.error().ok()) break;
      Fail("fast mask differs from the brute-force mask", step);
    }
    std::vector<int32_t> allowed;
    for (int32_t t = 0; t < vocab.size(); ++t) {
      if ((fast[t >> 5] >> (t & 31)) & 1) allowed.push_back(t);
    }
    if (allowed.empty()) break;  // a dead end the budget-free mask may reach
    const int32_t token = allowed[data[size - 1 - step % size] % allowed.size()];
    if (!matcher.AcceptToken(token) && matcher.error().ok()) Fail("allowed token refused", step);
    (void)matcher.ForcedBytes(16);
    (void)matcher.ShortestCompletion(64);
  }
  // The budgeted mask must always leave a way to finish.
  if (matcher.error().ok() && !matcher.IsTerminated()) {
    matcher.FillNextTokenBitmask(fast.data(), /*remaining_tokens=*/1 << 20);
  }
  return 0;
}
