// Linear layers: out = x W^T (+ bias) for a weight matrix W [rows = out_features, cols =
// in_features] of any supported dtype. Weights are prepared once at load into a PackedMatrix
// (kept as mapped when the stored layout is already what the kernel reads, repacked otherwise);
// the kernel is chosen at run time for the CPU (AVX-512 VNNI, AVX2, scalar). Quantized weights
// are multiplied with activations quantized per block to int8 (integer dot products), as
// llama.cpp does; bf16 weights, where the CPU has AVX-512 BF16, are multiplied with activations
// rounded to bf16 (vdpbf16ps, f32 sums), as llama.cpp does; otherwise f32/f16/bf16 weights use
// f32 FMA. On Isa::kAmx, from 16 rows, bf16 weights go to the AMX-BF16 tile unit (tdpbf16ps,
// f32 sums in the tiles). Pack is called at load; MatMul from the engine thread (it uses the pool
// for its workers).
#pragma once

#include <cstdint>
#include <memory>

#include "formats/tensor_view.h"
#include "kernels/isa.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace tinyserve::kernels {

class PackedMatrix {
 public:
  // Prepares `w` ([rows, cols], any dtype of formats/dtype.h that is a float or block type).
  // The bytes of `w` must outlive the result (it may point into them). Errors: unsupported dtype,
  // cols not a multiple of the block size, wrong rank.
  [[nodiscard]] static StatusOr<PackedMatrix> Pack(const TensorView& w);

  PackedMatrix();
  PackedMatrix(PackedMatrix&&) noexcept;
  PackedMatrix& operator=(PackedMatrix&&) noexcept;
  ~PackedMatrix();

  int64_t rows() const;
  int64_t cols() const;
  DType source_dtype() const;
  // Bytes the kernel reads for one full pass over the matrix (for bandwidth bounds).
  uint64_t bytes() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// out[m, n] = sum_k x[m, k] * W[n, k] + (bias ? bias[n] : 0).
// x: [num_rows, w.cols()] f32; out: [num_rows, w.rows()] f32; bias: [w.rows()] or nullptr.
// Threads split the output columns (weight rows); each output element is computed by one
// thread in a fixed order, so results do not depend on the number of threads. pool may be
// nullptr (runs on the calling thread). x, out and bias need no particular alignment.
void MatMul(const PackedMatrix& w, const float* x, int64_t num_rows, const float* bias, float* out,
            ThreadPool* pool);

// Activations quantized ahead of a quantized-weight MatMul, so that the op producing them (an
// RMSNorm, SiLU * up) can quantize each row right after writing it, and so the buffers live
// across calls (MatMul allocates its own each call). The numbers are exactly those MatMul
// computes from the same f32 rows (int8 per block of 32, round to nearest even of
// x * 127 / amax; the same on every ISA), so MatMulQuantized(w, QuantizeActivations(x)) is bit
// for bit MatMul(w, x). The layout depends on the weight's block format (its sub-block size and
// zero point): quantize for the weight that will consume the rows. Not thread-safe; distinct
// rows may be quantized from different threads between one PrepareActivations and the use.
class QuantizedActivations {
 public:
  QuantizedActivations();
  QuantizedActivations(QuantizedActivations&&) noexcept;
  QuantizedActivations& operator=(QuantizedActivations&&) noexcept;
  ~QuantizedActivations();

  int64_t num_rows() const;
  int64_t cols() const;

  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether MatMulQuantized serves `w`: quantized weights (MatMul runs them on the same kernel, so
// prequantized activations give MatMul's bits).
bool TakesQuantizedActivations(const PackedMatrix& w);

// Lays out acts for num_rows rows of the input of weights shaped like `like` (quantized weights
// only). Grows the buffers only when needed: no allocation once they reached the largest size.
void PrepareActivations(const PackedMatrix& like, int64_t num_rows, QuantizedActivations* acts);
// Quantizes rows [row_begin, row_end) of x ([acts->num_rows(), acts->cols()] f32, x pointing at
// row 0) into acts, prepared before. Callers may quantize disjoint row ranges concurrently.
void QuantizeActivationRows(const float* x, int64_t row_begin, int64_t row_end,
                            QuantizedActivations* acts);
// PrepareActivations, then every row, split over the pool as MatMul does.
void QuantizeActivations(const PackedMatrix& like, const float* x, int64_t num_rows,
                         QuantizedActivations* acts, ThreadPool* pool);
// out = x W^T (+ bias) from activations quantized for w (same cols and block format); otherwise
// as MatMul. Requires quantized weights.
void MatMulQuantized(const PackedMatrix& w, const QuantizedActivations& acts, const float* bias,
                     float* out, ThreadPool* pool);
// MatMulQuantized on `isa` (IsaSupported(isa); Isa::kAmx runs the AVX-512 kernel, bit-identical).
void MatMulQuantizedWithIsa(Isa isa, const PackedMatrix& w, const QuantizedActivations& acts,
                            const float* bias, float* out, ThreadPool* pool);

// The feed-forward block's gate/up product, SiLU and quantization fused: gate_up is [2 dim, H]
// (the gate's dim rows, then the up projection's), acts its input quantized for it; out_acts gets
// SiLU(gate) * up quantized for `down` (dim = down.cols()). Bit for bit MatMulQuantized(gate_up,
// acts), then SiluMulQuantize for down (kernels/ops.h), on the same ISA; but the [T, 2 dim]
// product never leaves the cache (each thread takes chunks of gate and up features in turn) and
// no f32 SiLU rows are written. Requires FusesSiluMul.
bool FusesSiluMul(const PackedMatrix& gate_up, const PackedMatrix& down);
void MatMulSiluMulQuantized(const PackedMatrix& gate_up, const QuantizedActivations& acts,
                            const PackedMatrix& down, QuantizedActivations* out_acts,
                            ThreadPool* pool);
// The same on `isa` (IsaSupported(isa); Isa::kAmx runs the AVX-512 kernel, as
// MatMulQuantizedWithIsa does).
void MatMulSiluMulQuantizedWithIsa(Isa isa, const PackedMatrix& gate_up,
                                   const QuantizedActivations& acts, const PackedMatrix& down,
                                   QuantizedActivations* out_acts, ThreadPool* pool);

// MatMul runs on BestIsa() (kernels/isa.h, the one ISA detector), quantized weights on an AMX
// CPU on Isa::kAvx512 (the same bits; kernels/isa.h says why); tests and benchmarks force each
// supported Isa to cover every path.
// MatMul forced onto `isa`. Requires IsaSupported(isa).
void MatMulWithIsa(Isa isa, const PackedMatrix& w, const float* x, int64_t num_rows,
                   const float* bias, float* out, ThreadPool* pool);

// Whether MatMulWithIsa(isa, w, ...) rounds the activations to bf16 (round to nearest even, f32
// denormals to zero) and sums the bf16 products in f32 (vdpbf16ps, which kernels/ref/matmul_ref.h
// models bit for bit; on kAmx from kAmxBf16MinRows rows the AMX-BF16 unit, whose sums round
// differently, within the same bound). True for bf16 weights on kAvx512 and kAmx when the CPU had
// AVX-512 BF16 at Pack. Then, for K = cols, each output's dot product differs from the exact sum_k
// w_k x_k by at most (2^-8 + K * 2^-23) * sum_k |w_k x_k|: 2^-8 is the unit roundoff of bf16 (8
// significant bits), the relative change of one activation; K * 2^-23 bounds the K f32 additions
// (2^-24 each, with room for the factor 1 + 2^-8). Add 2^-126 * |w_k| for each activation that is
// an f32 denormal (read as zero). Typical errors are much smaller (the roundings have random
// signs). Otherwise the product is f32 FMA.
bool UsesBf16Dot(const PackedMatrix& w, Isa isa);
// Whether that bf16 dot product runs on the AMX-BF16 tile unit for num_rows rows (UsesBf16Dot,
// isa kAmx, a CPU with AMX-BF16, num_rows >= 16), so its sums are not MatMulBf16DotModel's.
bool UsesAmxBf16(const PackedMatrix& w, Isa isa, int64_t num_rows);

}  // namespace tinyserve::kernels
