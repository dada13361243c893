// Drives the block-format conversions for tests/reference/test_dequant.py:
//   tool_quant_tool dequant TYPE IN.bin OUT.f32   raw blocks -> f32 (DequantizeRow)
//   tool_quant_tool quant TYPE IN.f32 OUT.bin     f32 -> raw blocks (QuantizeRow)
// TYPE is a dtype name (q4_0, q6_k, ...). Files are raw little-endian arrays.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "kernels/quant_formats.h"

namespace {

bool ReadFile(const char* path, std::vector<char>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

bool WriteFile(const char* path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tinyserve;
  if (argc != 5) {
    std::fprintf(stderr, "usage: tool_quant_tool dequant|quant TYPE IN OUT\n");
    return 2;
  }
  const std::string verb = argv[1];
  const std::optional<DType> type = DTypeFromName(argv[2]);
  if (!type || BlockSize(*type) == 0) {
    std::fprintf(stderr, "unknown type %s\n", argv[2]);
    return 2;
  }
  std::vector<char> in;
  if (!ReadFile(argv[3], &in)) {
    std::fprintf(stderr, "cannot read %s\n", argv[3]);
    return 1;
  }
  if (verb == "dequant") {
    const int64_t blocks = static_cast<int64_t>(in.size()) / BlockBytes(*type);
    if (blocks * BlockBytes(*type) != static_cast<int64_t>(in.size())) {
      std::fprintf(stderr, "size %zu is not a whole number of blocks\n", in.size());
      return 1;
    }
    const int64_t n = blocks * BlockSize(*type);
    std::vector<float> out(n);
    kernels::DequantizeRow(*type, in.data(), out.data(), n);
    return WriteFile(argv[4], out.data(), out.size() * sizeof(float)) ? 0 : 1;
  }
  if (verb == "quant") {
    const int64_t n = static_cast<int64_t>(in.size() / sizeof(float));
    std::vector<float> src(n);
    std::memcpy(src.data(), in.data(), n * sizeof(float));
    const std::optional<uint64_t> bytes = RowBytes(*type, n);
    if (!bytes) {
      std::fprintf(stderr, "%lld values is not a multiple of the block size\n",
                   static_cast<long long>(n));
      return 1;
    }
    std::vector<uint8_t> out(*bytes);
    const Status s = kernels::QuantizeRow(*type, src.data(), out.data(), n);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    return WriteFile(argv[4], out.data(), out.size()) ? 0 : 1;
  }
  std::fprintf(stderr, "unknown verb %s\n", verb.c_str());
  return 2;
}
