// The feed-forward block's middle as one pass: the gate/up product, SiLU(gate) * up and its
// quantization for the down projection, a column chunk at a time, so the [T, 2F] product (20 MB a
// layer at 512 rows for Qwen2.5-0.5B) is never written to memory and read back.
#include <algorithm>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "util/aligned_buffer.h"
#include "util/check.h"

namespace tinyserve::kernels {
namespace {

// Output features per chunk: two activation blocks of the down projection's input, so a chunk's
// rows quantize on their own, and two weight groups of gate and of up each, the AVX-512 kernel's
// group pair (with a pair per call, a call's first row tile would be the only one requesting
// weights ahead). A last chunk may be one block.
constexpr int64_t kChunk = 2 * kActBlock;

}  // namespace

bool FusesSiluMul(const PackedMatrix& gate_up, const PackedMatrix& down, int64_t num_rows) {
  return TakesQuantizedActivations(gate_up, num_rows) &&
         TakesQuantizedActivations(down, num_rows) && gate_up.rows() == 2 * down.cols() &&
         down.cols() % kActBlock == 0;
}

void MatMulSiluMulQuantizedWithIsa(Isa isa, const PackedMatrix& gate_up,
                                   const QuantizedActivations& acts, const PackedMatrix& down,
                                   QuantizedActivations* out_acts, ThreadPool* pool) {
  TS_CHECK(IsaSupported(isa));
  const PackedMatrix::Impl& w = gate_up.impl();
  const QuantizedActs& in = acts.impl().acts;
  const int64_t dim = down.cols();
  TS_CHECK(w.float_data == nullptr && down.impl().float_data == nullptr);
  TS_CHECK(w.rows == 2 * dim && dim % kActBlock == 0);
  TS_CHECK(in.cols == w.cols && acts.impl().traits.sub_block == w.traits.sub_block &&
           acts.impl().traits.zero_point == w.traits.zero_point);
  const int64_t num_rows = in.num_rows;
  PrepareActivations(down, num_rows, out_acts);
  if (num_rows <= 0) return;
  QuantizedActivations::Impl& out = out_acts->impl();
  const MatMulKernels k = MatMulKernelsFor(isa);
  const auto silu_mul = cpu::KernelsFor(isa).silu_mul;
  const int64_t tile = QuantRowTile(w);
  const int64_t chunks = (dim + kChunk - 1) / kChunk;
  auto work = [&](int64_t c_begin, int64_t c_end, int) {
    // [rows][gate kChunk | up kChunk] as silu_mul reads them, then [rows][kChunk] of its output.
    thread_local AlignedBuffer<float> scratch;
    const int64_t need = std::min(num_rows, tile) * 3 * kChunk;
    if (static_cast<int64_t>(scratch.size()) < need) scratch.Resize(need);
    float* product = scratch.data();
    float* act = product + std::min(num_rows, tile) * 2 * kChunk;
    for (int64_t m = 0; m < num_rows; m += tile) {
      const int64_t m_end = std::min(num_rows, m + tile);
      for (int64_t c = c_begin; c < c_end; ++c) {
        const int64_t f = c * kChunk;
        const int64_t width = std::min(kChunk, dim - f);
        const int64_t groups = width / kGroupRows;
        // Each output is the same whatever the ranges it is computed in (QuantKernelFn), so
        // these are MatMulQuantized's numbers; silu_mul and the quantization are per element and
        // per block.
        k.quant(w, in, f / kGroupRows, f / kGroupRows + groups, m, m_end, nullptr,
                OutTile{product, 2 * width, m, f});
        k.quant(w, in, (dim + f) / kGroupRows, (dim + f) / kGroupRows + groups, m, m_end, nullptr,
                OutTile{product + width, 2 * width, m, dim + f});
        silu_mul(product, m_end - m, width, act);
        out.quantize(act, width, m, m_end, f, f + width, out.traits, &out.acts);
      }
    }
  };
  if (QuantThreads(w, num_rows, pool) > 1) {
    pool->ParallelFor(chunks, 1, work);
  } else {
    work(0, chunks, 0);
  }
}

void MatMulSiluMulQuantized(const PackedMatrix& gate_up, const QuantizedActivations& acts,
                            const PackedMatrix& down, QuantizedActivations* out_acts,
                            ThreadPool* pool) {
  MatMulSiluMulQuantizedWithIsa(BestIsa(), gate_up, acts, down, out_acts, pool);
}

}  // namespace tinyserve::kernels
