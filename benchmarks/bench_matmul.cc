// MatMul throughput on Qwen2.5-0.5B shapes for each weight type, as fractions of this machine's
// bounds measured in the same run (roofline.h): GB/s of weight bytes at num_rows = 1 (decode,
// memory-bound) against read bandwidth; GOP/s at num_rows = 16, 64 (a decode step of 64
// sequences) and 512 against the peak of the best unit for the work (roofline.h BestPeak: AMX
// int8 or the int8 dot product for quantized weights, the bf16 dot product or f32 FMA for float
// weights). TINYSERVE_ISA=avx512 on an AMX machine measures the AVX-512 kernels against the same
// peaks.
//   bench_matmul [--threads N] [--quick] [--compare] [--ffn] [--types bf16,q8_0,...]
// num_rows = 1 runs with cold caches (the weights are evicted before each call). --ffn times
// only the fused feed-forward middle against the unfused ops (CompareFfn).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant_formats.h"
#include "roofline.h"
#include "util/aligned_buffer.h"

namespace tinyserve {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Random weights: a 4096-row random slab, quantized once and tiled (the kernels' speed does not
// depend on the values, and quantizing 136M weights per type would dominate the run). Empty for a
// type the project reads but cannot write (QuantizeRow has no quantizer for the IQ formats).
std::vector<uint8_t> MakeWeights(DType t, int64_t rows, int64_t cols) {
  const int64_t slab_rows = std::min<int64_t>(rows, 4096);
  const uint64_t row_bytes = *RowBytes(t, cols);
  std::vector<float> f(slab_rows * cols);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (float& v : f) v = nd(rng);
  std::vector<uint8_t> w(row_bytes * rows);
  if (!kernels::QuantizeRow(t, f.data(), w.data(), slab_rows * cols).ok()) return {};
  for (int64_t r = slab_rows; r < rows; r += slab_rows)
    std::memcpy(w.data() + r * row_bytes, w.data(),
                std::min<int64_t>(slab_rows, rows - r) * row_bytes);
  return w;
}

// Evicts the weights from the caches, so that num_rows = 1 measures streaming from memory as
// in a real decode step (which reads the whole model) rather than re-reading a cached matrix.
// Every thread of the pool reads its share, which also leaves the workers spinning (awake) as
// they are between the back-to-back matmuls of a real step.
void FlushCaches(ThreadPool* pool) {
  static AlignedBuffer<uint64_t> buf = [] {
    AlignedBuffer<uint64_t> b((64 << 20) / 8);
    for (size_t i = 0; i < b.size(); ++i) b[i] = i;
    return b;
  }();
  static std::atomic<uint64_t> sink;
  const size_t share = buf.size() / pool->num_threads();
  pool->Run([&](int t) {
    uint64_t s = 0;
    for (size_t i = t * share; i < (t + 1) * share; i += 8) s += buf[i];
    sink += s;
  });
}

// Fastest call of enough calls to fill ~0.3 s (at least 3): on a shared machine the minimum
// is the least disturbed estimate.
template <class Fn>
double TimeFn(Fn&& fn, ThreadPool* pool, bool cold) {
  fn();  // warm-up
  const double t0 = Now();
  fn();
  const double once = Now() - t0;
  const int reps = std::clamp(static_cast<int>(0.3 / std::max(once, 1e-7)), 3, cold ? 30 : 2000);
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    if (cold) FlushCaches(pool);
    const double s = Now();
    fn();
    times.push_back(Now() - s);
  }
  return *std::min_element(times.begin(), times.end());
}

double TimeCall(const kernels::PackedMatrix& w, const float* x, int64_t num_rows, float* out,
                ThreadPool* pool, bool cold, kernels::Isa isa = kernels::BestIsa()) {
  return TimeFn([&] { kernels::MatMulWithIsa(isa, w, x, num_rows, nullptr, out, pool); }, pool,
                cold);
}

// --ffn: Qwen2.5-0.5B's feed-forward middle (gate/up 9728 x 896, SiLU * up, quantized for down
// 896 x 4864) fused (MatMulSiluMulQuantized) against the unfused MatMulQuantized + SiluMulQuantize,
// timed alternately in this process, fastest of 5 rounds each; m = 1 with cold caches.
void CompareFfn(DType t, ThreadPool* pool, const bench::Roofline& roof) {
  constexpr int64_t kHidden = 896, kDim = 4864;
  if (kDim % BlockSize(t) != 0 || kHidden % BlockSize(t) != 0) return;
  const std::vector<uint8_t> gu_bytes = MakeWeights(t, 2 * kDim, kHidden);
  const std::vector<uint8_t> down_bytes = MakeWeights(t, kHidden, kDim);
  if (gu_bytes.empty() || down_bytes.empty()) return;
  auto gate_up = kernels::PackedMatrix::Pack(
      {"gate_up", t, {2 * kDim, kHidden}, gu_bytes.data(), gu_bytes.size()});
  auto down = kernels::PackedMatrix::Pack(
      {"down", t, {kHidden, kDim}, down_bytes.data(), down_bytes.size()});
  if (!gate_up.ok() || !down.ok()) std::abort();
  for (int64_t m : {1, 4, 8, 16, 32, 64, 512}) {
    if (!kernels::FusesSiluMul(*gate_up, *down)) continue;
    std::vector<float> x(m * kHidden), product(m * 2 * kDim), act(m * kDim);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : x) v = nd(rng);
    kernels::QuantizedActivations in, out;
    kernels::QuantizeActivations(*gate_up, x.data(), m, &in, pool);
    auto unfused = [&] {
      kernels::MatMulQuantized(*gate_up, in, nullptr, product.data(), pool);
      kernels::SiluMulQuantize(product.data(), m, kDim, act.data(), *down, &out, pool);
    };
    auto fused = [&] { kernels::MatMulSiluMulQuantized(*gate_up, in, *down, &out, pool); };
    double t_unfused = 1e30, t_fused = 1e30;
    for (int round = 0; round < 5; ++round) {
      t_unfused = std::min(t_unfused, TimeFn(unfused, pool, m == 1));
      t_fused = std::min(t_fused, TimeFn(fused, pool, m == 1));
    }
    const double ops = 2.0 * 2 * kDim * kHidden * m / 1e9;
    const double peak = bench::BestPeak(roof, bench::Work::kInt8);
    std::printf(
        "%-6s ffn m=%-4lld unfused %9.1f us (%5.1f%% of peak)  fused %9.1f us (%5.1f%%)  "
        "%.2fx\n",
        DTypeName(t).data(), static_cast<long long>(m), t_unfused * 1e6,
        100 * ops / t_unfused / peak, t_fused * 1e6, 100 * ops / t_fused / peak,
        t_unfused / t_fused);
    std::fflush(stdout);
  }
}

// --compare on an AMX machine: the AMX and AVX-512 kernels timed alternately in this process (a
// shared machine's speed drifts between runs, so separate runs compare badly), fastest of 5
// rounds each, at the row counts the engine meets.
void CompareIsas(const kernels::PackedMatrix& w, const float* x, float* out, int64_t rows,
                 int64_t cols, ThreadPool* pool) {
  if (!kernels::IsaSupported(kernels::Isa::kAmx)) return;
  for (int64_t m : {16, 32, 64, 512}) {
    if (rows > 10000 && m > 64) break;  // the LM head meets at most a decode batch of rows
    double amx = 1e30, avx512 = 1e30;
    for (int round = 0; round < 5; ++round) {
      amx = std::min(amx, TimeCall(w, x, m, out, pool, false, kernels::Isa::kAmx));
      avx512 = std::min(avx512, TimeCall(w, x, m, out, pool, false, kernels::Isa::kAvx512));
    }
    const double ops = 2.0 * rows * cols * m / 1e9;
    std::printf("         m=%-4lld AMX %6.0f GOP/s  AVX-512 %6.0f GOP/s  AMX/AVX-512 %.2fx\n",
                static_cast<long long>(m), ops / amx, ops / avx512, avx512 / amx);
  }
}

int Main(int argc, char** argv) {
  int threads = 2;
  bool quick = false, compare = false, ffn = false;
  std::vector<DType> types = {DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                              DType::kQ4_K, DType::kQ5_0, DType::kQ6_K};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--types") && i + 1 < argc) {
      types.clear();
      std::string list = argv[++i];
      for (size_t b = 0; b <= list.size();) {
        const size_t e = std::min(list.find(',', b), list.size());
        const std::optional<DType> t = DTypeFromName(list.substr(b, e - b));
        if (!t) {
          std::fprintf(stderr, "unknown type %s\n", list.substr(b, e - b).c_str());
          return 1;
        }
        types.push_back(*t);
        b = e + 1;
      }
    }
    if (!std::strcmp(argv[i], "--compare")) compare = true;
    if (!std::strcmp(argv[i], "--ffn")) ffn = true;
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
  }
  ThreadPool pool(threads);
  const bench::Roofline roof = bench::MeasureRoofline(&pool, uint64_t{512} << 20);
  std::printf("threads=%d %s\n", threads, bench::Describe(roof).c_str());
  if (ffn) {
    for (DType t : types)
      if (IsQuantized(t)) CompareFfn(t, &pool, roof);
    return 0;
  }
  // "MB": the packed bytes a pass reads (what m=1's GB/s counts); "m=1 us": the call's time, the
  // figure to compare between layouts of different sizes.
  std::printf("%-6s %-12s %8s %9s %10s %8s %12s %8s %12s %8s %12s %8s\n", "type", "shape", "MB",
              "m=1 us", "m=1 GB/s", "of bw", "m=16 GOP/s", "of peak", "m=64 GOP/s", "of peak",
              "m=512 GOP/s", "of peak");
  const int64_t shapes[][2] = {{896, 896}, {128, 896}, {4864, 896}, {896, 4864}, {151936, 896}};
  for (DType t : types) {
    const bench::Work work = IsQuantized(t)      ? bench::Work::kInt8
                             : t == DType::kBF16 ? bench::Work::kBf16
                                                 : bench::Work::kF32;
    const double peak = bench::BestPeak(roof, work);
    for (const auto& s : shapes) {
      const int64_t rows = s[0], cols = s[1];
      char shape[32];
      std::snprintf(shape, sizeof(shape), "%lldx%lld", static_cast<long long>(rows),
                    static_cast<long long>(cols));
      if (cols % BlockSize(t) != 0) {
        std::printf("%-6s %-12s   (cols not a multiple of %lld)\n", DTypeName(t).data(), shape,
                    static_cast<long long>(BlockSize(t)));
        continue;
      }
      if (quick && rows > 10000) continue;
      const std::vector<uint8_t> wbytes = MakeWeights(t, rows, cols);
      if (wbytes.empty()) {
        std::printf("%-6s %-12s   (no quantizer for this type: not timed)\n", DTypeName(t).data(),
                    shape);
        continue;
      }
      auto packed =
          kernels::PackedMatrix::Pack({"w", t, {rows, cols}, wbytes.data(), wbytes.size()});
      if (!packed.ok()) std::abort();
      const int64_t max_m = rows > 10000 ? 64 : 512;
      // The output 64-byte aligned, as the engine's buffers are (AlignedBuffer).
      std::vector<float> x(max_m * cols);
      AlignedBuffer<float> out(max_m * rows);
      std::mt19937 rng(2);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      for (float& v : x) v = nd(rng);
      const double t1 = TimeCall(*packed, x.data(), 1, out.data(), &pool, /*cold=*/true);
      const double gbs = packed->bytes() / t1 / 1e9;
      const double t16 = TimeCall(*packed, x.data(), 16, out.data(), &pool, /*cold=*/false);
      const double g16 = 2.0 * rows * cols * 16 / t16 / 1e9;
      const double t64 = TimeCall(*packed, x.data(), 64, out.data(), &pool, /*cold=*/false);
      const double g64 = 2.0 * rows * cols * 64 / t64 / 1e9;
      std::printf("%-6s %-12s %8.1f %9.0f %10.1f %7.0f%% %12.0f %7.1f%% %12.0f %7.1f%%",
                  DTypeName(t).data(), shape, packed->bytes() / 1e6, t1 * 1e6, gbs,
                  100 * gbs / roof.read_gb_per_s, g16, 100 * g16 / peak, g64, 100 * g64 / peak);
      if (max_m == 512) {
        const double t512 = TimeCall(*packed, x.data(), 512, out.data(), &pool, /*cold=*/false);
        const double g512 = 2.0 * rows * cols * 512 / t512 / 1e9;
        std::printf(" %12.0f %7.1f%%\n", g512, 100 * g512 / peak);
      } else {
        std::printf(" %12s %8s\n", "-", "-");
      }
      std::fflush(stdout);
      if (compare && (IsQuantized(t) || t == DType::kBF16))
        CompareIsas(*packed, x.data(), out.data(), rows, cols, &pool);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) { return tinyserve::Main(argc, argv); }
