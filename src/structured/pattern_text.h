// Reading the text of a GBNF grammar or a regex: what their parsers (gbnf.cc, regex.cc) both
// read. Pure functions; any thread.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tokenizer/utf8.h"

namespace tinyserve::structured {

// The code point of the UTF-8 sequence at s[*pos], moving *pos past it; nullopt, *pos unmoved,
// where the bytes there are not valid UTF-8 (truncated, overlong, a surrogate, past U+10FFFF).
// Requires *pos < s.size().
inline std::optional<uint32_t> ReadCodePoint(std::string_view s, size_t* pos) {
  const size_t len = ValidUtf8SequenceLength(s, *pos);
  if (len == 0) return std::nullopt;
  const uint32_t cp = DecodeUtf8(s.data() + *pos, len);
  *pos += len;
  return cp;
}

// The value of `digits` hex digits at s[*pos], moving *pos past them; nullopt, *pos at the first
// byte that is not one, where fewer follow.
inline std::optional<uint32_t> ReadHexDigits(std::string_view s, size_t* pos, int digits) {
  uint32_t v = 0;
  for (int i = 0; i < digits; ++i) {
    if (*pos >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[*pos]))) {
      return std::nullopt;
    }
    const char h = s[(*pos)++];
    v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
  }
  return v;
}

}  // namespace tinyserve::structured
