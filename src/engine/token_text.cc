#include "engine/token_text.h"

#include <utility>

#include "tokenizer/tokenizer.h"

namespace tinyserve {

TokenText TokenTextFromTokenizer(std::shared_ptr<const Tokenizer> tokenizer) {
  TokenText t;
  t.token_bytes = [tokenizer](int32_t id) { return std::string(tokenizer->TokenBytes(id)); };
  t.is_special = [tokenizer = std::move(tokenizer)](int32_t id) {
    return tokenizer->IsSpecial(id);
  };
  return t;
}

}  // namespace tinyserve
