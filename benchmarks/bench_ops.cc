// Paged attention and row-wise ops on Qwen2.5-0.5B shapes (14 query heads, 2 KV heads,
// head_dim 64, block size 16), for every ISA this CPU supports, as fractions of this machine's
// bounds measured in the same run (roofline.h): decode attention against read bandwidth (it
// streams the KV cache), prefill attention against the f32 FMA peak (its unit: keys and values
// are converted to f32), row-wise ops against read bandwidth.
//   bench_ops [--threads N] [--quick] [--decode] [--only TEXT]
// (--decode: AVX-512 decode attention only; --only: attention cases whose name contains TEXT)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/ops.h"
#include "roofline.h"
#include "util/aligned_buffer.h"

namespace tinyserve {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call: the fastest of repeated runs lasting at least `min_seconds` in all.
template <typename Fn>
double TimeIt(Fn&& fn, double min_seconds) {
  fn();
  double best = 1e30, total = 0;
  int runs = 0;
  while (total < min_seconds || runs < 3) {
    const double t0 = Now();
    fn();
    const double dt = Now() - t0;
    best = std::min(best, dt);
    total += dt;
    ++runs;
  }
  return best;
}

struct AttentionCase {
  const char* name;
  int32_t num_seqs, context, q_len;
  // Caches of this many layers, attended in turn (the time is per layer): with 24, a long
  // context's KV no longer fits in cache and comes from memory, as in the model's step.
  int32_t layers = 1;
};

void BenchAttention(kernels::Isa isa, DType dtype, const AttentionCase& c, ThreadPool* pool,
                    const bench::Roofline& roof, double min_seconds) {
  constexpr int32_t kBlock = 16, kKvHeads = 2, kHeadDim = 64, kHeads = 14;
  const int32_t blocks_per_seq = (c.context + kBlock - 1) / kBlock;
  const int64_t num_blocks = int64_t{c.num_seqs} * blocks_per_seq;
  const int64_t layer_elems = num_blocks * kBlock * kKvHeads * kHeadDim;
  const int64_t elems = layer_elems * c.layers;
  const int64_t elem_bytes = dtype == DType::kF32 ? 4 : dtype == DType::kI8 ? 1 : 2;
  // Allocated as the engine's KV cache is (engine/kv_cache.h): 2 MiB pages where the kernel
  // grants them, so a long context's rows cost no more TLB misses here than there.
  AlignedBuffer<uint8_t> k(elems * elem_bytes), v(elems * elem_bytes);
  // int8 rows: one binary16 scale per slot and KV head (kv_quant.h).
  std::vector<uint16_t> k_scale(elems / kHeadDim), v_scale(elems / kHeadDim);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t r = 0; r < elems / kHeadDim; ++r) {
    k_scale[r] = F32ToFp16(1.0f / 127);
    v_scale[r] = F32ToFp16(1.0f / 127);
  }
  for (int64_t i = 0; i < elems; ++i) {
    const float a = dist(rng), b = dist(rng);
    if (dtype == DType::kI8) {
      k[i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(a * 127)));
      v[i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(b * 127)));
    } else if (dtype == DType::kF32) {
      std::memcpy(&k[4 * i], &a, 4);
      std::memcpy(&v[4 * i], &b, 4);
    } else {
      const uint16_t ha = dtype == DType::kF16 ? F32ToFp16(a) : F32ToBf16(a);
      const uint16_t hb = dtype == DType::kF16 ? F32ToFp16(b) : F32ToBf16(b);
      std::memcpy(&k[2 * i], &ha, 2);
      std::memcpy(&v[2 * i], &hb, 2);
    }
  }
  std::vector<kernels::PagedKvLayer> layers;
  for (int32_t l = 0; l < c.layers; ++l) {
    const int64_t e = l * layer_elems;
    layers.push_back({k.data() + e * elem_bytes, v.data() + e * elem_bytes, dtype, num_blocks,
                      kBlock, kKvHeads, kHeadDim, k_scale.data() + e / kHeadDim,
                      v_scale.data() + e / kHeadDim});
  }
  std::vector<int32_t> query_start = {0}, seq_lens, tables;
  for (int32_t s = 0; s < c.num_seqs; ++s) {
    query_start.push_back(query_start.back() + c.q_len);
    seq_lens.push_back(c.context);
    for (int32_t b = 0; b < blocks_per_seq; ++b) tables.push_back(s * blocks_per_seq + b);
  }
  kernels::AttentionBatch batch{c.num_seqs, query_start.data(), seq_lens.data(), tables.data(),
                                blocks_per_seq};
  std::vector<float> q(int64_t{query_start.back()} * kHeads * kHeadDim), out(q.size());
  for (float& x : q) x = dist(rng);
  auto attend_every_layer = [&] {
    for (const kernels::PagedKvLayer& layer : layers)
      kernels::PagedAttention(isa, q.data(), layer, batch, kHeads, 0.125f, out.data(), pool);
  };
  const double sec = TimeIt(attend_every_layer, min_seconds) / c.layers;
  // Keys each query row attends to: all of the context for decode, causal for prefill.
  const double keys_per_seq =
      c.q_len == 1 ? c.context : double(c.q_len) * (2.0 * c.context - c.q_len + 1) / 2;
  const double flops = 4.0 * kHeads * kHeadDim * keys_per_seq * c.num_seqs;
  const double bytes = (2.0 * elems * elem_bytes +
                        (dtype == DType::kI8 ? 2.0 * sizeof(uint16_t) * k_scale.size() : 0)) /
                       c.layers;
  std::printf(
      "attention %-7s %-5s %-28s %9.3f ms  %7.2f GB/s (%4.0f%% of read bw)  %7.2f GFLOP/s "
      "(%4.0f%% of fma peak)\n",
      std::string(kernels::IsaName(isa)).c_str(), std::string(DTypeName(dtype)).c_str(), c.name,
      sec * 1e3, bytes / sec / 1e9, 100 * bytes / sec / 1e9 / roof.read_gb_per_s, flops / sec / 1e9,
      100 * flops / sec / 1e9 / roof.fma_gflops);
}

void BenchRowOps(kernels::Isa isa, ThreadPool* pool, const bench::Roofline& roof,
                 double min_seconds) {
  const int64_t rows = 64, hidden = 896, ffn = 4864;
  std::vector<float> x(rows * 2 * ffn), w(ffn), out(rows * ffn);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float& f : x) f = dist(rng);
  for (float& f : w) f = dist(rng);
  const double rms = TimeIt(
      [&] { kernels::RmsNorm(isa, x.data(), w.data(), rows, hidden, 1e-6f, out.data(), pool); },
      min_seconds);
  const double silu =
      TimeIt([&] { kernels::SiluMul(isa, x.data(), rows, ffn, out.data(), pool); }, min_seconds);
  // Bytes each op streams (read x and w / gate and up, write out), against read bandwidth: the
  // ops are memory-bound, but these working sets fit in cache, so more than 100% is possible.
  const double rms_bytes = double(rows * hidden * 2 + hidden) * sizeof(float);
  const double silu_bytes = double(rows * ffn * 3) * sizeof(float);
  std::printf(
      "rms_norm  %-7s [%lld x %lld] %8.2f us (%4.0f%% of read bw)   silu_mul [%lld x %lld] "
      "%8.2f us (%4.0f%% of read bw)\n",
      std::string(kernels::IsaName(isa)).c_str(), (long long)rows, (long long)hidden, rms * 1e6,
      100 * rms_bytes / rms / 1e9 / roof.read_gb_per_s, (long long)rows, (long long)ffn, silu * 1e6,
      100 * silu_bytes / silu / 1e9 / roof.read_gb_per_s);
}

int Main(int argc, char** argv) {
  int threads = 1;
  bool quick = false;
  bool decode_only = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--quick") {
      quick = true;
    } else if (arg == "--decode") {
      decode_only = true;
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: bench_ops [--threads N] [--quick] [--decode] [--only TEXT]\n");
      return 1;
    }
  }
  ThreadPool pool(threads);
  const bench::Roofline roof = bench::MeasureRoofline(&pool, uint64_t{256} << 20);
  // Attention is f32 FMA work on f32 (converted) keys and values: its unit is the FMA peak.
  std::printf("threads %d, %s\n", threads, bench::Describe(roof).c_str());
  const double min_seconds = quick ? 0.05 : 0.5;
  const AttentionCase cases[] = {
      {"decode 16 seqs x ctx 2048", 16, 2048, 1}, {"decode 1 seq x ctx 4096", 1, 4096, 1},
      {"decode 1 seq x ctx 8192", 1, 8192, 1},    {"decode 1 x 8192, 24 layers", 1, 8192, 1, 24},
      {"decode 64 seqs x ctx 576", 64, 576, 1},   {"decode 64 x 576, 24 layers", 64, 576, 1, 24},
      {"prefill 1 seq x 512", 1, 512, 512},       {"prefill 1 seq x 2000", 1, 2000, 2000},
  };
  for (kernels::Isa isa : {kernels::Isa::kAvx512, kernels::Isa::kAvx2, kernels::Isa::kScalar}) {
    if (!kernels::IsaSupported(isa)) continue;
    for (DType dtype : {DType::kF16, DType::kI8, DType::kBF16, DType::kF32}) {
      for (const AttentionCase& c : cases) {
        if (decode_only && c.q_len != 1) continue;
        if (std::string(c.name).find(only) == std::string::npos) continue;
        BenchAttention(isa, dtype, c, &pool, roof, min_seconds);
      }
      if (decode_only && dtype == DType::kI8) break;
    }
    if (decode_only) break;
    BenchRowOps(isa, &pool, roof, min_seconds);
  }
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) { return tinyserve::Main(argc, argv); }
