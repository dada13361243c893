#include "util/read_file.h"

#include <fstream>
#include <sstream>

namespace tinyserve {

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFoundError("cannot open {}", path);
  const std::streamoff size = in.tellg();
  if (size < 0) {  // not seekable (a pipe): read it as a stream
    in.clear();
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return std::move(buffer).str();
  }
  // One read of the known size: a stringstream grows and copies its buffer as it goes.
  std::string text(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(text.data(), size)) return InternalError("cannot read {}", path);
  return text;
}

}  // namespace tinyserve
