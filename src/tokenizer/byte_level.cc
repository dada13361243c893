#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace tinyserve {
namespace {

// Printable bytes keep their code point; the others (controls, space, 0x7F-0xA0, 0xAD) take
// U+0100 upwards in byte order.
constexpr bool KeepsItsCodePoint(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 0x200> cp_to_byte{};  // every mapped code point is below U+0200
};

constexpr Tables MakeTables() {
  Tables t{};
  for (auto& v : t.cp_to_byte) v = -1;
  uint32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    t.byte_to_cp[b] = KeepsItsCodePoint(b) ? static_cast<uint32_t>(b) : next++;
    t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
  }
  return t;
}
constexpr Tables kTables = MakeTables();

}  // namespace

uint32_t ByteToUnicode(uint8_t b) { return kTables.byte_to_cp[b]; }

std::optional<std::string> ByteLevelDecode(std::string_view token_text) {
  std::string out;
  out.reserve(token_text.size());
  size_t pos = 0;
  while (pos < token_text.size()) {
    const size_t len = ValidUtf8SequenceLength(token_text, pos);
    if (len == 0) return std::nullopt;
    const uint32_t cp = DecodeUtf8(token_text.data() + pos, len);
    if (cp >= kTables.cp_to_byte.size() || kTables.cp_to_byte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(kTables.cp_to_byte[cp]));
    pos += len;
  }
  return out;
}

std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(kTables.byte_to_cp[static_cast<uint8_t>(c)], &out);
  return out;
}

}  // namespace tinyserve
