// How the engine turns token ids into text without depending on a tokenizer class: two function
// objects, built from the real tokenizer by the CLI (or from a fake byte vocabulary in tests).
// Called only on the engine thread; they must be safe to call concurrently with nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace tinyserve {

struct TokenText {
  // The raw bytes token `id` stands for (byte-level BPE: may be part of a UTF-8 character).
  std::function<std::string(int32_t id)> token_bytes;
  // True for special / control tokens (<|im_end|>, ...): no text when skip_special_tokens.
  std::function<bool(int32_t id)> is_special;

  bool empty() const { return !token_bytes; }
};

}  // namespace tinyserve

namespace tinyserve {

class Tokenizer;

// TokenText over a real tokenizer (kept alive by the function objects).
TokenText TokenTextFromTokenizer(std::shared_ptr<const Tokenizer> tokenizer);

}  // namespace tinyserve
