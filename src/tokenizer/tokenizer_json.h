// tokenizer.json read in one pass: the BPE model's vocab and merges (151,643 + 151,387 entries in
// a Qwen2.5 file) go straight into arrays, everything else into a JSON document for the pipeline
// checks and the added tokens. nlohmann's DOM alone kept a map node per vocab entry and a JSON
// array per merge, most of a Qwen tokenizer's load time. Pure function.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace tinyserve {

// The largest token id a tokenizer.json may name (vocab and added tokens alike): token tables are
// sized by the largest id, so a hostile file must not choose it.
inline constexpr int64_t kMaxTokenId = int64_t{1} << 24;

// clang-tidy 14 reports bugprone-exception-escape on the implicit special members here: a false
// positive, as on chat_template.h's ChatMessage (nlohmann::basic_json's moves are noexcept).
// NOLINTNEXTLINE(bugprone-exception-escape)
struct TokenizerJsonParts {
  nlohmann::json rest;      // the document without model.vocab and model.merges
  bool has_vocab = false;   // model.vocab was an object (read into `vocab`)
  bool has_merges = false;  // model.merges was an array (read into `merges`)
  // Vocabulary strings by id ("" where no entry names an id; for an id named twice, the last).
  std::vector<std::string> vocab;
  // "a b" strings and ["a", "b"] pairs alike, in file (rank) order.
  std::vector<std::pair<std::string, std::string>> merges;
};

// Errors: text that is not JSON (with nlohmann's message and byte offset), a vocab value that is
// not an integer id in [0, 2^24], a merge that is neither "a b" nor a pair of strings.
StatusOr<TokenizerJsonParts> ReadTokenizerJson(std::string_view text);

}  // namespace tinyserve
