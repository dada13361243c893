// GET /tokenizer_info, as vLLM serves it: the tokenizer's configuration in the shape of its
// tokenizer_config.json, which remote-tokenizer clients (lm-evaluation-harness probes this route
// and /tokenize before it trusts the server to tokenize) read for the special tokens and the
// chat template. Pure function; any thread.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace tinyserve {

// The JSON body: tokenizer_class, eos/bos/pad tokens (null when the tokenizer has none), the
// chat template /v1/chat/completions applies (Qwen2.5's, tokenizer/chat_template.h),
// model_max_length (the served context) and Qwen2's fixed flags.
std::string TokenizerInfoJson(const Tokenizer& tokenizer, int64_t max_model_len);

}  // namespace tinyserve
