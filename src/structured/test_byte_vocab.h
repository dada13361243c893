// Test-only: a vocabulary of the 256 single bytes plus EOS (id 256), so grammars can be checked
// string by string without the real tokenizer files. Header-only; tests only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "structured/compiler.h"
#include "structured/matcher.h"

namespace tinyserve::structured::testing {

inline std::shared_ptr<const Vocabulary> ByteVocab() {
  static const std::shared_ptr<const Vocabulary> vocab = [] {
    std::vector<std::string> bytes(257);
    for (int b = 0; b < 256; ++b) bytes[b] = std::string(1, static_cast<char>(b));
    return *Vocabulary::Build(std::move(bytes), {256});
  }();
  return vocab;
}

// Whether the grammar accepts exactly `text` (as a whole output).
inline bool Accepts(const std::shared_ptr<const CompiledGrammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.AcceptBytes(text) && m.CanTerminate();
}

}  // namespace tinyserve::structured::testing
