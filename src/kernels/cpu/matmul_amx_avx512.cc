// Quantized MatMul on the AMX tile unit (Isa::kAmx). One tdpbssd multiplies 16 activation rows
// (int8, row-major) by one sub-block of a 16-row weight group, whose quants are copied once per
// group (and activation row tile) as signed bytes q - zero in the tile unit's B layout
// ([S / 4][16 rows][4 bytes], as the packed 8-bit records; 4/5/6-bit ones are unpacked on the
// way). Each product is a 16 x 16 int32 tile for one sub-block (dot + init, the AVX-512 kernel's
// integer); it is stored and scaled into f32 accumulators with AVX-512 exactly as the AVX-512
// kernel does (the same fused multiply-adds in the same order), so both paths agree bit for bit
// and the choice between them never changes a result. The per-sub-block scaling and the 1 KiB
// store of every product bound this kernel (a 16 x 16 x 32 product is 16 cycles of the unit,
// about 110 of the whole loop on a Sapphire Rapids), as the scaling bounds llama.cpp's and
// SGLang's. The same kernel runs over kernels/ref/amx_tiles_ref.h's model of the unit so that it
// is tested on CPUs without AMX.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/matmul_avx512_shared.h"
#include "kernels/matmul_internal.h"
#include "kernels/ref/amx_tiles_ref.h"

namespace tinyserve::kernels {
namespace {

constexpr int kTileRows = 16;  // activation rows per tile

// Activations for the tile unit, in blocks of kTileRows rows (the last padded with zero rows: a
// tile always loads 16), laid out so that what one sub-block's product and scaling read is
// contiguous: per row block and sub-block, the 16 rows' quants (one 16 x SUB tile, loaded with
// stride SUB) and the 16 rows' block scales and sums. Same values as QuantizedActs, less init:
// the signed weights take it in (SignedGroup).
struct AmxActs {
  int64_t rows = 0;  // padded to kTileRows
  int64_t cols = 0;
  int64_t num_sub = 0;
  int sub = 0;
  AlignedBuffer<int8_t> xq;   // [rows / 16][num_sub][16][sub]
  AlignedBuffer<float> sx;    // [rows / 16][cols / 32][16]: amax / 127
  AlignedBuffer<float> xsum;  // [rows / 16][num_sub][16]: sx * sum of xq over the sub-block

  // Index of row m's entry for sub-block (or 32-block) b in a [rows / 16][count][16] array.
  static int64_t At(int64_t m, int64_t count, int64_t b) {
    return ((m / kTileRows) * count + b) * kTileRows + m % kTileRows;
  }
  int8_t* Quants(int64_t m, int64_t b) { return xq.data() + At(m, num_sub, b) * sub; }
  // The 16 x sub tile of row block mb, sub-block b.
  const int8_t* Tile(int64_t mb, int64_t b) const {
    return xq.data() + (mb * num_sub + b) * kTileRows * sub;
  }
};

void QuantizeRows(const float* x, int64_t row_begin, int64_t row_end, const QuantTraits& traits,
                  AmxActs* a) {
  const int64_t blocks = a->cols / kActBlock;
  for (int64_t m = row_begin; m < row_end; ++m) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      alignas(32) int8_t q[kActBlock];
      const cpu::QuantizedBlock32 r = cpu::QuantizeBlock32(x + m * a->cols + blk * kActBlock, q);
      a->sx[AmxActs::At(m, blocks, blk)] = r.sx;
      if (traits.sub_block == 32) {
        std::memcpy(a->Quants(m, blk), q, 32);
        a->xsum[AmxActs::At(m, a->num_sub, blk)] = r.sx * static_cast<float>(r.s0 + r.s1);
      } else {
        std::memcpy(a->Quants(m, 2 * blk), q, 16);
        std::memcpy(a->Quants(m, 2 * blk + 1), q + 16, 16);
        a->xsum[AmxActs::At(m, a->num_sub, 2 * blk)] = r.sx * static_cast<float>(r.s0);
        a->xsum[AmxActs::At(m, a->num_sub, 2 * blk + 1)] = r.sx * static_cast<float>(r.s1);
      }
    }
  }
}

// The padding rows of the last block: zero quants, scales and sums (their products are
// computed and never stored).
void ZeroRows(int64_t num_rows, AmxActs* a) {
  const int64_t blocks = a->cols / kActBlock;
  for (int64_t m = num_rows; m < a->rows; ++m) {
    for (int64_t b = 0; b < a->num_sub; ++b) {
      std::memset(a->Quants(m, b), 0, a->sub);
      a->xsum[AmxActs::At(m, a->num_sub, b)] = 0;
    }
    for (int64_t blk = 0; blk < blocks; ++blk) a->sx[AmxActs::At(m, blocks, blk)] = 0;
  }
}

// Tile registers: four product tiles, and two activation and two weight tiles used in turn, so
// that four sub-blocks' products are in flight.
enum TileReg { kC0 = 0, kC1 = 1, kC2 = 2, kC3 = 3, kA0 = 4, kA1 = 5, kB0 = 6, kB1 = 7 };

amx::TileConfig ConfigFor(int sub) {
  amx::TileConfig cfg;
  for (int c : {kC0, kC1, kC2, kC3}) cfg.Set(c, kTileRows, 64);
  for (int t : {kA0, kA1}) cfg.Set(t, kTileRows, sub);
  for (int t : {kB0, kB1}) cfg.Set(t, sub / 4, 64);
  return cfg;
}

// Writes the quants of group record rec as signed bytes q - zero ([num_sub][S / 4][16][4], the
// tile unit's B layout) into dst. Then tdpbssd gives sum (q - zero) xq = dot + init directly, the
// same integer, and the scaling has no init to add (a quarter of its vector work). Every format's
// q - zero fits a signed byte (Q8_0: q - 128; 4/5/6-bit q < 64 with zero <= 32; codebooks: the
// int8 value). Done once per group and activation row tile, read by each of its row blocks.
template <bool kNibbles, bool kTable, int kHigh>
void SignedGroup(const PackedMatrix::Impl& w, const uint8_t* rec, int8_t* dst) {
  const __m512i table = cpu::NibbleTableVector(w);
  const __m512i zero = _mm512_set1_epi8(static_cast<char>(w.traits.zero_point));
  const int sub = w.traits.sub_block;
  for (int64_t b = 0; b < w.num_sub; ++b, rec += w.record_bytes) {
    int8_t* out = dst + b * sub * kGroupRows;
    if constexpr (!kNibbles) {
      for (int c = 0; c < sub / 4; ++c)
        _mm512_storeu_si512(out + c * 64, _mm512_sub_epi8(_mm512_loadu_si512(rec + c * 64), zero));
    } else {
      const __m512i hb =
          kHigh > 0 ? _mm512_loadu_si512(rec + w.HighLine()) : _mm512_setzero_si512();
      for (int p = 0; p < sub / 8; ++p) {
        __m512i low, high;
        cpu::UnpackLine<kTable, kHigh>(rec, p, table, hb, &low, &high);
        _mm512_storeu_si512(out + 2 * p * 64, _mm512_sub_epi8(low, zero));
        _mm512_storeu_si512(out + (2 * p + 1) * 64, _mm512_sub_epi8(high, zero));
      }
    }
  }
}

void SignedGroupFor(const PackedMatrix::Impl& w, int64_t g, int8_t* dst) {
  bool table = false;
  for (int i = 0; i < 16; ++i) table = table || w.table[i] != i;
  if (!w.nibbles) {
    SignedGroup<false, false, 0>(w, w.Group(g), dst);
  } else if (table) {
    SignedGroup<true, true, 0>(w, w.Group(g), dst);
  } else if (w.high_bits == 1) {
    SignedGroup<true, false, 1>(w, w.Group(g), dst);
  } else if (w.high_bits == 2) {
    SignedGroup<true, false, 2>(w, w.Group(g), dst);
  } else {
    SignedGroup<true, false, 0>(w, w.Group(g), dst);
  }
}

// Folds one sub-block's int32 products c[16 rows][16 weight rows] (dot + init, see SignedGroup)
// into acc, as QuantTile in matmul_avx512.cc: acc = fma(float(dot + init), scale * sx, acc),
// then the minimum's term.
template <int SUB, bool kMin, cpu::ScaleKind kS>
inline void Scale(const PackedMatrix::Impl& w, const AmxActs& a, int64_t g, int64_t mb, int64_t b,
                  const int32_t* c, __m512* acc) {
  const __m512 scale = cpu::LoadScales<kS>(w, g, b, 0);
  const int64_t blocks = a.cols / kActBlock;
  const float* sx = a.sx.data() + (mb * blocks + b * SUB / kActBlock) * kTileRows;
  for (int r = 0; r < kTileRows; ++r) {
    const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(sx[r]));
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * r)), s, acc[r]);
  }
  if constexpr (kMin) {
    const __m512 offset = cpu::LoadScales<kS>(w, g, b, 1);
    const float* xsum = a.xsum.data() + (mb * a.num_sub + b) * kTileRows;
    for (int r = 0; r < kTileRows; ++r)
      acc[r] = _mm512_fmadd_ps(offset, _mm512_set1_ps(xsum[r]), acc[r]);
  }
}

constexpr int kProduct = kTileRows * 16;  // int32s of one product tile
// Products are scaled kLag sub-blocks after they are computed, from a ring of 2 kLag tiles.
constexpr int kLag = 4;
constexpr int kRing = 2 * kLag;

// Sub-block b's product (weights q: the group's signed quants) into tile C.
template <class Tiles, int C, int A, int B>
inline void Dot(const int8_t* q, const AmxActs& a, int64_t mb, int64_t b) {
  Tiles::template Zero<C>();
  Tiles::template Load<A>(a.Tile(mb, b), a.sub);
  Tiles::template Load<B>(q + b * a.sub * kGroupRows, 64);
  Tiles::template DotSignedSigned<C, A, B>();
}

// Products of sub-blocks [b, min(b + kLag, n)) into their ring slots.
template <class Tiles>
inline void Products(const int8_t* q, const AmxActs& a, int64_t mb, int64_t b, int64_t n,
                     int32_t* ring) {
  auto slot = [&](int64_t i) { return ring + (i % kRing) * kProduct; };
  const int64_t end = std::min<int64_t>(b + kLag, n);
  for (; b + 4 <= end; b += 4) {
    Dot<Tiles, kC0, kA0, kB0>(q, a, mb, b);
    Dot<Tiles, kC1, kA1, kB1>(q, a, mb, b + 1);
    Tiles::template Store<kC0>(slot(b), 64);
    Tiles::template Store<kC1>(slot(b + 1), 64);
    Dot<Tiles, kC2, kA0, kB0>(q, a, mb, b + 2);
    Dot<Tiles, kC3, kA1, kB1>(q, a, mb, b + 3);
    Tiles::template Store<kC2>(slot(b + 2), 64);
    Tiles::template Store<kC3>(slot(b + 3), 64);
  }
  for (; b < end; ++b) {
    Dot<Tiles, kC0, kA0, kB0>(q, a, mb, b);
    Tiles::template Store<kC0>(slot(b), 64);
  }
}

// Output rows of row block mb (of which the first `valid_m` exist) x weight row group g (signed
// quants q). The products of sub-blocks b + kLag.. are issued before sub-blocks b.. are scaled,
// so the tile unit can work while the vector units scale, and the ring (8 KiB) stays in L1, where
// the earlier whole-group products buffer (num_sub KiB) did not.
template <class Tiles, int SUB, bool kMin, cpu::ScaleKind kS>
void GroupTile(const PackedMatrix::Impl& w, const int8_t* q, const AmxActs& a, int64_t g,
               int64_t mb, int64_t valid_m, const float* bias, float* out, int32_t* ring) {
  const int64_t n = w.num_sub;
  __m512 acc[kTileRows];
  for (auto& v : acc) v = _mm512_setzero_ps();
  Products<Tiles>(q, a, mb, 0, n, ring);
  for (int64_t b = 0; b < n; b += kLag) {
    if (b + kLag < n) Products<Tiles>(q, a, mb, b + kLag, n, ring);
    for (int64_t i = b; i < std::min<int64_t>(b + kLag, n); ++i)
      Scale<SUB, kMin, kS>(w, a, g, mb, i, ring + (i % kRing) * kProduct, acc);
  }
  const int64_t n0 = g * kGroupRows;
  const int64_t valid = std::min<int64_t>(kGroupRows, w.rows - n0);
  const auto mask = static_cast<__mmask16>((1u << valid) - 1);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
  for (int64_t r = 0; r < valid_m; ++r) {
    const __m512 v = bias ? _mm512_add_ps(acc[r], bv) : acc[r];
    _mm512_mask_storeu_ps(out + (mb * kTileRows + r) * w.rows + n0, mask, v);
  }
}

// Rows [m_begin, m_end) (tile-aligned m_begin) x groups [g_begin, g_end), on the calling thread.
template <class Tiles, int SUB, bool kMin, cpu::ScaleKind kS>
void Groups(const PackedMatrix::Impl& w, const AmxActs& a, int64_t num_rows, int64_t g_begin,
            int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias, float* out,
            AlignedBuffer<int8_t>* quants, AlignedBuffer<int32_t>* ring) {
  ring->Resize(kRing * kProduct);
  quants->Resize(w.num_sub * SUB * kGroupRows);
  for (int64_t g = g_begin; g < g_end; ++g) {
    SignedGroupFor(w, g, quants->data());
    // (Requesting the next group's records into L2 during the first row block's products gained
    // ~3% at 64 rows and lost ~5% in prefill: not done.)
    for (int64_t m = m_begin; m < m_end; m += kTileRows)
      GroupTile<Tiles, SUB, kMin, kS>(w, quants->data(), a, g, m / kTileRows,
                                      std::min<int64_t>(kTileRows, num_rows - m), bias, out,
                                      ring->data());
  }
}

template <class Tiles, int SUB, bool kMin, cpu::ScaleKind kS>
void Run(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
         float* out, ThreadPool* pool) {
  AmxActs a;
  a.rows = (num_rows + kTileRows - 1) / kTileRows * kTileRows;
  a.cols = w.cols;
  a.num_sub = w.num_sub;
  a.sub = SUB;
  a.xq.Resize(a.rows * a.cols);
  a.sx.Resize(a.rows * (a.cols / kActBlock));
  a.xsum.Resize(a.rows * a.num_sub);
  const int num_threads = pool ? pool->num_threads() : 1;
  if (num_threads > 1) {
    pool->ParallelFor(num_rows, 1,
                      [&](int64_t b, int64_t e, int) { QuantizeRows(x, b, e, w.traits, &a); });
  } else {
    QuantizeRows(x, 0, num_rows, w.traits, &a);
  }
  ZeroRows(num_rows, &a);
  // Tiles of activation rows (about 1 MiB of int8, half of Sapphire Rapids' L2) stay in L2 while
  // the weight groups of one thread stream past them. More than matmul.cc's 256 KiB because each
  // group's signed copy is made once per tile (4864 columns: 13 row blocks instead of 3; measured
  // 10% faster for Q4_0 896 x 4864).
  const int64_t tile = std::max<int64_t>(kTileRows, (1 << 20) / w.cols / kTileRows * kTileRows);
  auto work = [&](int64_t g_begin, int64_t g_end, int) {
    thread_local AlignedBuffer<int8_t> quants;
    thread_local AlignedBuffer<int32_t> ring;
    Tiles::Configure(ConfigFor(SUB));
    for (int64_t m = 0; m < num_rows; m += tile)
      Groups<Tiles, SUB, kMin, kS>(w, a, num_rows, g_begin, g_end, m, std::min(a.rows, m + tile),
                                   bias, out, &quants, &ring);
    Tiles::Release();
  };
  if (num_threads > 1) {
    pool->ParallelFor(w.num_groups, 1, work);
  } else {
    work(0, w.num_groups, 0);
  }
}

// One instantiation per scale storage (cpu::ScaleKind): with a run-time choice in the scaling
// the k-quants' integer path sat in every kernel's loop and made the Q8_0 kernel ~15% slower
// (prefill on a Sapphire Rapids).
template <class Tiles, int SUB, bool kMin>
void RunForScales(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
                  float* out, ThreadPool* pool) {
  switch (cpu::ScaleKindOf(w)) {
    case cpu::ScaleKind::kInt8:
      return Run<Tiles, SUB, kMin, cpu::ScaleKind::kInt8>(w, x, num_rows, bias, out, pool);
    case cpu::ScaleKind::kF16:
      return Run<Tiles, SUB, kMin, cpu::ScaleKind::kF16>(w, x, num_rows, bias, out, pool);
    default:
      return Run<Tiles, SUB, kMin, cpu::ScaleKind::kF32>(w, x, num_rows, bias, out, pool);
  }
}

template <class Tiles>
void RunFor(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
            float* out, ThreadPool* pool) {
  const bool min = w.traits.has_min;
  if (w.traits.sub_block == 32) {
    (min ? RunForScales<Tiles, 32, true> : RunForScales<Tiles, 32, false>)(w, x, num_rows, bias,
                                                                           out, pool);
  } else {
    (min ? RunForScales<Tiles, 16, true> : RunForScales<Tiles, 16, false>)(w, x, num_rows, bias,
                                                                           out, pool);
  }
}

}  // namespace

void RunQuantizedAmx(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                     const float* bias, float* out, ThreadPool* pool) {
  RunFor<amx::HardwareTiles>(w, x, num_rows, bias, out, pool);
}

void RunQuantizedAmxOnModel(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                            const float* bias, float* out, ThreadPool* pool) {
  RunFor<ref::ModelTiles>(w, x, num_rows, bias, out, pool);
}

}  // namespace tinyserve::kernels
