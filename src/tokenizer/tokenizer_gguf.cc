// Tokenizer::FromGguf: the tokenizer.ggml.* metadata llama.cpp writes for Qwen2 models, read
// as llama.cpp reads it (token types, no NFC).
#include <algorithm>
#include <iterator>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve {
namespace {

// llama.cpp's token types (prefixed: Tokenizer's own Kind enumerators, kUnused among them,
// would shadow these names inside its member functions; clang counts no case label as a use).
[[maybe_unused]] constexpr int64_t kTypeUndefined = 0, kTypeNormal = 1, kTypeUnknown = 2,
                                   kTypeControl = 3, kTypeUserDefined = 4, kTypeUnused = 5,
                                   kTypeByte = 6;

}  // namespace

bool IsGgufEndOfGenerationText(std::string_view text) {
  static constexpr std::string_view kTexts[] = {
      "<|eot_id|>", "<|im_end|>",  "<|end|>",      "<end_of_turn>",   "<|endoftext|>",
      "<|eom_id|>", "<EOT>",       "_<EOT>",       "<|end_of_text|>", "<end_of_utterance>",
      "</s>",       "<|fim_pad|>", "<fim-pad>",    "<fim_pad>",       "<|repo_name|>",
      "<fim-repo>", "<reponame>",  "<|file_sep|>", "<fim-file-sep>",  "<file_sep>",
  };
  return std::find(std::begin(kTexts), std::end(kTexts), text) != std::end(kTexts);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGgufPath(const std::string& path) {
  TS_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::Open(path));
  return FromGguf(gguf);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  const auto model = gguf.GetString("tokenizer.ggml.model");
  if (model != "gpt2") return UnimplementedError("GGUF tokenizer model must be gpt2");
  const auto pre = gguf.GetString("tokenizer.ggml.pre");
  if (pre != "qwen2") {
    return UnimplementedError("GGUF pre-tokenizer '{}' is not supported (only qwen2)",
                              pre.value_or("(none)"));
  }
  const GgufValue* tokens = gguf.Find("tokenizer.ggml.tokens");
  const GgufValue* merges = gguf.Find("tokenizer.ggml.merges");
  if (!tokens || tokens->type() != GgufType::kArray ||
      tokens->element_type() != GgufType::kString || !merges ||
      merges->type() != GgufType::kArray || merges->element_type() != GgufType::kString) {
    return InvalidArgumentError("GGUF lacks tokenizer.ggml.tokens or tokenizer.ggml.merges");
  }
  const std::vector<std::string>& texts = tokens->strings();
  std::vector<int64_t> types(texts.size(), kTypeNormal);
  if (const GgufValue* t = gguf.Find("tokenizer.ggml.token_type")) {
    auto v = t->AsI64Array();
    if (!v || v->size() != texts.size()) {
      return InvalidArgumentError("tokenizer.ggml.token_type does not match the tokens");
    }
    types = std::move(*v);
  }
  TokenizerParts parts;
  parts.vocab.resize(texts.size());
  // NORMAL tokens llama.cpp makes control tokens (IsGgufEndOfGenerationText; their texts are
  // ASCII, the same in byte-level form).
  std::vector<std::string_view> promoted;
  for (size_t id = 0; id < texts.size(); ++id) {
    if (types[id] == kTypeNormal && IsGgufEndOfGenerationText(texts[id])) {
      types[id] = kTypeControl;
      promoted.push_back(texts[id]);
    }
    switch (types[id]) {
      case kTypeUndefined:
      case kTypeByte:
      case kTypeNormal:
        parts.vocab[id] = texts[id];
        break;
      case kTypeControl:
      case kTypeUnknown:
      case kTypeUserDefined:
        if (texts[id].empty()) return InvalidArgumentError("GGUF token {} is empty", id);
        parts.added.push_back({static_cast<int32_t>(id), texts[id], types[id] != kTypeUserDefined});
        break;
      case kTypeUnused:
        break;
      default:
        return InvalidArgumentError(
            "tokenizer.ggml.token_type: token {} has type {}, outside llama.cpp's 0..6", id,
            types[id]);
    }
  }
  for (const std::string& m : merges->strings()) {
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) return InvalidArgumentError("bad GGUF merge '{}'", m);
    // A merge into a promoted token ("</s" + ">") is dropped: the qwen2 pre-tokenizer never
    // leaves such a marker (punctuation around letters) inside one piece, so it never applies.
    std::string joined = m.substr(0, space) + m.substr(space + 1);
    if (std::find(promoted.begin(), promoted.end(), joined) != promoted.end()) continue;
    parts.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  auto id_key = [&](const char* key) -> std::optional<int32_t> {
    const auto v = gguf.GetUint(key);
    if (!v || *v >= texts.size()) return std::nullopt;
    return static_cast<int32_t>(*v);
  };
  parts.bos_id = id_key("tokenizer.ggml.bos_token_id");
  parts.eos_id = id_key("tokenizer.ggml.eos_token_id");
  parts.pad_id = id_key("tokenizer.ggml.padding_token_id");
  parts.chat_template = gguf.GetString("tokenizer.chat_template").value_or("");
  // llama.cpp tokenizes GGUF vocabularies without Unicode normalisation; so does tinyserve, so
  // that a GGUF model sees the ids llama.cpp would give it (tokenizer.json keeps HF's NFC).
  parts.nfc = false;
  return Build(std::move(parts));
}

}  // namespace tinyserve
