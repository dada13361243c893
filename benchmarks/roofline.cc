#include "roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/isa.h"
#include "util/aligned_buffer.h"

namespace tinyserve::bench {
namespace {

// The avx512 / avx2 loops are compiled with the kernels' flags, so they run when the kernels'
// ISA does.
bool HasAvx512Vnni() { return kernels::IsaSupported(kernels::Isa::kAvx512); }
bool HasAvx2() { return kernels::IsaSupported(kernels::Isa::kAvx2); }

std::string AmxState() {
  const kernels::CpuFeatures& f = kernels::DetectedCpuFeatures();
  if (!f.amx_tile || (!f.amx_int8 && !f.amx_bf16)) return "not present";
  std::string units = f.amx_int8 && f.amx_bf16 ? "int8+bf16" : f.amx_int8 ? "int8" : "bf16";
  if (!kernels::IsaSupported(kernels::Isa::kAmx))
    return "present (" + units + "), not used (TINYSERVE_ISA cap or no int8 unit)";
  return "present (" + units + "), used by the quantized" +
         (f.amx_bf16 ? std::string(" and bf16") : std::string()) + " matmuls (kernels/isa.h)";
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn(thread_idx) on every thread of the pool; returns the best ops/s of `reps` runs, where
// fn returns the operations it did.
template <typename Fn>
double BestRate(ThreadPool* pool, int reps, Fn fn) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::atomic<uint64_t> ops{0};
    const double t0 = Now();
    if (pool) {
      pool->Run([&](int t) { ops += fn(t); });
    } else {
      ops += fn(0);
    }
    const double dt = Now() - t0;
    best = std::max(best, static_cast<double>(ops.load()) / dt);
  }
  return best;
}

}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool* pool, uint64_t buffer_bytes)
    : pool_(pool),
      threads_(pool ? pool->num_threads() : 1),
      slice_(buffer_bytes / threads_ / 4096 * 4096),
      buf_(slice_ * threads_) {
  // Each thread touches its own slice first (page placement follows the reader).
  auto touch = [&](int t) { std::memset(buf_.data() + t * slice_, t + 1, slice_); };
  if (pool_) {
    pool_->Run(touch);
  } else {
    touch(0);
  }
}

double ReadBandwidthProbe::Measure(int reps) {
  std::atomic<uint64_t> sink{0};
  const double rate = BestRate(pool_, reps, [&](int t) -> uint64_t {
    uint64_t s = 0;
    const uint8_t* p = buf_.data() + t * slice_;
    uint64_t n = HasAvx512Vnni() ? internal::ReadSliceAvx512(p, slice_, &s)
                 : HasAvx2()     ? internal::ReadSliceAvx2(p, slice_, &s)
                                 : 0;
    if (n == 0) {
      for (uint64_t i = 0; i < slice_; i += 8) {
        uint64_t v;
        std::memcpy(&v, p + i, 8);
        s ^= v;
      }
      n = slice_;
    }
    sink += s;
    return n;
  });
  return rate / 1e9;
}

double MeasureReadBandwidth(ThreadPool* pool, uint64_t buffer_bytes, int reps) {
  return ReadBandwidthProbe(pool, buffer_bytes).Measure(reps);
}

namespace {

// The best of 3 runs of `loop` on every thread of the pool, in 1e9 ops / s. loop(&sink) returns
// the operations it did and stores a value depending on its results in sink (kept, so the
// compiler cannot drop the work).
template <typename Sink, typename Loop>
double PeakGops(ThreadPool* pool, Loop loop) {
  std::atomic<int64_t> kept{0};
  return BestRate(pool, 3,
                  [&](int) -> uint64_t {
                    Sink s = 0;
                    const uint64_t ops = loop(&s);
                    kept += s != 0;
                    return ops;
                  }) /
         1e9;
}

constexpr int64_t kVectorIters = 20'000'000;

}  // namespace

double MeasureFmaPeak(ThreadPool* pool) {
  return PeakGops<float>(pool, [](float* s) -> uint64_t {
    return HasAvx512Vnni() ? internal::FmaLoopAvx512(kVectorIters, s)
           : HasAvx2()     ? internal::FmaLoopAvx2(kVectorIters, s)
                           : 0;
  });
}

double MeasureInt8Peak(ThreadPool* pool) {
  return PeakGops<int32_t>(pool, [](int32_t* s) -> uint64_t {
    return HasAvx512Vnni() ? internal::DotLoopAvx512(kVectorIters, s)
           : HasAvx2()     ? internal::DotLoopAvx2(kVectorIters, s)
                           : 0;
  });
}

double MeasureBf16Peak(ThreadPool* pool) {
  if (!HasAvx512Vnni()) return 0;
  return PeakGops<float>(pool,
                         [](float* s) { return internal::Bf16DotLoopAvx512(kVectorIters, s); });
}

double MeasureAmxInt8Peak(ThreadPool* pool) {
  if (!kernels::IsaSupported(kernels::Isa::kAmx)) return 0;
  // One tile product is 16x16x64 multiply-adds: far fewer iterations fill the same time.
  return PeakGops<int32_t>(pool, [](int32_t* s) { return internal::AmxInt8Loop(200'000, s); });
}

double MeasureAmxBf16Peak(ThreadPool* pool) {
  if (!kernels::IsaSupported(kernels::Isa::kAmx) || !kernels::DetectedCpuFeatures().amx_bf16)
    return 0;
  return PeakGops<float>(pool, [](float* s) { return internal::AmxBf16Loop(200'000, s); });
}

Roofline MeasureRoofline(ThreadPool* pool, uint64_t buffer_bytes) {
  Roofline r;
  r.isa = std::string(kernels::IsaName(kernels::BestIsa()));
  r.cpu_model = kernels::CpuModelName();
  r.amx = AmxState();
  r.read_gb_per_s = MeasureReadBandwidth(pool, buffer_bytes);
  // The compute peaks in interleaved rounds, each unit's best kept: a unit's three back-to-back
  // runs take ~0.1 s, and on a shared VM a slow spell that long set one peak far low (a bf16 dot
  // peak of 462 instead of ~780 GFLOP/s on the Zen 5 machine, so that run printed bf16 prefill at
  // 128% of it). Spread over ~1 s, one spell no longer decides a peak.
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    r.fma_gflops = std::max(r.fma_gflops, MeasureFmaPeak(pool));
    r.int8_gops = std::max(r.int8_gops, MeasureInt8Peak(pool));
    r.bf16_gflops = std::max(r.bf16_gflops, MeasureBf16Peak(pool));
    r.amx_int8_gops = std::max(r.amx_int8_gops, MeasureAmxInt8Peak(pool));
    r.amx_bf16_gflops = std::max(r.amx_bf16_gflops, MeasureAmxBf16Peak(pool));
  }
  return r;
}

double BestPeak(const Roofline& roof, Work work) {
  switch (work) {
    case Work::kInt8:
      return std::max(roof.int8_gops, roof.amx_int8_gops);
    case Work::kBf16:
      return std::max({roof.amx_bf16_gflops, roof.bf16_gflops, roof.fma_gflops});
    case Work::kF32:
      break;
  }
  return roof.fma_gflops;
}

const char* BestUnit(const Roofline& roof, Work work) {
  switch (work) {
    case Work::kInt8:
      return roof.amx_int8_gops > roof.int8_gops ? "AMX int8" : "int8 dot";
    case Work::kBf16:
      if (roof.amx_bf16_gflops > std::max(roof.bf16_gflops, roof.fma_gflops)) return "AMX bf16";
      return roof.bf16_gflops > roof.fma_gflops ? "bf16 dot" : "f32 FMA";
    case Work::kF32:
      break;
  }
  return "f32 FMA";
}

std::string Describe(const Roofline& roof) {
  char line[512];
  std::snprintf(line, sizeof(line),
                "%s, kernels %s: read %.1f GB/s, f32 FMA %.0f GFLOP/s, int8 dot %.0f GOP/s, "
                "bf16 dot %.0f GFLOP/s%s, AMX int8 %.0f GOP/s, AMX bf16 %.0f GFLOP/s, AMX %s",
                roof.cpu_model.empty() ? "unknown CPU" : roof.cpu_model.c_str(), roof.isa.c_str(),
                roof.read_gb_per_s, roof.fma_gflops, roof.int8_gops, roof.bf16_gflops,
                roof.bf16_gflops > 0 ? "" : " (no AVX-512 BF16)", roof.amx_int8_gops,
                roof.amx_bf16_gflops, roof.amx.c_str());
  return line;
}

StepBound DecodeStepBound(const Roofline& roof, double bytes, double ops, Work work) {
  StepBound b;
  b.bytes = bytes;
  b.ops = ops;
  b.memory_s = bytes / (roof.read_gb_per_s * 1e9);
  b.compute_s = ops / (BestPeak(roof, work) * 1e9);
  return b;
}

StepBound DecodeStepBound(const Roofline& roof, double bytes, double ops, bool int8_ops) {
  return DecodeStepBound(roof, bytes, ops, int8_ops ? Work::kInt8 : Work::kF32);
}

}  // namespace tinyserve::bench
