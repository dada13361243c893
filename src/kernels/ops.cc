#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant_formats.h"
#include "util/check.h"

namespace tinyserve::kernels {
namespace cpu {

const CpuKernels& KernelsFor(Isa isa) {
#define TINYSERVE_KERNEL_TABLE(ns)                                                      \
  CpuKernels {                                                                          \
    &ns::RmsNorm, &ns::RopeNeox, &ns::SiluMul, &ns::SoftmaxWeights, &ns::LogSumExp,     \
        &ns::FirstIndexPassing, &ns::Argmax, &ns::AddBias, &ns::AddInPlace, &ns::ToF32, \
        &ns::FromF32, &ns::AttendBlock, &ns::QuantizeQuery, &ns::QuantizeKv             \
  }
  static const CpuKernels kScalar = TINYSERVE_KERNEL_TABLE(scalar);
  static const CpuKernels kAvx2 = TINYSERVE_KERNEL_TABLE(avx2);
  static const CpuKernels kAvx512 = TINYSERVE_KERNEL_TABLE(avx512);
#undef TINYSERVE_KERNEL_TABLE
  TS_CHECK(IsaSupported(isa));
  switch (isa) {
    case Isa::kAmx:  // the tiles serve matmuls only
    case Isa::kAvx512:
      return kAvx512;
    case Isa::kAvx2:
      return kAvx2;
    case Isa::kScalar:
      break;
  }
  return kScalar;
}

}  // namespace cpu

namespace {

// Rows per parallel chunk: below this much work per row range (~16K floats, a few microseconds)
// the fork-join costs more than it saves; a decode step's norms (a few rows of 896) stay on the
// calling thread. The split only decides which thread computes a row, never how, so results do
// not depend on the thread count.
int64_t RowsPerChunk(int64_t dim) { return dim >= 16384 ? 1 : (16384 + dim - 1) / dim; }

// Above one chunk of rows the threads get equal shares, in multiples of `align` rows. (Split in
// whole chunks, 64 rows of 896 went 38 / 26.)
template <typename Fn>
void ForRowRanges(int64_t num_rows, int64_t dim, ThreadPool* pool, Fn&& fn, int64_t align = 1) {
  if (pool == nullptr || num_rows <= RowsPerChunk(dim)) {
    fn(int64_t{0}, num_rows);
    return;
  }
  pool->ParallelFor(num_rows, align, [&](int64_t begin, int64_t end, int) { fn(begin, end); });
}

// Runs fn over row ranges as ForRowRanges, in sub-ranges of about 64 KiB of f32 at most (or one
// row tile) so that what fn writes is still in L1/L2 when the same thread quantizes it for the
// next matmul. Ranges and sub-ranges start on the quantizer's row tiles (kRowTile rows): a whole
// tile is quantized in one pass, rows of a part tile one by one (64 x 896 in sub-ranges of 18
// rows, the tiles cut, took 9.5 us on 2 threads; the same bytes either way).
template <typename Fn>
void ForRowRangesQuantized(int64_t num_rows, int64_t dim, const PackedMatrix& consumer,
                           const float* out, QuantizedActivations* acts, ThreadPool* pool,
                           Fn&& fn) {
  TS_CHECK(consumer.cols() == dim);
  PrepareActivations(consumer, num_rows, acts);
  const int64_t step = std::max<int64_t>(kRowTile, (int64_t{16} << 10) / dim / kRowTile * kRowTile);
  ForRowRanges(
      num_rows, dim, pool,
      [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; b += step) {
          const int64_t e = std::min(end, b + step);
          fn(b, e);
          QuantizeActivationRows(out, b, e, acts);
        }
      },
      kRowTile);
}

}  // namespace

void RmsNorm(Isa isa, const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out, ThreadPool* pool) {
  const auto fn = cpu::KernelsFor(isa).rms_norm;
  ForRowRanges(num_rows, dim, pool, [&](int64_t b, int64_t e) {
    fn(x + b * dim, weight, e - b, dim, eps, out + b * dim);
  });
}

void AddRmsNorm(Isa isa, float* x, const float* add, const float* weight, int64_t num_rows,
                int64_t dim, float eps, float* out, ThreadPool* pool) {
  const cpu::CpuKernels& kern = cpu::KernelsFor(isa);
  ForRowRanges(num_rows, dim, pool, [&](int64_t b, int64_t e) {
    kern.add_in_place(x + b * dim, add + b * dim, (e - b) * dim);
    kern.rms_norm(x + b * dim, weight, e - b, dim, eps, out + b * dim);
  });
}

void RmsNormQuantize(Isa isa, const float* x, const float* weight, int64_t num_rows, int64_t dim,
                     float eps, float* out, const PackedMatrix& consumer,
                     QuantizedActivations* acts, ThreadPool* pool) {
  const auto fn = cpu::KernelsFor(isa).rms_norm;
  ForRowRangesQuantized(num_rows, dim, consumer, out, acts, pool, [&](int64_t b, int64_t e) {
    fn(x + b * dim, weight, e - b, dim, eps, out + b * dim);
  });
}

void AddRmsNormQuantize(Isa isa, float* x, const float* add, const float* weight, int64_t num_rows,
                        int64_t dim, float eps, float* out, const PackedMatrix& consumer,
                        QuantizedActivations* acts, ThreadPool* pool) {
  const cpu::CpuKernels& kern = cpu::KernelsFor(isa);
  ForRowRangesQuantized(num_rows, dim, consumer, out, acts, pool, [&](int64_t b, int64_t e) {
    kern.add_in_place(x + b * dim, add + b * dim, (e - b) * dim);
    kern.rms_norm(x + b * dim, weight, e - b, dim, eps, out + b * dim);
  });
}

void SiluMulQuantize(Isa isa, const float* gate_up, int64_t num_rows, int64_t dim, float* out,
                     const PackedMatrix& consumer, QuantizedActivations* acts, ThreadPool* pool) {
  const auto fn = cpu::KernelsFor(isa).silu_mul;
  ForRowRangesQuantized(num_rows, dim, consumer, out, acts, pool, [&](int64_t b, int64_t e) {
    fn(gate_up + b * 2 * dim, e - b, dim, out + b * dim);
  });
}

void RopeCosSin(const int32_t* positions, int64_t num_tokens, int64_t head_dim, float theta,
                float* cos_sin) {
  // Angles in double: pos * inv_freq reaches ~3e4 rad, where a float angle would be off by
  // ~1e-3 rad. inv_freq_i = theta^(-2i/head_dim) is computed once per call.
  const int64_t half = head_dim / 2;
  double inv_freq[1024];
  TS_CHECK(half <= 1024);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] =
        std::pow(double{theta}, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    float* cs = cos_sin + t * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = positions[t] * inv_freq[i];
      cs[i] = static_cast<float>(std::cos(angle));
      cs[half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void RopeNeox(Isa isa, float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  cpu::KernelsFor(isa).rope_neox(x, cos_sin, num_tokens, num_heads, head_dim);
}

void SiluMul(Isa isa, const float* gate_up, int64_t num_rows, int64_t dim, float* out,
             ThreadPool* pool) {
  const auto fn = cpu::KernelsFor(isa).silu_mul;
  ForRowRanges(num_rows, dim, pool,
               [&](int64_t b, int64_t e) { fn(gate_up + b * 2 * dim, e - b, dim, out + b * dim); });
}

float SoftmaxWeights(Isa isa, float* x, int64_t n) {
  return cpu::KernelsFor(isa).softmax_weights(x, n);
}

float LogSumExp(Isa isa, const float* x, int64_t n) {
  return cpu::KernelsFor(isa).log_sum_exp(x, n);
}

int64_t FirstIndexPassing(Isa isa, const float* w, int64_t n, double target) {
  return cpu::KernelsFor(isa).first_index_passing(w, n, target);
}

int64_t Argmax(Isa isa, const float* x, int64_t n) { return cpu::KernelsFor(isa).argmax(x, n); }

void EmbeddingLookup(Isa isa, const TensorView& table, const int32_t* ids, int64_t num_ids,
                     float* out) {
  const int64_t dim = table.RowLength();
  const auto* base = static_cast<const uint8_t*>(table.data);
  const bool plain =
      table.dtype == DType::kF32 || table.dtype == DType::kF16 || table.dtype == DType::kBF16;
  const uint64_t row_bytes = *RowBytes(table.dtype, dim);
  const auto to_f32 = cpu::KernelsFor(isa).to_f32;
  for (int64_t i = 0; i < num_ids; ++i) {
    const uint8_t* row = base + static_cast<uint64_t>(ids[i]) * row_bytes;
    if (plain) {
      to_f32(table.dtype, row, out + i * dim, dim);
    } else {
      DequantizeRow(table.dtype, row, out + i * dim, dim);
    }
  }
}

void AddBias(Isa isa, float* out, const float* bias, int64_t num_rows, int64_t dim) {
  cpu::KernelsFor(isa).add_bias(out, bias, num_rows, dim);
}

void AddInPlace(Isa isa, float* out, const float* x, int64_t n) {
  cpu::KernelsFor(isa).add_in_place(out, x, n);
}

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out, ThreadPool* pool) {
  RmsNorm(BestIsa(), x, weight, num_rows, dim, eps, out, pool);
}
void AddRmsNorm(float* x, const float* add, const float* weight, int64_t num_rows, int64_t dim,
                float eps, float* out, ThreadPool* pool) {
  AddRmsNorm(BestIsa(), x, add, weight, num_rows, dim, eps, out, pool);
}
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  RopeNeox(BestIsa(), x, cos_sin, num_tokens, num_heads, head_dim);
}
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out, ThreadPool* pool) {
  SiluMul(BestIsa(), gate_up, num_rows, dim, out, pool);
}
void RmsNormQuantize(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
                     float* out, const PackedMatrix& consumer, QuantizedActivations* acts,
                     ThreadPool* pool) {
  RmsNormQuantize(BestIsa(), x, weight, num_rows, dim, eps, out, consumer, acts, pool);
}
void AddRmsNormQuantize(float* x, const float* add, const float* weight, int64_t num_rows,
                        int64_t dim, float eps, float* out, const PackedMatrix& consumer,
                        QuantizedActivations* acts, ThreadPool* pool) {
  AddRmsNormQuantize(BestIsa(), x, add, weight, num_rows, dim, eps, out, consumer, acts, pool);
}
void SiluMulQuantize(const float* gate_up, int64_t num_rows, int64_t dim, float* out,
                     const PackedMatrix& consumer, QuantizedActivations* acts, ThreadPool* pool) {
  SiluMulQuantize(BestIsa(), gate_up, num_rows, dim, out, consumer, acts, pool);
}
float SoftmaxWeights(float* x, int64_t n) { return SoftmaxWeights(BestIsa(), x, n); }
float LogSumExp(const float* x, int64_t n) { return LogSumExp(BestIsa(), x, n); }
int64_t FirstIndexPassing(const float* w, int64_t n, double target) {
  return FirstIndexPassing(BestIsa(), w, n, target);
}
int64_t Argmax(const float* x, int64_t n) { return Argmax(BestIsa(), x, n); }
void EmbeddingLookup(const TensorView& table, const int32_t* ids, int64_t num_ids, float* out) {
  EmbeddingLookup(BestIsa(), table, ids, num_ids, out);
}
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  AddBias(BestIsa(), out, bias, num_rows, dim);
}
void AddInPlace(float* out, const float* x, int64_t n) { AddInPlace(BestIsa(), out, x, n); }

}  // namespace tinyserve::kernels
