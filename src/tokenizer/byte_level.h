// GPT-2's byte-level alphabet: each byte maps to one printable code point, so BPE vocabularies
// store arbitrary bytes as text ("Ġ" is the space byte). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tinyserve {

// The code point that stands for byte `b` (GPT-2 bytes_to_unicode).
uint32_t ByteToUnicode(uint8_t b);

// The bytes a vocabulary string stands for, or nullopt if it holds a character outside the
// byte-level alphabet (or is not valid UTF-8).
std::optional<std::string> ByteLevelDecode(std::string_view token_text);

// The vocabulary string for raw bytes (inverse of ByteLevelDecode).
std::string ByteLevelEncode(std::string_view bytes);

}  // namespace tinyserve
