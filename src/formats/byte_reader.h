// Bounded little-endian reader over a byte span: every read checks the remaining length first
// and reports failure instead of reading past the end. Used by the GGUF parser; one thread.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

namespace tinyserve {

static_assert(std::endian::native == std::endian::little,
              "file formats are little-endian and read in place");

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes, size_t pos = 0)
      : bytes_(bytes), pos_(pos <= bytes.size() ? pos : bytes.size()) {}

  size_t pos() const { return pos_; }
  size_t size() const { return bytes_.size(); }
  size_t remaining() const { return bytes_.size() - pos_; }

  // Reads one little-endian arithmetic value; false (pos unchanged) if too few bytes remain.
  template <typename T>
  requires std::is_arithmetic_v<T>
  [[nodiscard]] bool Read(T* out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  // Points `out` at the next `n` bytes and skips them; false if fewer remain.
  [[nodiscard]] bool ReadBytes(uint64_t n, std::span<const uint8_t>* out) {
    if (n > remaining()) return false;
    *out = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  [[nodiscard]] bool ReadString(uint64_t n, std::string_view* out) {
    std::span<const uint8_t> b;
    if (!ReadBytes(n, &b)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
    return true;
  }

  [[nodiscard]] bool Skip(uint64_t n) {
    if (n > remaining()) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_;
};

}  // namespace tinyserve
