// The Qwen2 pre-tokenizer through PCRE2 (JIT, UTF + UCP): the regex engine alternative to the
// hand-written scanner, kept as its cross-check in tests and for the benchmark comparison.
// Immutable after Create; Split is const and thread-safe (match data per call).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace tinyserve {

class Pcre2Pretokenizer {
 public:
  [[nodiscard]] static StatusOr<std::unique_ptr<Pcre2Pretokenizer>> Create();
  ~Pcre2Pretokenizer();
  Pcre2Pretokenizer(const Pcre2Pretokenizer&) = delete;
  Pcre2Pretokenizer& operator=(const Pcre2Pretokenizer&) = delete;

  // As Qwen2Pretokenize: appends the pieces of `text` (valid UTF-8).
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  Pcre2Pretokenizer() = default;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace tinyserve
