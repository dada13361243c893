#include "structured/qwen_vocabulary.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tinyserve::structured {
namespace {

// GPT-2's byte-level BPE shows byte b as code point unicode_of[b]; returns the inverse map.
std::vector<int> CodePointToByte() {
  std::vector<int> byte_of(512, -1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    byte_of[printable ? b : 256 + extra++] = b;
  }
  return byte_of;
}

}  // namespace

StatusOr<std::shared_ptr<const Vocabulary>> LoadQwenVocabulary(const std::string& dir,
                                                               int32_t vocab_size) {
  const std::string path = dir + "/tokenizer.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("model") || !j["model"].contains("vocab") ||
      !j["model"]["vocab"].is_object()) {
    return DataLossError("{}: no model.vocab object", path);
  }
  const std::vector<int> byte_of = CodePointToByte();
  std::vector<std::string> bytes(vocab_size);
  for (const auto& [text, id_json] : j["model"]["vocab"].items()) {
    if (!id_json.is_number_integer()) return DataLossError("{}: bad id for a token", path);
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= vocab_size) return DataLossError("{}: token id {} out of range", path, id);
    std::string out;
    for (size_t i = 0; i < text.size();) {
      // Decode one UTF-8 code point (the file is valid UTF-8; every code point is < 512).
      const auto c = static_cast<unsigned char>(text[i]);
      uint32_t cp = c;
      size_t len = 1;
      if (c >= 0xC0 && c < 0xE0 && i + 1 < text.size()) {
        cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3F);
        len = 2;
      }
      if (cp >= 512 || byte_of[cp] < 0 || (c >= 0x80 && len == 1)) {
        return DataLossError("{}: token {} is not byte-level BPE text", path, id);
      }
      out.push_back(static_cast<char>(byte_of[cp]));
      i += len;
    }
    bytes[id] = std::move(out);
  }
  if (kQwenToolCallClose < vocab_size) {
    bytes[kQwenToolCallOpen] = "<tool_call>";
    bytes[kQwenToolCallClose] = "</tool_call>";
  }
  std::vector<int32_t> eos;
  for (int32_t id : {kQwenImEnd, kQwenEndOfText}) {
    if (id < vocab_size) eos.push_back(id);
  }
  return Vocabulary::Build(std::move(bytes), std::move(eos));
}

}  // namespace tinyserve::structured
