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

// Output features per chunk: a multiple of two activation blocks of the down projection's input,
// so a chunk's rows quantize on their own, and of two weight groups of gate and of up, the AVX-512
// kernel's group pair. The features go in chunks of ChunkFeatures (a last one may be shorter, down
// to one block).
constexpr int64_t kStep = 2 * kActBlock;

// With many rows a chunk of one group pair keeps the product tile in L1/L2 (at 512 rows 64
// features measured 1.13-1.18x the unfused path, bench_matmul --ffn); with a few rows the kernel
// calls would cost more than the streaming of so little weight (64 features at 1 row: 0.92x), so
// the chunk grows to about 64 KiB of gate + up tile (8,192 / rows features x rows x 2 x 4 bytes),
// at most 1,024 features.
int64_t ChunkFeatures(int64_t tile_rows) {
  return std::clamp<int64_t>((8192 / tile_rows) / kStep * kStep, kStep, 1024);
}

}  // namespace

bool FusesSiluMul(const PackedMatrix& gate_up, const PackedMatrix& down) {
  return TakesQuantizedActivations(gate_up) && TakesQuantizedActivations(down) &&
         gate_up.rows() == 2 * down.cols() && down.cols() % kActBlock == 0;
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
  const int64_t tile_rows = std::min(num_rows, tile);
  const int threads = QuantThreads(w, num_rows, pool);
  // At most an eighth of each thread's share, so claiming balances the threads (a last chunk
  // claimed by one thread as the other finishes costs the other at most that long).
  const int64_t chunk =
      std::min(ChunkFeatures(tile_rows), std::max(kStep, dim / (8 * threads) / kStep * kStep));
  const int64_t tiles = (num_rows + tile - 1) / tile;
  const int64_t chunks = (dim + chunk - 1) / chunk;
  // Chunk i: rows of tile i / chunks (row tile major: a tile's activations stay in L2), features
  // [f, f + width) of chunk i % chunks. Threads claim chunks as they finish the last (as
  // RunQuantKernel's).
  auto run = [&](int64_t i, int64_t next, int) {
    // [rows][gate chunk | up chunk] as silu_mul reads them, then [rows][chunk] of its output.
    thread_local AlignedBuffer<float> scratch;
    if (static_cast<int64_t>(scratch.size()) < tile_rows * 3 * chunk)
      scratch.Resize(tile_rows * 3 * chunk);
    float* product = scratch.data();
    float* act = product + tile_rows * 2 * chunk;
    const int64_t m = i / chunks * tile, m_end = std::min(num_rows, m + tile);
    const int64_t f = i % chunks * chunk, width = std::min(chunk, dim - f);
    const int64_t groups = width / kGroupRows;
    // Each output is the same whatever the ranges it is computed in (QuantKernelFn), so these
    // are MatMulQuantized's numbers; silu_mul and the quantization are per element and per
    // block. Each product names the next one's first group (OutTile::then_group): gate, up, the
    // thread's next chunk's gate.
    const int64_t next_gate = next < 0 ? -1 : next % chunks * chunk / kGroupRows;
    k.quant(w, in, f / kGroupRows, f / kGroupRows + groups, m, m_end, nullptr,
            OutTile{product, 2 * width, m, f, false, (dim + f) / kGroupRows});
    k.quant(w, in, (dim + f) / kGroupRows, (dim + f) / kGroupRows + groups, m, m_end, nullptr,
            OutTile{product + width, 2 * width, m, dim + f, false, next_gate});
    silu_mul(product, m_end - m, width, act);
    out.quantize(act, width, m, m_end, f, f + width, out.traits, &out.acts);
  };
  if (threads > 1) {
    pool->ParallelForDynamic(tiles * chunks, run);
  } else {
    for (int64_t i = 0; i < tiles * chunks; ++i) run(i, i + 1 < tiles * chunks ? i + 1 : -1, 0);
  }
}

void MatMulSiluMulQuantized(const PackedMatrix& gate_up, const QuantizedActivations& acts,
                            const PackedMatrix& down, QuantizedActivations* out_acts,
                            ThreadPool* pool) {
  MatMulSiluMulQuantizedWithIsa(BestIsa(), gate_up, acts, down, out_acts, pool);
}

}  // namespace tinyserve::kernels
