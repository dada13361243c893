// Runs one kernel of kernels/ops.h or kernels/attention.h on raw little-endian input files and
// writes the f32 result, for tests/reference/test_ops.py (NumPy oracle). Usage:
//   tool_ops_tool [--isa scalar|avx2|avx512] OP ARGS...   (see kUsage)
// Exit status: 0 ok, 1 bad usage or I/O error, 3 the requested ISA is not supported here.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace {

using tinyserve::DType;
using tinyserve::kernels::Isa;

constexpr const char* kUsage =
    "ops:\n"
    "  rms_norm ROWS DIM EPS X W OUT\n"
    "  rope_cos_sin NUM_TOKENS HEAD_DIM THETA POSITIONS_I32 OUT\n"
    "  rope_neox NUM_TOKENS NUM_HEADS HEAD_DIM X COS_SIN OUT\n"
    "  silu_mul ROWS DIM GATE_UP OUT\n"
    "  softmax ROWS DIM X OUT\n"
    "  logsumexp ROWS DIM X OUT (one value per row)\n"
    "  argmax ROWS DIM X OUT (each row's index, as a float)\n"
    "  add_bias ROWS DIM X BIAS OUT\n"
    "  embedding DTYPE VOCAB DIM NUM_IDS TABLE IDS_I32 OUT\n"
    "  attention DTYPE NUM_BLOCKS BLOCK_SIZE NUM_KV_HEADS HEAD_DIM NUM_HEADS NUM_SEQS\n"
    "            MAX_BLOCKS SCALE Q K V QUERY_START_I32 SEQ_LENS_I32 BLOCK_TABLES_I32 OUT\n";

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

template <typename T>
std::vector<T> ReadArray(const std::string& path, size_t count) {
  const std::vector<char> bytes = ReadFile(path);
  if (bytes.size() != count * sizeof(T)) {
    std::fprintf(stderr, "%s: %zu bytes, expected %zu\n", path.c_str(), bytes.size(),
                 count * sizeof(T));
    std::exit(1);
  }
  std::vector<T> out(count);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(out.data()));
  return out;
}

void WriteArray(const std::string& path, const std::vector<float>& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()),
            static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

DType ParseDType(const std::string& name) {
  auto t = tinyserve::DTypeFromName(name);
  if (!t) {
    std::fprintf(stderr, "unknown dtype %s\n", name.c_str());
    std::exit(1);
  }
  return *t;
}

int64_t Elements(DType t) { return t == DType::kF32 ? 4 : 2; }

int Run(Isa isa, const std::string& op, const std::vector<std::string>& a) {
  auto need = [&](size_t n) {
    if (a.size() != n) {
      std::fprintf(stderr, "%s takes %zu arguments\n%s", op.c_str(), n, kUsage);
      std::exit(1);
    }
  };
  auto i64 = [&](size_t i) { return std::stoll(a[i]); };
  namespace k = tinyserve::kernels;
  if (op == "rms_norm") {
    need(6);
    const int64_t rows = i64(0), dim = i64(1);
    auto x = ReadArray<float>(a[3], rows * dim);
    auto w = ReadArray<float>(a[4], dim);
    std::vector<float> out(rows * dim);
    k::RmsNorm(isa, x.data(), w.data(), rows, dim, std::stof(a[2]), out.data(), nullptr);
    WriteArray(a[5], out);
  } else if (op == "rope_cos_sin") {
    need(5);
    const int64_t n = i64(0), hd = i64(1);
    auto pos = ReadArray<int32_t>(a[3], n);
    std::vector<float> out(n * hd);
    k::RopeCosSin(pos.data(), n, hd, std::stof(a[2]), out.data());
    WriteArray(a[4], out);
  } else if (op == "rope_neox") {
    need(6);
    const int64_t n = i64(0), heads = i64(1), hd = i64(2);
    auto x = ReadArray<float>(a[3], n * heads * hd);
    auto cs = ReadArray<float>(a[4], n * hd);
    k::RopeNeox(isa, x.data(), cs.data(), n, heads, hd);
    WriteArray(a[5], x);
  } else if (op == "silu_mul") {
    need(4);
    const int64_t rows = i64(0), dim = i64(1);
    auto gu = ReadArray<float>(a[2], rows * 2 * dim);
    std::vector<float> out(rows * dim);
    k::SiluMul(isa, gu.data(), rows, dim, out.data(), nullptr);
    WriteArray(a[3], out);
  } else if (op == "softmax") {
    need(4);
    const int64_t rows = i64(0), dim = i64(1);
    auto x = ReadArray<float>(a[2], rows * dim);
    for (int64_t r = 0; r < rows; ++r) {  // the probabilities: the weights over their sum
      float* xr = x.data() + r * dim;
      const float sum = k::SoftmaxWeights(isa, xr, dim);
      for (int64_t i = 0; i < dim; ++i) xr[i] /= sum;
    }
    WriteArray(a[3], x);
  } else if (op == "logsumexp") {
    need(4);
    const int64_t rows = i64(0), dim = i64(1);
    auto x = ReadArray<float>(a[2], rows * dim);
    std::vector<float> out(rows);
    for (int64_t r = 0; r < rows; ++r) out[r] = k::LogSumExp(isa, x.data() + r * dim, dim);
    WriteArray(a[3], out);
  } else if (op == "argmax") {
    need(4);
    const int64_t rows = i64(0), dim = i64(1);
    auto x = ReadArray<float>(a[2], rows * dim);
    std::vector<float> out(rows);
    for (int64_t r = 0; r < rows; ++r)
      out[r] = static_cast<float>(k::Argmax(isa, x.data() + r * dim, dim));
    WriteArray(a[3], out);
  } else if (op == "add_bias") {
    need(5);
    const int64_t rows = i64(0), dim = i64(1);
    auto x = ReadArray<float>(a[2], rows * dim);
    auto bias = ReadArray<float>(a[3], dim);
    k::AddBias(isa, x.data(), bias.data(), rows, dim);
    WriteArray(a[4], x);
  } else if (op == "embedding") {
    need(7);
    const DType dtype = ParseDType(a[0]);
    const int64_t vocab = i64(1), dim = i64(2), num_ids = i64(3);
    const std::vector<char> table_bytes = ReadFile(a[4]);
    auto ids = ReadArray<int32_t>(a[5], num_ids);
    tinyserve::TensorView table;
    table.dtype = dtype;
    table.shape = {vocab, dim};
    table.data = table_bytes.data();
    table.num_bytes = table_bytes.size();
    if (table.num_bytes != tinyserve::RowBytes(dtype, dim).value_or(0) * vocab) {
      std::fprintf(stderr, "table size mismatch\n");
      return 1;
    }
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab) {
        std::fprintf(stderr, "id %d out of range\n", id);
        return 1;
      }
    }
    std::vector<float> out(num_ids * dim);
    k::EmbeddingLookup(isa, table, ids.data(), num_ids, out.data());
    WriteArray(a[6], out);
  } else if (op == "attention") {
    need(16);
    k::PagedKvLayer layer;
    layer.dtype = ParseDType(a[0]);
    layer.num_blocks = i64(1);
    layer.block_size = static_cast<int32_t>(i64(2));
    layer.num_kv_heads = static_cast<int32_t>(i64(3));
    layer.head_dim = static_cast<int32_t>(i64(4));
    const auto num_heads = static_cast<int32_t>(i64(5));
    const auto num_seqs = static_cast<int32_t>(i64(6));
    const auto max_blocks = static_cast<int32_t>(i64(7));
    const float scale = std::stof(a[8]);
    auto query_start = ReadArray<int32_t>(a[12], num_seqs + 1);
    auto seq_lens = ReadArray<int32_t>(a[13], num_seqs);
    auto tables = ReadArray<int32_t>(a[14], int64_t{num_seqs} * max_blocks);
    const int64_t width = int64_t{num_heads} * layer.head_dim;
    auto q = ReadArray<float>(a[9], query_start.back() * width);
    const int64_t cache_elems =
        layer.num_blocks * layer.block_size * layer.num_kv_heads * layer.head_dim;
    auto kc = ReadArray<char>(a[10], cache_elems * Elements(layer.dtype));
    auto vc = ReadArray<char>(a[11], cache_elems * Elements(layer.dtype));
    layer.k = kc.data();
    layer.v = vc.data();
    k::AttentionBatch batch;
    batch.num_seqs = num_seqs;
    batch.query_start = query_start.data();
    batch.seq_lens = seq_lens.data();
    batch.block_tables = tables.data();
    batch.max_blocks_per_seq = max_blocks;
    std::vector<float> out(q.size());
    k::PagedAttention(isa, q.data(), layer, batch, num_heads, scale, out.data(), nullptr);
    WriteArray(a[15], out);
  } else {
    std::fprintf(stderr, "unknown op %s\n%s", op.c_str(), kUsage);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Isa isa = tinyserve::kernels::BestIsa();
  if (args.size() >= 2 && args[0] == "--isa") {
    const std::string_view name = args[1];
    if (name == "scalar") {
      isa = Isa::kScalar;
    } else if (name == "avx2") {
      isa = Isa::kAvx2;
    } else if (name == "avx512") {
      isa = Isa::kAvx512;
    } else {
      std::fprintf(stderr, "unknown isa %s\n", args[1].c_str());
      return 1;
    }
    if (!tinyserve::kernels::IsaSupported(isa)) return 3;
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) {
    std::fprintf(stderr, "usage: tool_ops_tool [--isa NAME] OP ARGS...\n%s", kUsage);
    return 1;
  }
  const std::string op = args[0];
  args.erase(args.begin());
  return Run(isa, op, args);
}
