#include "formats/byte_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tinyserve {

Status WriteFileChunks(const std::string& path, std::span<const std::span<const uint8_t>> chunks) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgumentError("{}: cannot create file: {}", tmp, std::strerror(errno));
  }
  bool ok = true;
  for (const auto& chunk : chunks) {
    if (!chunk.empty() && std::fwrite(chunk.data(), 1, chunk.size(), f) != chunk.size()) {
      ok = false;
      break;
    }
  }
  const int saved_errno = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    return DataLossError("{}: write failed: {}", path, std::strerror(saved_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return InvalidArgumentError("{}: cannot rename into place: {}", path, std::strerror(e));
  }
  return OkStatus();
}

}  // namespace tinyserve
