// UTF-8 helpers for the tokenizer: validation, repair of invalid byte sequences with U+FFFD
// (the WHATWG / Unicode "maximal subpart" rule that Rust's from_utf8_lossy and JavaScript's
// TextDecoder follow), and code point decoding. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tinyserve {

// Length of the valid UTF-8 sequence starting at `s[pos]`, or 0 if the bytes there do not start
// a complete valid sequence. Requires pos < s.size().
size_t ValidUtf8SequenceLength(std::string_view s, size_t pos);

// Length of the maximal subpart at `s[pos]` when it does not start a valid sequence: the number
// of bytes that one U+FFFD replaces (at least 1).
size_t InvalidUtf8SubpartLength(std::string_view s, size_t pos);

// True if `s` is entirely valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `s` with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
std::string RepairUtf8(std::string_view s);

// Number of bytes at the end of `s` that form a proper prefix of some valid sequence (0..3):
// bytes a streaming decoder must hold back because the next bytes may complete them.
size_t IncompleteUtf8TailLength(std::string_view s);

// Decodes the valid sequence of `len` bytes at `p` (len from ValidUtf8SequenceLength).
inline uint32_t DecodeUtf8(const char* p, size_t len) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  switch (len) {
    case 1:
      return u[0];
    case 2:
      return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu);
    case 3:
      return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
    default:
      return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) |
             (u[3] & 0x3Fu);
  }
}

// Appends the UTF-8 encoding of `cp` (requires a scalar value).
void AppendUtf8(uint32_t cp, std::string* out);

}  // namespace tinyserve
