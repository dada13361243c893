// Internal to the matmul implementation files: the packed weight layouts, the quantized
// activations, and the per-ISA kernel entry points that matmul.cc dispatches to.
// Quantized layout (exact for every block type, see quant_blocks.h): output rows in groups of
// kGroupRows = 16 (the last padded with zero weights); per group, per sub-block of S weights
// (S = 16 or 32) one record of quants, then
//   scale   [16] f32, f16 or int8
//   offset  [16] f32, f16 or int8   (only for formats with a minimum; others: -zero * scale)
// Scales are f16 when the format stores them as f16 (ScalesAreF16: exact); for the k-quants and
// IQ4_XS (`int_scales`) the file's integers sc and -min (DecodeScaleFactors), whose f16 factors d
// and dmin, one per super-block of 256 weights, live beside the records in `factors`:
//   factors [group][super-block][16] f16 d, then [16] f16 dmin (only with a minimum)
// and scale = d * sc, offset = dmin * -min, an exact f32 product; other formats f32. So Q4_K
// keeps 4.6 bits per weight (the file: 4.5) where f32 scales took 6, Q5_K 5.6 (5.5), Q6_K 6.56
// (6.56), IQ4_XS 4.3 (4.25). Records are 64-byte aligned only with f32 scales, so kernels load
// quants unaligned. Quants are 8-bit, 4-bit (`nibbles`: every format whose q takes at most 16
// values, see NibbleTable) or 5/6-bit (`high_bits` = 1 for Q5_0/Q5_1/Q5_K, 2 for Q6_K: the 4-bit
// lines of q & 15 plus one line of the bits above), so decode reads about the file's bytes instead
// of the 8-bit widening (Q5_0: 5.5 bits per weight instead of 8.5):
//   8-bit  [S / 4][16 rows][4 bytes]      u8 q, 4 consecutive weights of a row per 32-bit lane
//   4-bit  [S / 8][16 rows][4 bytes]      byte i of chunk pair p: low nibble = index of weight
//                                         8p + i, high nibble = index of weight 8p + 4 + i
//   high   [16 rows][4 bytes]             (only with high_bits = h) byte i: bits [h c, h c + h)
//                                         = q >> 4 of weight 4c + i, c < S / 4 (h S / 4 = 8)
// with q = table[index] | high << 4 (table: identity for the formats with q < 16 and the
// 5/6-bit ones). Unpacking a 64-byte 4-bit line by and/shift (and a 16-entry byte shuffle for a
// codebook) gives the two 8-bit lines of chunks 2p and 2p + 1; for 5/6-bit quants one 16-bit
// shift of the high line (right by h c - 4, or left by 4 - h c) brings chunk c's high bits to
// bits 4.. of every byte (bits spilled from the neighbouring byte land outside them), and an
// and/or merges them. So a 512-bit VNNI lane holds one row and a broadcast of 4 activation
// bytes meets 16 rows, whatever the width.
// Float weights (f32/f16/bf16) are read in place, row-major. bf16 weights are also packed for
// the AVX-512 BF16 dot product (vdpbf16ps: 16 f32 lanes, each adding two bf16 products) when
// the CPU runs Isa::kAvx512: rows in groups of 16 (zero rows pad the last), per group
//   bf16_pairs  [pair_stride][16 rows][2]      weights 2p, 2p + 1 of each row side by side
// (zeros pad an odd cols and the pairs up to pair_stride = ceil(cols / 2) rounded up to 16), so
// one 64-byte load meets a broadcast activation pair in all 16 rows and the lanes of the
// accumulator are the group's 16 outputs (no horizontal sums); and 16 pairs are one AMX tile.
// f16 weights stay on f32 FMA: bf16 would drop 3 bits of each f16 weight.
// Results: out[m, n] = bias[n] + sum over sub-blocks b, in order, of
//   acc = fma(float(idot), scale[n, b] * sx[m, blk], acc)  and, with a minimum,
//   acc = fma(offset[n, b], xsum[m, b], acc)
// where idot = sum q * xq - zero * sum xq is exact; every ISA path evaluates exactly this, so
// the quantized paths agree bit for bit with each other and with any thread count, whether the
// quants are stored at 8 or 4 bits.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/prefetch.h"
#include "kernels/quant_blocks.h"
#include "util/aligned_buffer.h"

namespace tinyserve::kernels {

inline constexpr int kGroupRows = 16;
inline constexpr int kActBlock = 32;  // activations are quantized per 32 values

struct PackedMatrix::Impl {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  uint64_t bytes = 0;
  // Float weights: the source rows.
  const void* float_data = nullptr;
  // bf16 weights, where the CPU has AVX-512 BF16: [num_groups][pairs][16][2] (above); empty
  // otherwise. The source rows stay in float_data for the other ISAs.
  AlignedBuffer<uint16_t> bf16_pairs;
  int64_t pairs = 0;        // ceil(cols / 2)
  int64_t pair_stride = 0;  // pairs per group in bf16_pairs: pairs rounded up to 16 (zeros)
  // Quantized weights.
  QuantTraits traits;
  int64_t num_groups = 0;
  int64_t num_sub = 0;   // cols / traits.sub_block
  bool nibbles = false;  // 4-bit quants (indices into table)
  int high_bits = 0;     // 5/6-bit quants: nibbles, then a line of the bits above 4 (1 or 2)
  alignas(16) uint8_t table[16] = {};
  bool f16_scales = false;          // scales (and offsets) stored as f16
  bool int_scales = false;          // scales (and offsets) stored as int8 times `factors`
  int64_t subs_per_super = 0;       // int_scales: sub-blocks per 256-weight super-block
  AlignedBuffer<uint16_t> factors;  // int_scales: [num_groups][num_sub / subs_per_super][..]
  int64_t quant_bytes = 0;          // quants of one record; the scales follow
  int64_t record_bytes = 0;         // one sub-block record of one group
  AlignedBuffer<uint8_t> packed;    // [num_groups][num_sub] records

  const uint8_t* Group(int64_t g) const { return packed.data() + g * num_sub * record_bytes; }
  // q of weight row r (of its group), chunk c, byte i of the record at rec (scalar reader).
  uint8_t Quant(const uint8_t* rec, int r, int c, int i) const {
    if (!nibbles) return rec[c * 64 + r * 4 + i];
    const uint8_t low = table[(rec[(c / 2) * 64 + r * 4 + i] >> (4 * (c % 2))) & 15];
    if (high_bits == 0) return low;
    const uint8_t high = rec[HighLine() + r * 4 + i] >> (high_bits * c);
    return static_cast<uint8_t>(low | (high & ((1 << high_bits) - 1)) << 4);
  }
  // Offset in a record of the high line (after the 4-bit lines).
  int64_t HighLine() const { return traits.sub_block * kGroupRows / 2; }
  // int_scales: the f16 factors of sub-block b's super-block in group g: [16] d, then [16] dmin
  // (with a minimum).
  const uint16_t* Factors(int64_t g, int64_t b) const {
    const int64_t per_group = num_sub / subs_per_super;
    return factors.data() +
           (g * per_group + b / subs_per_super) * (traits.has_min ? 2 : 1) * kGroupRows;
  }
  // Scale (i < 16) or offset (16 <= i < 32) of weight row i % 16 in group g's record b.
  float Scale(int64_t g, int64_t b, int i) const {
    const uint8_t* p = Group(g) + b * record_bytes + quant_bytes;
    if (int_scales)
      return Fp16ToF32(Factors(g, b)[i]) * static_cast<float>(static_cast<int8_t>(p[i]));
    if (f16_scales) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return Fp16ToF32(h);
    }
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
};

// Activations x [num_rows, cols] quantized per 32 values: xq = round(x * 127 / amax). Rows are
// stored in tiles of kRowTile (the last tile may be shorter, mt rows), interleaved so that a
// kernel working on one tile reads everything through one pointer:
//   xq    [tile][cols / 4][mt][4]      4 consecutive values of each row side by side
//   sx    [tile][cols / 32][mt]        amax / 127
//   init  [tile][num_sub][mt]          -zero * sum of xq over the sub-block
//   xsum  [tile][num_sub][mt]          sx * sum of xq over the sub-block
// Kernels must tile rows the same way: tiles start at multiples of kRowTile.
inline constexpr int kRowTile = 8;

struct QuantizedActs {
  int64_t num_rows = 0;
  int64_t cols = 0;
  int64_t num_sub = 0;  // cols / sub_block of the weights
  AlignedBuffer<int8_t> xq;
  AlignedBuffer<float> sx;
  AlignedBuffer<int32_t> init;
  AlignedBuffer<float> xsum;

  int64_t TileStart(int64_t m) const { return m / kRowTile * kRowTile; }
  int64_t TileRows(int64_t m) const {
    const int64_t left = num_rows - TileStart(m);
    return left < kRowTile ? left : kRowTile;
  }
  // Index of xq[m, k] for k a multiple of 4.
  int64_t XqIndex(int64_t m, int64_t k) const {
    return TileStart(m) * cols + (k / 4) * TileRows(m) * 4 + (m - TileStart(m)) * 4;
  }
  int64_t SxIndex(int64_t m, int64_t blk) const {
    return TileStart(m) * (cols / kActBlock) + blk * TileRows(m) + (m - TileStart(m));
  }
  int64_t SubIndex(int64_t m, int64_t b) const {
    return TileStart(m) * num_sub + b * TileRows(m) + (m - TileStart(m));
  }
};

// The sums of activation block blk of a row for the weights' sub-blocks, from the sums s0, s1 of
// its two 16-value halves: init (the zero point's share of the integer dot) and xsum (the
// offset's factor), at index i0 of each (sub-blocks of 32), or at i0 and i1 for the halves
// (sub-blocks of 16). Every ISA's quantizer stores them through this one statement.
inline void StoreBlockSums(const QuantTraits& traits, float sx, int32_t s0, int32_t s1,
                           int32_t* init, float* xsum, int64_t i0, int64_t i1) {
  if (traits.sub_block == 32) {
    init[i0] = -traits.zero_point * (s0 + s1);
    xsum[i0] = sx * static_cast<float>(s0 + s1);
  } else {
    init[i0] = -traits.zero_point * s0;
    init[i1] = -traits.zero_point * s1;
    xsum[i0] = sx * static_cast<float>(s0);
    xsum[i1] = sx * static_cast<float>(s1);
  }
}

// The same for row m of acts, at the indices QuantizedActs gives block blk's sub-blocks.
inline void StoreBlockSums(const QuantTraits& traits, float sx, int32_t s0, int32_t s1, int64_t m,
                           int64_t blk, QuantizedActs* acts) {
  const bool halves = traits.sub_block != 32;
  const int64_t i0 = acts->SubIndex(m, halves ? 2 * blk : blk);
  StoreBlockSums(traits, sx, s0, s1, acts->init.data(), acts->xsum.data(), i0,
                 halves ? acts->SubIndex(m, 2 * blk + 1) : i0);
}

// How far ahead of the weight record being read the quantized kernels request lines into L2.
// With 16 or more activation rows a kernel spends long enough on each record that the
// out-of-order window covers only a few of the lines ahead, and with the hardware prefetchers
// alone the weight stream and the arithmetic took turns (a 151936 x 896 Q8_0 matmul at 16 rows
// took the sum of its memory time and its in-cache time). Measured on a Sapphire Rapids (AVX-512
// kernel, 2 threads): 1.5x at 16 rows and 1.4x at 1 row for that matrix; 2-8 KiB ahead were
// alike, 64 KiB and the L1 hints (T0, NTA) worse.
inline constexpr int64_t kWeightPrefetchBytes = 4096;

// On AMD the AVX-512 kernel's products of fewer rows than this stream their weights without
// requests of their own: the hardware prefetcher alone keeps up with a 1- or 2-row product, and
// the requests slowed it. Measured on a Zen 4 EPYC (2 threads; the 97 Q8_0 matmuls of one b = 1
// decode step, 525 MB, with and without the requests alternating in one process; fastest of 12):
// 1 row 10.7-18.4 ms without against 15.6-20.3 with, 2 rows 14.0-18.2 against 16.3-20.4, Q4_0 1
// row 6.9-9.4 against 8.8-9.8; 3 rows a little faster, 4 and 5 level, 8 rows 25% slower without.
// Whole-model decode b = 1 at an 8,192-token context (bench_model, 10 alternating runs each): 44.9
// against 39.4 tok/s on average. The AVX2 kernel (which reads each record twice, one half-group at
// a time) measured slower without them, so it keeps them. Zen 5 and older Zen are unmeasured.
inline constexpr int64_t kAmdReadAheadMinRows = 4;

// Whether the AVX-512 kernel's product of `rows` activation rows, all in one row tile, requests
// its weight records kWeightPrefetchBytes ahead (above).
inline bool ReadsWeightsAhead(int64_t rows) {
  return !DetectedCpuFeatures().amd || rows >= kAmdReadAheadMinRows;
}

// Requests the lines of [p, p + bytes) into L2 (prefetcht1: a hint, it never faults, even past
// the end of a buffer).
inline void PrefetchToL2(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) PrefetchLineToL2(p + o);
}

// Quantizes columns [col_begin, col_end) (multiples of kActBlock) of rows [row_begin, row_end)
// into acts (already sized); x points at element (row_begin, col_begin) and its rows are ldx
// floats apart. Same results on every ISA (round to nearest even of x * (127 / amax)), and the
// same for a block whichever column range it is quantized in.
using QuantizeActsFn = void (*)(const float* x, int64_t ldx, int64_t row_begin, int64_t row_end,
                                int64_t col_begin, int64_t col_end, const QuantTraits& traits,
                                QuantizedActs* acts);

// Where a quantized kernel writes output (m, n): data + (m - m0) * ldc + (n - n0). A whole
// product passes its out matrix ({out, rows, 0, 0}); a fused caller a tile of its own scratch.
// `stream`: the output is far larger than the caches and nothing reads it back soon, so a
// kernel may write its whole 64-byte groups with non-temporal stores (data and ldc then keep
// them aligned) and fence them before it returns (RunQuantKernel decides; kStreamOutputBytes).
struct OutTile {
  float* data;
  int64_t ldc;
  int64_t m0;
  int64_t n0;
  bool stream = false;
  // The row group of w the caller's next product starts at, or -1 (a hint: no result depends
  // on it). The AVX-512 kernel requests each group pair's successor into L2 while it computes
  // the pair (QuantTile); at the end of its range it requests this one instead, so a fused
  // caller's run of short products (MatMulSiluMulQuantized: gate and up chunks in turn) does
  // not start each on weights still in memory: bench_model, 64 x 576 int8 decode, gate_up
  // 21.5 / 21.6 / 22.4 -> 20.8 / 21.3 / 20.2 ms a step (Zen 5, alternating).
  int64_t then_group = -1;
  float* At(int64_t m, int64_t n) const { return data + (m - m0) * ldc + (n - n0); }
};

// Products whose output is at least this large stream it (OutTile::stream): the logits of a
// decode step of 64 sequences are 39 MB (64 x 151,936 f32). Written through the caches, their
// 64 rows of read-for-ownership misses and the evictions of the weights they cause held
// lm_head at m = 64 to 56-58% of the int8 dot peak against 70-72% with the output kept small
// (bench_matmul, Zen 5, 2 threads); streamed it ran at 70.6%.
inline constexpr int64_t kStreamOutputBytes = int64_t{8} << 20;

// Computes output rows [m_begin, m_end) x row groups [g_begin, g_end) into out. Each output is
// the same whatever the ranges it is computed in (matmul_internal.h's order of operations).
using QuantKernelFn = void (*)(const PackedMatrix::Impl& w, const QuantizedActs& acts,
                               int64_t g_begin, int64_t g_end, int64_t m_begin, int64_t m_end,
                               const float* bias, OutTile out);
// Float weights: out rows [m_begin, m_end) x weight rows [n_begin, n_end).
using FloatKernelFn = void (*)(const PackedMatrix::Impl& w, const float* x, int64_t n_begin,
                               int64_t n_end, int64_t m_begin, int64_t m_end, const float* bias,
                               float* out);

struct MatMulKernels {
  QuantizeActsFn quantize_acts;
  QuantKernelFn quant;
  FloatKernelFn float_kernel;
};

struct QuantizedActivations::Impl {
  QuantizedActs acts;
  QuantTraits traits;
  QuantizeActsFn quantize = nullptr;
};

// Activations for the bf16 dot product: x rounded to bf16 (round to nearest even; f32 denormals
// read as zero, as vcvtne2ps2bf16 does), in tiles of kBf16RowTile rows (the last may be shorter,
// mt rows) with the pairs of each row interleaved, so a kernel reads a tile through one pointer:
//   x  [tile][pairs][mt] uint32     bf16 values 2p (low half) and 2p + 1 of row m
// A zero pads an odd cols. Kernels must tile rows the same way (tiles at multiples of 12).
inline constexpr int kBf16RowTile = 12;

struct Bf16Acts {
  int64_t num_rows = 0;
  int64_t pairs = 0;
  AlignedBuffer<uint32_t> x;

  int64_t TileStart(int64_t m) const { return m / kBf16RowTile * kBf16RowTile; }
  int64_t TileRows(int64_t m) const {
    const int64_t left = num_rows - TileStart(m);
    return left < kBf16RowTile ? left : kBf16RowTile;
  }
  int64_t Index(int64_t m, int64_t p) const {
    return TileStart(m) * pairs + p * TileRows(m) + (m - TileStart(m));
  }
};

// Isa::kAvx512 (and kAmx), bf16 weights with bf16_pairs: rounds rows [row_begin, row_end) of x
// [num_rows, cols] into acts (already sized).
void RoundActsBf16Avx512(const float* x, int64_t cols, int64_t row_begin, int64_t row_end,
                         Bf16Acts* acts);
// out rows [m_begin, m_end) (whole tiles but the last) x row groups [g_begin, g_end): per output
// one f32 accumulator (from +0) takes vdpbf16ps over the pairs in order, then + bias[n]; so each
// output is the same whatever the tiling, the threads or the other rows.
void Bf16DotKernelAvx512(const PackedMatrix::Impl& w, const Bf16Acts& acts, int64_t g_begin,
                         int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias,
                         float* out);

// Isa::kAmx on a CPU with AMX-BF16, bf16 weights with bf16_pairs, from kAmxBf16MinRows rows
// (one 16-row tile: measured 3-8x the vdpbf16ps kernel there, bench_matmul --compare): the
// whole MatMul (rounding x as RoundActsBf16Avx512 does, threads over row groups) on the tile
// unit. Each output is the sum over K of the same bf16 products in tiles of 32 (f32 sums,
// rounded as the unit does), + bias[n]; the same whatever the threads or the other rows.
inline constexpr int64_t kAmxBf16MinRows = 16;
void RunBf16Amx(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
                float* out, ThreadPool* pool);
// The same kernel over kernels/ref/amx_tiles_ref.h's model (its sums in pair order, each rounded
// to f32): tests of the kernel's logic on CPUs without AMX. Requires IsaSupported(Isa::kAvx512).
void RunBf16AmxOnModel(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                       const float* bias, float* out, ThreadPool* pool);

MatMulKernels ScalarKernels();
// The kernels MatMul runs on `isa` (Isa::kAmx: the AVX-512 ones, for what AmxServes does not take).
MatMulKernels MatMulKernelsFor(Isa isa);
// Threads for a quantized product of num_rows rows: the pool's, or 1 below ~2^18 multiply-adds,
// where a parallel region costs more than it saves.
int QuantThreads(const PackedMatrix::Impl& w, int64_t num_rows, ThreadPool* pool);
// Activation rows per pass of a quantized product: about 256 KiB of int8, which stays in L2 while
// a thread's row groups stream past it (a multiple of kRowTile).
int64_t QuantRowTile(const PackedMatrix::Impl& w);
// Row groups per chunk of a threaded quantized product (ThreadPool::ParallelForDynamic): whole
// group pairs, about kQuantChunksPerThread chunks per thread. With one fixed range per thread the
// faster thread waited for the other in every product: the two threads' times differed by 6-11%
// of the products' wall time (bench_model decode at 64 rows and prefill, 2 threads on a 2-vCPU
// Zen 5 VM, summed over each parallel region), 1.3-2.4% with claimed chunks. Small chunks bound
// the wait at the end to about half a chunk, and each chunk names the next one its thread claimed
// (OutTile::then_group), so none starts on weights still in memory.
// Products of at most kFewRows rows (decode) go in chunks of about kFewRowsChunkBytes of weights
// instead, at least kFewRowsMinChunksPerThread a thread: they are bound by reading the weights,
// and there each chunk's start cost more than the balance saved (with one row tile the kernel
// requests nothing of the next chunk, see QuantGroups, so each began on a stream the hardware
// prefetcher had to find again). Measured on a Zen 5 VM (2 threads, 24 cold Q8_0 matrices of each
// of Qwen2.5-0.5B's shapes, GB/s, 32 chunks a thread -> 2): 1 row 896 x 896 28-33 -> 34-46, 1152
// x 896 28-31 -> 38-43, 896 x 4864 38-39 -> 39-44; 8 rows 896 x 896 21-24 -> 21-30; 16 rows
// 13-18 -> 17-21; at 32 rows fewer chunks lost (9728 x 896 13 -> 7-10). Chunks of 256 KiB to a
// whole half matrix measured alike (151,936 x 896 at 1 row: 37-55 GB/s each); 1 MiB keeps that
// one in ~145 chunks. bench_model b = 1 at an 8,192-token context: 73.8 -> 78.9 tok/s, 57.7% ->
// 63.1% of the bound (means of 12 runs each, alternating).
inline constexpr int kQuantChunksPerThread = 32;
inline constexpr int64_t kFewRows = 16;
inline constexpr int64_t kFewRowsChunkBytes = int64_t{1} << 20;
inline constexpr int64_t kFewRowsMinChunksPerThread = 2;
int64_t QuantChunkGroups(const PackedMatrix::Impl& w, int threads, int64_t num_rows);
MatMulKernels Avx2Kernels();
MatMulKernels Avx512Kernels();

// Isa::kAmx, quantized weights: the whole MatMul (quantizing x, threads over row groups) on the
// tile unit, bit-identical to Avx512Kernels(). Worth it from kAmxMinRows rows: below 16 the
// product is a GEMV bound by reading the weights, which the AVX-512 kernel already does at the
// bandwidth limit, and at 16 (one row block) the per-group signed copy of the weights is not
// amortized (measured on a Sapphire Rapids, 1 thread, against session 6's AVX-512 kernel:
// AMX/AVX-512 0.79-1.18x at 16 rows, 0.98-1.31x at 32, 1.08-1.37x at 48; isa.h has today's).
// Only MatMulWithIsa(Isa::kAmx) runs it (tests; bench_matmul --compare re-measures it against
// the AVX-512 kernel on each AMX CPU): MatMul, the model's entry, takes the AVX-512 kernel for
// quantized weights, which since gained the fused norm / SiLU quantization and the shared
// broadcasts and is faster in the whole model at every row count (session 43, Sapphire Rapids
// class, bench_model --threads 2, AMX -> AVX-512 tok/s: q8_0 prefill 64 / 512 / 2048 tokens
// 868 -> 997, 905-919 -> 1,027-1,029, 636 -> 775; decode of 64 sequences at 576 tokens 538-568 ->
// 633-652; q4_0 and q4_k_m alike). Each tile product's 1 KiB store and f32 scaling bound it.
inline constexpr int64_t kAmxMinRows = 32;
// Whether Isa::kAmx runs `w` for num_rows rows on the tile unit (else on Avx512Kernels()):
// quantized weights with 32-weight sub-blocks, from kAmxMinRows rows. With 16-weight sub-blocks
// (Q2_K, Q3_K, Q6_K) each tile product has K = 16, a quarter of the unit's width, for the same
// 1 KiB product store and scaling: measured 0.84-1.17x the AVX-512 kernel (Q2_K 0.84-0.93x).
inline bool AmxServes(const PackedMatrix::Impl& w, int64_t num_rows) {
  return w.float_data == nullptr && w.traits.sub_block == 32 && num_rows >= kAmxMinRows;
}
void RunQuantizedAmx(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                     const float* bias, float* out, ThreadPool* pool);
// The same kernel over kernels/ref/amx_tiles_ref.h's model of the tile unit, so tests check the
// kernel's logic on CPUs without AMX. Requires IsaSupported(Isa::kAvx512).
void RunQuantizedAmxOnModel(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                            const float* bias, float* out, ThreadPool* pool);

}  // namespace tinyserve::kernels
