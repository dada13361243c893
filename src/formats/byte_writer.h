// Little-endian byte sink for the file writers (GGUF, safetensors) and a checked file writer.
// One thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "util/status.h"

namespace tinyserve {

class ByteWriter {
 public:
  ByteWriter() { bytes_.reserve(4096); }

  template <typename T>
  requires std::is_arithmetic_v<T>
  void Write(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void WriteBytes(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void WriteString(std::string_view s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); }
  // Appends `fill` until size() is a multiple of `alignment` (> 0).
  void PadTo(uint64_t alignment, uint8_t fill = 0) {
    while (bytes_.size() % alignment != 0) bytes_.push_back(fill);
  }

  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Writes the concatenation of `chunks` to `path` (created or truncated); any I/O failure is an
// error naming the path. The file is written under a temporary name and renamed into place, so
// readers never see a partial file.
[[nodiscard]] Status WriteFileChunks(const std::string& path,
                                     std::span<const std::span<const uint8_t>> chunks);

}  // namespace tinyserve
