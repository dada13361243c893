// Measures this machine's performance bounds in the current run, so benchmarks can report
// ratios that stay meaningful on a noisy shared machine: STREAM-like read bandwidth on a
// buffer much larger than the last-level cache, peak f32 FMA GFLOP/s, peak int8 dot-product
// GOP/s (AVX-512 VNNI vpdpbusd when available, else AVX2 maddubs) and peak bf16 dot-product
// GFLOP/s (AVX-512 BF16 vdpbf16ps), and the AMX tile unit's int8 (tdpbsud) and bf16
// (tdpbf16ps) peaks where the CPU has them. The loops run on the ISA the kernels use
// (kernels::BestIsa(), so TINYSERVE_ISA caps them too).
// Call from one thread; the measurements use the given pool (nullptr = calling thread only).
#pragma once

#include <cstdint>
#include <string>

#include "util/aligned_buffer.h"
#include "util/thread_pool.h"

namespace tinyserve::bench {

struct Roofline {
  double read_gb_per_s = 0;    // 1e9 bytes / s
  double fma_gflops = 0;       // f32, 2 flops per multiply-add
  double int8_gops = 0;        // 2 ops per int8 multiply-add
  double bf16_gflops = 0;      // 2 flops per bf16 multiply-add (f32 sums); 0 without AVX-512 BF16
  double amx_int8_gops = 0;    // 2 ops per int8 multiply-add on the tile unit; 0 without Isa::kAmx
  double amx_bf16_gflops = 0;  // 2 flops per bf16 multiply-add on the tile unit; 0 without it
  std::string isa;             // "avx512", "avx2" or "scalar"
  std::string cpu_model;       // cpuid brand string
  // "not present", or which AMX units the CPU has and which are measured and used.
  std::string amx;
};

// The kinds of matmul work a benchmark divides by a peak.
enum class Work { kF32, kBf16, kInt8 };
// The peak (1e9 ops / s, 2 per multiply-add) of the best unit measured for that work: int8 dot
// for kInt8 (the AMX tile unit where the kernels use it); for kBf16 the fastest of the AMX bf16
// unit, the bf16 dot product and f32 FMA (bf16 weights widened to f32 use it); f32 FMA for kF32.
double BestPeak(const Roofline& roof, Work work);
// The name of that unit ("AMX int8", "int8 dot", "AMX bf16", "bf16 dot", "f32 FMA").
const char* BestUnit(const Roofline& roof, Work work);
// One line: bandwidth, every peak and the AMX state, for a benchmark's header.
std::string Describe(const Roofline& roof);

// Reads a buffer of `buffer_bytes` (allocated and touched once) `reps` times with every thread
// of the pool reading its own slice; returns the best pass.
double MeasureReadBandwidth(ThreadPool* pool, uint64_t buffer_bytes = uint64_t{1} << 30,
                            int reps = 3);
// The same measurement, repeatable on one buffer allocated once: a benchmark measures the read
// bandwidth right before and after each memory-bound phase, since a shared VM's bandwidth moves
// (27-55 GB/s within minutes on the 2-core Zen 4 machine) and one figure from the start of the
// run made fractions of the bound swing past 100%.
class ReadBandwidthProbe {
 public:
  ReadBandwidthProbe(ThreadPool* pool, uint64_t buffer_bytes);
  double Measure(int reps = 3);  // 1e9 bytes / s, the best of `reps` passes

 private:
  ThreadPool* pool_;
  int threads_;
  uint64_t slice_;
  AlignedBuffer<uint8_t> buf_;
};
double MeasureFmaPeak(ThreadPool* pool);
double MeasureInt8Peak(ThreadPool* pool);
double MeasureBf16Peak(ThreadPool* pool);     // 0 without AVX-512 BF16
double MeasureAmxInt8Peak(ThreadPool* pool);  // 0 unless IsaSupported(Isa::kAmx)
double MeasureAmxBf16Peak(ThreadPool* pool);  // 0 unless Isa::kAmx and AMX-BF16
Roofline MeasureRoofline(ThreadPool* pool, uint64_t buffer_bytes = uint64_t{1} << 30);

// The physical bound of one decode step (or a run of them): it must read `bytes` (weights once
// plus every sequence's KV cache) and do `ops` operations (2 per multiply-add) on the unit the
// weights use; it takes at least the longer of the two times.
struct StepBound {
  double bytes = 0;
  double ops = 0;
  double memory_s = 0;   // bytes / read bandwidth
  double compute_s = 0;  // ops / peak
  double seconds() const { return memory_s > compute_s ? memory_s : compute_s; }
  const char* limit() const { return memory_s >= compute_s ? "memory" : "compute"; }
};
// The compute side at BestPeak(roof, work).
StepBound DecodeStepBound(const Roofline& roof, double bytes, double ops, Work work);
// int8_ops: the weights are block-quantized (int8 dot products) rather than float (f32 FMA).
StepBound DecodeStepBound(const Roofline& roof, double bytes, double ops, bool int8_ops);

// Per-ISA loops (roofline_avx2.cc, roofline_avx512.cc): each returns the operations it did.
namespace internal {
uint64_t ReadSliceAvx512(const uint8_t* p, uint64_t bytes, uint64_t* sink);
uint64_t FmaLoopAvx512(int64_t iters, float* sink);
uint64_t DotLoopAvx512(int64_t iters, int32_t* sink);
uint64_t Bf16DotLoopAvx512(int64_t iters, float* sink);
uint64_t AmxInt8Loop(int64_t iters, int32_t* sink);  // Isa::kAmx only
uint64_t AmxBf16Loop(int64_t iters, float* sink);    // Isa::kAmx with AMX-BF16 only
uint64_t ReadSliceAvx2(const uint8_t* p, uint64_t bytes, uint64_t* sink);
uint64_t FmaLoopAvx2(int64_t iters, float* sink);
uint64_t DotLoopAvx2(int64_t iters, int32_t* sink);
}  // namespace internal

}  // namespace tinyserve::bench
