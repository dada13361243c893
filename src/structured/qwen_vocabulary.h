// Adapter that loads Qwen2.5's vocabulary (token bytes + EOS ids) straight from tokenizer.json.
// Kept in this one file so it can be swapped for the tokenizer module's API. Any thread.
#pragma once

#include <memory>
#include <string>

#include "structured/vocabulary.h"
#include "util/status.h"

namespace tinyserve::structured {

inline constexpr int32_t kQwenVocabSize = 151936;  // rows of Qwen2.5's embedding / logits
inline constexpr int32_t kQwenEndOfText = 151643;
inline constexpr int32_t kQwenImEnd = 151645;
inline constexpr int32_t kQwenToolCallOpen = 151657;   // "<tool_call>"
inline constexpr int32_t kQwenToolCallClose = 151658;  // "</tool_call>"

// Reads `dir`/tokenizer.json: model.vocab (GPT-2 byte-to-unicode strings mapped back to bytes).
// Added tokens 151643..151664 get no bytes (never allowed inside structured text) except
// <tool_call> and </tool_call>, which Qwen2.5 marks non-special and emits as ordinary text; EOS
// ids are <|im_end|> and <|endoftext|>. Ids up to kQwenVocabSize are padding (never allowed).
[[nodiscard]] StatusOr<std::shared_ptr<const Vocabulary>> LoadQwenVocabulary(
    const std::string& dir, int32_t vocab_size = kQwenVocabSize);

}  // namespace tinyserve::structured
