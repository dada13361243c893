#include "server/tokenizer_info.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "tokenizer/qwen25_files.h"

namespace tinyserve {

std::string TokenizerInfoJson(const Tokenizer& tokenizer, int64_t max_model_len) {
  using Json = nlohmann::ordered_json;
  auto token = [&](std::optional<int32_t> id) -> Json {
    if (!id) return nullptr;
    return tokenizer.IdToPiece(*id);
  };
  const Json info = {{"tokenizer_class", "Qwen2Tokenizer"},
                     {"eos_token", token(tokenizer.eos_id())},
                     {"bos_token", token(tokenizer.bos_id())},
                     {"pad_token", token(tokenizer.pad_id())},
                     {"chat_template", std::string(kQwen25ChatTemplate)},
                     {"model_max_length", max_model_len},
                     {"add_bos_token", false},
                     {"add_prefix_space", false},
                     {"clean_up_tokenization_spaces", false},
                     {"errors", "replace"},
                     {"split_special_tokens", false}};
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tinyserve
