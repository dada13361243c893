// The Qwen2 pre-tokenizer: splits normalised text into the pieces that BPE encodes one by one,
// exactly as the regex of Qwen2's tokenizer.json does (see Qwen2Pretokenize). A hand-written
// scanner with Unicode categories from utf8proc (chosen over PCRE2: see docs in the .cc).
// Pure functions; any thread.
#pragma once

#include <string_view>
#include <vector>

namespace tinyserve {

// The pattern Qwen2 (and Qwen2.5/Qwen3) tokenizer.json files carry; the scanner implements it.
inline constexpr std::string_view kQwen2PretokenizerRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Appends to `pieces` the consecutive pieces of `text` (valid UTF-8), which together cover it:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} |
//    ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
void Qwen2Pretokenize(std::string_view text, std::vector<std::string_view>* pieces);

}  // namespace tinyserve
