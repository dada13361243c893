#include "structured/tokenizer_vocabulary.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace tinyserve::structured {

StatusOr<std::shared_ptr<const Vocabulary>> VocabularyFromTokenizer(const Tokenizer& tokenizer,
                                                                    int32_t vocab_size,
                                                                    std::vector<int32_t> eos_ids) {
  if (vocab_size < tokenizer.num_tokens()) {
    return InvalidArgumentError(
        "the model's {} logits rows are fewer than the tokenizer's {} tokens", vocab_size,
        tokenizer.num_tokens());
  }
  std::vector<std::string> bytes(vocab_size);
  for (int32_t id = 0; id < tokenizer.num_tokens(); ++id) {
    if (!tokenizer.IsSpecial(id)) bytes[id] = std::string(tokenizer.TokenBytes(id));
  }
  std::sort(eos_ids.begin(), eos_ids.end());
  eos_ids.erase(std::unique(eos_ids.begin(), eos_ids.end()), eos_ids.end());
  std::erase_if(eos_ids, [&](int32_t id) { return id < 0 || id >= vocab_size; });
  for (int32_t id : eos_ids) bytes[id].clear();
  return Vocabulary::Build(std::move(bytes), std::move(eos_ids));
}

StatusOr<std::shared_ptr<const Vocabulary>> LoadQwen25Vocabulary(const std::string& dir) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Qwen25FromNpmDir(dir));
  constexpr int32_t kVocabSize = 151936, kEndOfText = 151643, kImEnd = 151645;
  return VocabularyFromTokenizer(*tokenizer, kVocabSize, {kImEnd, kEndOfText});
}

}  // namespace tinyserve::structured
