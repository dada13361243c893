// The grammar matcher's view of a served model's vocabulary, built from its Tokenizer (so it
// works for tokenizer.json and GGUF alike). Call once at start-up; the result is immutable and
// shared by every matcher on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "structured/vocabulary.h"
#include "util/status.h"

namespace tinyserve {
class Tokenizer;
}

namespace tinyserve::structured {

// Token t gets the bytes it decodes to, except special tokens (never allowed inside structured
// text; Qwen2.5's <tool_call> / </tool_call> are non-special added tokens and keep their text)
// and ids from tokenizer.num_tokens() up to vocab_size (padding rows of the logits).
// eos_ids: the tokens that end generation; the matcher allows them where the grammar can end.
[[nodiscard]] StatusOr<std::shared_ptr<const Vocabulary>> VocabularyFromTokenizer(
    const Tokenizer& tokenizer, int32_t vocab_size, std::vector<int32_t> eos_ids);

// Qwen2.5-Instruct's vocabulary (151,936 logits rows; EOS <|im_end|> and <|endoftext|>) from the
// npm tokenizer files in `dir` (util/paths.h QwenTokenizerDir()): for tests and benchmarks.
[[nodiscard]] StatusOr<std::shared_ptr<const Vocabulary>> LoadQwen25Vocabulary(
    const std::string& dir);

}  // namespace tinyserve::structured
