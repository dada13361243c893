// Runs kernels::MatMulWithIsa on raw little-endian input files and writes the f32 result, for
// tests/reference/test_matmul_numpy.py (NumPy oracle). Usage:
//   tool_matmul_tool --isa scalar|avx2|avx512|amx|best --threads N DTYPE ROWS COLS NUM_ROWS W X
//   BIAS OUT
// DTYPE f32, f16 or bf16 (W holds ROWS x COLS of it); X NUM_ROWS x COLS f32; BIAS ROWS f32 or
// "-" for none. x, bias and out sit one float past 64-byte alignment (misaligned starts). Prints
// "bf16_dot 1" when the product rounds activations to bf16 (kernels::UsesBf16Dot), else
// "bf16_dot 0" (with --isa best, what the model's matmuls do here: kernels::BestIsa(), so the
// NumPy model oracles know whether to round activations). Exit status: 0 ok, 1 bad usage or I/O
// error, 3 the ISA is not supported here.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "kernels/matmul.h"
#include "util/thread_pool.h"

namespace {

using tinyserve::DType;
namespace k = tinyserve::kernels;

std::vector<char> ReadFile(const std::string& path, size_t want) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
  if (!in || bytes.size() != want) {
    std::fprintf(stderr, "%s: cannot read %zu bytes\n", path.c_str(), want);
    std::exit(1);
  }
  return bytes;
}

// `count` floats from path, placed one float past the start of the returned buffer.
std::vector<float> ReadFloatsOffset(const std::string& path, size_t count) {
  const std::vector<char> bytes = ReadFile(path, count * sizeof(float));
  std::vector<float> out(count + 1);
  std::memcpy(out.data() + 1, bytes.data(), bytes.size());
  return out;
}

int Run(int argc, char** argv) {
  if (argc != 13 || std::strcmp(argv[1], "--isa") != 0 || std::strcmp(argv[3], "--threads") != 0) {
    std::fprintf(stderr,
                 "usage: tool_matmul_tool --isa ISA --threads N DTYPE ROWS COLS NUM_ROWS W X "
                 "BIAS|- OUT\n");
    return 1;
  }
  const auto isa = std::strcmp(argv[2], "best") == 0 ? k::BestIsa() : k::ParseIsa(argv[2]);
  const auto dtype = tinyserve::DTypeFromName(argv[5]);
  const int threads = std::atoi(argv[4]);
  const int64_t rows = std::atoll(argv[6]), cols = std::atoll(argv[7]),
                num_rows = std::atoll(argv[8]);
  if (!isa || !dtype || threads < 1 || rows < 1 || cols < 1 || num_rows < 1) {
    std::fprintf(stderr, "bad arguments\n");
    return 1;
  }
  if (!k::IsaSupported(*isa)) return 3;
  const uint64_t row_bytes = tinyserve::RowBytes(*dtype, cols).value_or(0);
  const std::vector<char> w = ReadFile(argv[9], row_bytes * rows);
  auto packed = k::PackedMatrix::Pack({"w", *dtype, {rows, cols}, w.data(), w.size()});
  if (!packed.ok()) {
    std::fprintf(stderr, "%s\n", packed.status().ToString().c_str());
    return 1;
  }
  const std::vector<float> x = ReadFloatsOffset(argv[10], num_rows * cols);
  const bool has_bias = std::strcmp(argv[11], "-") != 0;
  const std::vector<float> bias =
      has_bias ? ReadFloatsOffset(argv[11], rows) : std::vector<float>();
  std::vector<float> out(num_rows * rows + 1);
  tinyserve::ThreadPool pool(threads);
  k::MatMulWithIsa(*isa, *packed, x.data() + 1, num_rows, has_bias ? bias.data() + 1 : nullptr,
                   out.data() + 1, &pool);
  std::ofstream f(argv[12], std::ios::binary);
  f.write(reinterpret_cast<const char*>(out.data() + 1),
          static_cast<std::streamsize>((out.size() - 1) * sizeof(float)));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", argv[12]);
    return 1;
  }
  std::printf("bf16_dot %d\n", k::UsesBf16Dot(*packed, *isa) ? 1 : 0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
