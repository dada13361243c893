// AVX-512 (F/BW/VL/DQ + VNNI) MatMul kernels. Quantized weights: one 512-bit register holds 4
// quants of each of the 16 rows of a group; a broadcast of 4 activation bytes meets all 16 rows
// in one vpdpbusd (u8 weights x s8 activations -> s32); each loaded weight register serves up
// to 8 activation rows and each broadcast two groups (QuantTile). 4-, 5- and 6-bit quants are
// unpacked in registers (and/shift/or, vpshufb through the format's 16-entry table), or, for many
// rows, once per group pair into a scratch that every row tile reads (UnpackPair). Float weights:
// 4 weight rows x up to 4 activation rows of f32 FMA. GCC 12's AVX-512 headers trip -Wuninitialized
// on their own _mm512_undefined_* helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_avx512_shared.h"
#include "kernels/matmul_internal.h"

namespace tinyserve::kernels {
namespace {

// 4 activation bytes broadcast to every 32-bit lane (folds into vpdpbusd's {1to16} operand).
inline __m512i Broadcast4(const int8_t* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }

// The largest of each of 8 vectors' 16 lanes, as two vectors: 128-bit chunk c of max4[h] holds
// row 4h + c's in all 4 lanes. Halves folded pairwise across the rows (each shuffle serves two
// rows), then within the chunks: 26 instructions for 8 rows, where 8 separate reductions take 64.
// Max is exact, so each row's is the one a reduction of its own gives.
inline void RowMaxima(const __m512 (&a)[8], __m512 (&max4)[2]) {
  __m512 x[4];
  for (int p = 0; p < 4; ++p) {  // chunks 0, 1: row 2p's 8 partial maxima; 2, 3: row 2p + 1's
    x[p] = _mm512_max_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xEE));
  }
  for (int h = 0; h < 2; ++h) {  // chunk c: row 4h + c's 4 partial maxima
    const __m512 y = _mm512_max_ps(_mm512_shuffle_f32x4(x[2 * h], x[2 * h + 1], 0x88),
                                   _mm512_shuffle_f32x4(x[2 * h], x[2 * h + 1], 0xDD));
    const __m512 z = _mm512_max_ps(y, _mm512_permute_ps(y, 0x4E));
    max4[h] = _mm512_max_ps(z, _mm512_permute_ps(z, 0xB1));
  }
}

// Rows [m, m + kRowTile) of one full tile. A block's 8 rows are laid out as the tile's 256
// contiguous bytes ([chunk][row][4], QuantizedActs), so they are quantized together: their maxima
// from one reduction (RowMaxima), their reciprocals and scales from one division each (row by row,
// a reduction and two scalar divisions each: one thread, best of 3,000 on Zen 5, 64 x 896 took
// 8.7-8.9 us, now 7.5-7.8; 64 x 4,864 48.5 -> 42.7-43.6), and their bytes written through an 8 x 8
// transpose of 4-byte chunks: 8 stores of 32 bytes, where one row at a time took 8 stores of 4
// bytes each, extracted one by one (vpextrd), and recomputed its indices per block; their scales
// and sums are runs of 8 too. The same bytes and numbers as QuantizeBlock32 for finite inputs (a
// NaN may be kept by one max order and dropped by the other; the product is garbage either way).
void QuantizeTileAvx512(const float* x, int64_t ldx, int64_t m, int64_t col_begin, int64_t col_end,
                        const QuantTraits& traits, QuantizedActs* acts) {
  static_assert(kRowTile == 8);
  int8_t* xq = acts->xq.data() + acts->XqIndex(m, 0);  // block b's bytes at b * 256
  float* sx = acts->sx.data() + acts->SxIndex(m, 0);   // row r of block b at b * 8 + r
  int32_t* init = acts->init.data() + acts->SubIndex(m, 0);
  float* xsum = acts->xsum.data() + acts->SubIndex(m, 0);
  const int per_block = traits.sub_block == 32 ? 1 : 2;  // sub-blocks
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 limit = _mm512_set1_ps(127.0f);
  // Lanes 0, 4, ..., 28 of two vectors: the 8 rows' values from RowMaxima's layout.
  const __m512i firsts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t blk = col_begin / kActBlock; blk < col_end / kActBlock; ++blk) {
    __m512 v[kRowTile][2], a[kRowTile];
    for (int r = 0; r < kRowTile; ++r) {
      const float* xr = x + r * ldx + blk * kActBlock - col_begin;
      v[r][0] = _mm512_loadu_ps(xr);
      v[r][1] = _mm512_loadu_ps(xr + 16);
      a[r] = _mm512_max_ps(_mm512_andnot_ps(sign, v[r][0]), _mm512_andnot_ps(sign, v[r][1]));
    }
    __m512 amax[2], inverse[2];
    RowMaxima(a, amax);
    for (int h = 0; h < 2; ++h) {
      // 127 / amax, 0 where amax is 0 (NaN stays NaN: unordered counts as not equal).
      const __mmask16 nonzero = _mm512_cmp_ps_mask(amax[h], _mm512_setzero_ps(), _CMP_NEQ_UQ);
      inverse[h] = _mm512_maskz_div_ps(nonzero, limit, amax[h]);
    }
    float* scales = sx + blk * kRowTile;  // amax / 127 of rows 0..7
    _mm256_storeu_ps(scales, _mm512_castps512_ps256(_mm512_div_ps(
                                 _mm512_permutex2var_ps(amax[0], firsts, amax[1]), limit)));
    __m256i row[kRowTile];
    for (int r = 0; r < kRowTile; ++r) {
      const __m512 inv = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * (r % 4)), inverse[r / 4]);
      const cpu::QuantizedBlock32 q = cpu::RoundBlock32(v[r][0], v[r][1], inv, scales[r], &row[r]);
      const int64_t i0 = blk * per_block * kRowTile + r;
      StoreBlockSums(traits, q.sx, q.s0, q.s1, init, xsum, i0, i0 + kRowTile);
    }
    // Chunk c of rows 0..7: 32-bit interleave of row pairs, 64-bit of pair pairs, then the
    // 128-bit halves (chunks c and c + 4) of rows 0-3 and 4-7 joined.
    __m256i t[8], u[8];
    for (int p = 0; p < 4; ++p) {
      t[2 * p] = _mm256_unpacklo_epi32(row[2 * p], row[2 * p + 1]);      // chunks 0, 1 | 4, 5
      t[2 * p + 1] = _mm256_unpackhi_epi32(row[2 * p], row[2 * p + 1]);  // chunks 2, 3 | 6, 7
    }
    for (int h = 0; h < 2; ++h) {  // rows 0-3, rows 4-7
      const __m256i* th = t + 4 * h;
      u[4 * h + 0] = _mm256_unpacklo_epi64(th[0], th[2]);  // chunk 0 | 4
      u[4 * h + 1] = _mm256_unpackhi_epi64(th[0], th[2]);  // chunk 1 | 5
      u[4 * h + 2] = _mm256_unpacklo_epi64(th[1], th[3]);  // chunk 2 | 6
      u[4 * h + 3] = _mm256_unpackhi_epi64(th[1], th[3]);  // chunk 3 | 7
    }
    auto* out = reinterpret_cast<__m256i*>(xq + blk * kRowTile * kActBlock);
    for (int c = 0; c < 4; ++c) {
      _mm256_storeu_si256(out + c, _mm256_permute2x128_si256(u[c], u[4 + c], 0x20));
      _mm256_storeu_si256(out + c + 4, _mm256_permute2x128_si256(u[c], u[4 + c], 0x31));
    }
  }
}

void QuantizeActsAvx512(const float* x, int64_t ldx, int64_t row_begin, int64_t row_end,
                        int64_t col_begin, int64_t col_end, const QuantTraits& traits,
                        QuantizedActs* acts) {
  alignas(32) int8_t q[kActBlock];
  for (int64_t m = row_begin; m < row_end;) {
    const float* xr = x + (m - row_begin) * ldx;
    if (m == acts->TileStart(m) && acts->TileRows(m) == kRowTile && m + kRowTile <= row_end) {
      QuantizeTileAvx512(xr, ldx, m, col_begin, col_end, traits, acts);
      m += kRowTile;
      continue;
    }
    int8_t* xq = acts->xq.data() + acts->XqIndex(m, 0);
    const int64_t chunk_stride = acts->TileRows(m) * 4;
    for (int64_t blk = col_begin / kActBlock; blk < col_end / kActBlock; ++blk) {
      const cpu::QuantizedBlock32 r = cpu::QuantizeBlock32(xr + blk * kActBlock - col_begin, q);
      acts->sx[acts->SxIndex(m, blk)] = r.sx;
      for (int c = 0; c < kActBlock / 4; ++c)
        std::memcpy(xq + (blk * 8 + c) * chunk_stride, q + c * 4, 4);
      StoreBlockSums(traits, r.sx, r.s0, r.s1, m, blk, acts);
    }
    ++m;
  }
}

// How the quants of a record are stored (matmul_internal.h): 8-bit, 4-bit (identity or a
// codebook), 4-bit lines plus a high line of 1 (k5) or 2 (k6) bits per weight; kUnpacked: a
// group pair's records already unpacked by UnpackGroup (UnpackedPair).
enum class Quants { k8, k4, k4Table, k5, k6, kUnpacked };

constexpr int HighBits(Quants q) { return q == Quants::k5 ? 1 : q == Quants::k6 ? 2 : 0; }

// Row tiles from which a group pair is unpacked once, into 8-bit records and f32 scales that
// every row tile then reads (UnpackGroup), instead of each tile unpacking the same records in
// registers. Only for the formats whose unpacking is long: int8 scales times super-block factors
// (k-quants, IQ4_XS) or high bits (Q5_0/Q5_1/Q5_K/Q6_K); per record and tile that work was about
// half as many instructions as the 128 vpdpbusd, so at 512 rows Q4_K ran at ~45% of the int8 dot
// peak and Q6_K at ~31-38% against Q8_0's ~60-70% (bench_matmul, Zen 5). Plain nibbles (Q4_0,
// Q4_1, IQ4_NL) cost an and and a shift per line: unpacked ahead they measured no faster (and
// 2-5% slower at 64 rows). Below 4 tiles the stores and reloads would cost about what they save.
// The numbers are the same either way (the same bytes and scales reach the same sums).
constexpr int64_t kUnpackMinTiles = 4;

// A group pair's records as UnpackGroup leaves them: quants in the 8-bit layout
// ([num_sub][S / 4][16 rows][4]), scales and offsets (formats with a minimum) as [num_sub][16] f32.
struct UnpackedPair {
  const uint8_t* quants[2];
  const float* scales[2];
  const float* offsets[2];
};

// Scales (i = 0) or offsets (i = 1) of sub-block b of the tile's group j.
template <Quants kQ>
inline __m512 TileScales(const PackedMatrix::Impl& w, const UnpackedPair* up, int64_t g, int j,
                         int64_t b, int i) {
  if constexpr (kQ == Quants::kUnpacked) {
    return _mm512_load_ps((i == 0 ? up->scales[j] : up->offsets[j]) + b * kGroupRows);
  } else {
    return cpu::LoadScales(w, g + j, b, i);
  }
}

// Output rows [m, m + MT) of row groups g .. g + NG - 1; [m, m + MT) is one whole tile of the
// activations. Two groups per tile (NG = 2) load each broadcast activation once for both: with
// one group a record's 64 vpdpbusd needed 72 loads (64 broadcasts, 8 weight lines), more than the
// two load ports feed, so the loop ran near 40% of the VNNI peak.
//
// Which weight lines a row tile requests into L2 while it reads each record. A matmul with a
// single row tile (decode up to 8 rows) requests its own records kWeightPrefetchBytes ahead
// (`ahead`; on AMD only from kAmdReadAheadMinRows rows, ReadsWeightsAhead). With several row tiles
// the first tile of a group pair streams the records from memory and the others find them in L1:
// requesting nothing then left memory idle while they computed (at 16 rows a matmul took the sum of
// its memory time and its compute time). So each tile of a pair requests its share of the next
// pair's records (`next`, `next_step` bytes per record read; the pair's records are contiguous),
// spread over its loop, and the next pair's first tile finds them in L2. (Every tile requesting its
// own records again cost ~5% of a 512-row tile's instructions.) `ahead` is an argument, not a
// template parameter: one predictable branch per record, and half the instantiations (this file's
// compile time had doubled).
template <int MT, int NG, int SUB, bool kMin, Quants kQ>
void QuantTile(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g, int64_t m,
               bool ahead, const uint8_t* next, int64_t next_step, const float* bias, OutTile out,
               const UnpackedPair* up = nullptr) {
  constexpr bool kEightBit = kQ == Quants::k8 || kQ == Quants::kUnpacked;
  const uint8_t* rec[NG];
  for (int j = 0; j < NG; ++j) rec[j] = kQ == Quants::kUnpacked ? up->quants[j] : w.Group(g + j);
  const int64_t rec_step = kQ == Quants::kUnpacked ? SUB * kGroupRows : w.record_bytes;
  const int8_t* xq = a.xq.data() + m * a.cols;               // [cols / 4][MT][4]
  const float* sx = a.sx.data() + m * (a.cols / kActBlock);  // [cols / 32][MT]
  const int32_t* init = a.init.data() + m * a.num_sub;       // [num_sub][MT]
  const float* xsum = a.xsum.data() + m * a.num_sub;         // [num_sub][MT]
  constexpr int kHigh = HighBits(kQ);
  const __m512i table = cpu::NibbleTableVector(w);
  __m512 acc[NG][MT];
  for (int j = 0; j < NG; ++j)
    for (int r = 0; r < MT; ++r) acc[j][r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.num_sub; ++b) {
    const int8_t* xb = xq + b * (SUB / 4) * MT * 4;
    if (ahead)
      for (int j = 0; j < NG; ++j) PrefetchToL2(rec[j] + kWeightPrefetchBytes, w.record_bytes);
    if (next_step > 0) PrefetchToL2(next + b * next_step, next_step);
    // Enough independent chains to hide the vpdpbusd latency: one group takes two per row (about
    // 20% faster than one chain at 8 rows on Zen), two groups one per row and group. Integer sums
    // are exact, so the split changes no result.
    constexpr int kSplit = NG == 1 ? 2 : 1;
    __m512i dot[NG][MT], dot2[NG][MT];
    for (int j = 0; j < NG; ++j)
      for (int r = 0; r < MT; ++r) {
        dot[j][r] = _mm512_set1_epi32(init[b * MT + r]);
        if constexpr (kSplit == 2) dot2[j][r] = _mm512_setzero_si512();
      }
    __m512i hb[NG];
    for (int j = 0; j < NG; ++j)
      hb[j] =
          kHigh > 0 ? _mm512_loadu_si512(rec[j] + SUB * kGroupRows / 2) : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int c = 0; c < SUB / 4; c += 2) {
      // Chunks c and c + 1 of each group: two 64-byte lines, or the two nibbles of one.
      __m512i wv[NG], wv2[NG];
      for (int j = 0; j < NG; ++j) {
        if constexpr (kEightBit) {
          wv[j] = _mm512_loadu_si512(rec[j] + c * 64);
          wv2[j] = _mm512_loadu_si512(rec[j] + c * 64 + 64);
        } else {
          cpu::UnpackLine<kQ == Quants::k4Table, kHigh>(rec[j], c / 2, table, hb[j], &wv[j],
                                                        &wv2[j]);
        }
      }
      for (int r = 0; r < MT; ++r) {
        const __m512i x = Broadcast4(xb + (c * MT + r) * 4);
        for (int j = 0; j < NG; ++j) dot[j][r] = _mm512_dpbusd_epi32(dot[j][r], wv[j], x);
      }
      for (int r = 0; r < MT; ++r) {
        const __m512i x = Broadcast4(xb + ((c + 1) * MT + r) * 4);
        for (int j = 0; j < NG; ++j) {
          if constexpr (kSplit == 2) {
            dot2[j][r] = _mm512_dpbusd_epi32(dot2[j][r], wv2[j], x);
          } else {
            dot[j][r] = _mm512_dpbusd_epi32(dot[j][r], wv2[j], x);
          }
        }
      }
    }
    const float* sxb = sx + (b * SUB / kActBlock) * MT;
    for (int j = 0; j < NG; ++j) {
      if constexpr (kSplit == 2)
        for (int r = 0; r < MT; ++r) dot[j][r] = _mm512_add_epi32(dot[j][r], dot2[j][r]);
      const __m512 scale = TileScales<kQ>(w, up, g, j, b, 0);
      for (int r = 0; r < MT; ++r) {
        const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(sxb[r]));
        acc[j][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[j][r]), s, acc[j][r]);
      }
      if constexpr (kMin) {
        const __m512 offset = TileScales<kQ>(w, up, g, j, b, 1);
        for (int r = 0; r < MT; ++r)
          acc[j][r] = _mm512_fmadd_ps(offset, _mm512_set1_ps(xsum[b * MT + r]), acc[j][r]);
      }
      rec[j] += rec_step;
    }
  }
  cpu::StoreGroups<NG, MT>(w, acc, g, m, bias, out);
}

// Group g's records unpacked for Quants::kUnpacked: each record's 4-bit lines (with their high
// bits) as the 8-bit lines UnpackLine gives, its scales (and offsets) as LoadScales gives them.
template <int SUB, bool kMin, Quants kQ>
void UnpackGroup(const PackedMatrix::Impl& w, int64_t g, uint8_t* quants, float* scales,
                 float* offsets) {
  constexpr int kHigh = HighBits(kQ);
  const __m512i table = cpu::NibbleTableVector(w);
  const uint8_t* rec = w.Group(g);
  for (int64_t b = 0; b < w.num_sub; ++b, rec += w.record_bytes) {
    const __m512i hb =
        kHigh > 0 ? _mm512_loadu_si512(rec + SUB * kGroupRows / 2) : _mm512_setzero_si512();
    uint8_t* q = quants + b * SUB * kGroupRows;
    for (int p = 0; p < SUB / 8; ++p) {
      __m512i low, high;
      cpu::UnpackLine<kQ == Quants::k4Table, kHigh>(rec, p, table, hb, &low, &high);
      _mm512_store_si512(q + p * 128, low);
      _mm512_store_si512(q + p * 128 + 64, high);
    }
    _mm512_store_ps(scales + b * kGroupRows, cpu::LoadScales(w, g, b, 0));
    if constexpr (kMin) _mm512_store_ps(offsets + b * kGroupRows, cpu::LoadScales(w, g, b, 1));
  }
}

// Unpacks groups g and g + 1 into this thread's scratch (grown to the largest matrix seen, kept
// between calls) and returns where they are.
template <int SUB, bool kMin, Quants kQ>
UnpackedPair UnpackPair(const PackedMatrix::Impl& w, int64_t g) {
  thread_local AlignedBuffer<uint8_t> scratch;
  const int64_t quant_bytes = w.num_sub * SUB * kGroupRows;
  const int64_t scale_floats = w.num_sub * kGroupRows;
  const int64_t per_group = quant_bytes + 2 * scale_floats * int64_t{sizeof(float)};
  if (static_cast<int64_t>(scratch.size()) < 2 * per_group) scratch.Resize(2 * per_group);
  UnpackedPair up;
  for (int j = 0; j < 2; ++j) {
    uint8_t* base = scratch.data() + j * per_group;
    auto* scales = reinterpret_cast<float*>(base + quant_bytes);
    UnpackGroup<SUB, kMin, kQ>(w, g + j, base, scales, scales + scale_floats);
    up.quants[j] = base;
    up.scales[j] = scales;
    up.offsets[j] = scales + scale_floats;
  }
  return up;
}

// Rows [m, m_end) (a short last tile, under 8 rows) of group g.
template <int SUB, bool kMin, Quants kQ>
void ShortTile(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g, int64_t m,
               int64_t m_end, bool ahead, const uint8_t* next, int64_t next_step, const float* bias,
               OutTile out) {
  switch (m_end - m) {
    case 7:
      return QuantTile<7, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 6:
      return QuantTile<6, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 5:
      return QuantTile<5, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 4:
      return QuantTile<4, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 3:
      return QuantTile<3, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 2:
      return QuantTile<2, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    case 1:
      return QuantTile<1, 1, SUB, kMin, kQ>(w, a, g, m, ahead, next, next_step, bias, out);
    default:
      return;
  }
}

// Groups [g_begin, g_end) two at a time (an odd last one alone) x rows [m_begin, m_end) in tiles of
// 8 rows (the last may be short), with the weight requests described at QuantTile.
template <int SUB, bool kMin, Quants kQ>
void QuantGroups(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g_begin,
                 int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias, OutTile out) {
  const int64_t full_end = m_begin + (m_end - m_begin) / 8 * 8;
  const int64_t tiles = (m_end - m_begin + 7) / 8;
  const int64_t group_bytes = w.num_sub * w.record_bytes;
  // Full tiles enough to unpack each group pair once (kUnpackMinTiles), for the formats above.
  const bool unpack = kQ != Quants::k8 && (w.int_scales || w.high_bits > 0) &&
                      full_end - m_begin >= kUnpackMinTiles * 8;
  // With several tiles only the first pair's first tile requests its own records (below).
  const bool read_ahead = tiles > 1 || ReadsWeightsAhead(m_end - m_begin);
  for (int64_t g = g_begin; g < g_end; g += 2) {
    const int ng = g + 2 <= g_end ? 2 : 1;
    UnpackedPair up{};
    if constexpr (kQ != Quants::k8) {
      if (unpack && ng == 2) up = UnpackPair<SUB, kMin, kQ>(w, g);
    }
    // The next pair's records (past this range, the caller's next product's: out.then_group),
    // and each tile's share of them.
    const bool last_pair = g + ng >= g_end;
    const int64_t next_g = last_pair ? out.then_group : g + ng;
    const uint8_t* next = w.Group(next_g >= 0 ? next_g : g);  // none (next_g < 0): not read
    const int64_t next_groups =
        next_g < 0 ? 0 : std::min<int64_t>(2, (last_pair ? w.num_groups : g_end) - next_g);
    const int64_t share = (next_groups * group_bytes + tiles - 1) / tiles;
    const int64_t step = tiles > 1 ? (share + w.num_sub - 1) / w.num_sub : 0;
    int64_t t = 0;
    for (int64_t m = m_begin; m < m_end; m += 8, ++t) {
      const uint8_t* nt = next + t * share;
      // A single tile requests its own records ahead; with several, the first pair's first tile
      // (nothing requested them before it).
      const bool ahead = read_ahead && m == m_begin && (g == g_begin || tiles == 1);
      if (m < full_end && ng == 2) {
        if constexpr (kQ != Quants::k8) {
          if (unpack) {
            // The records were read by UnpackPair: nothing of them to request ahead.
            QuantTile<8, 2, SUB, kMin, Quants::kUnpacked>(w, a, g, m, false, nt, step, bias, out,
                                                          &up);
            continue;
          }
        }
        QuantTile<8, 2, SUB, kMin, kQ>(w, a, g, m, ahead, nt, step, bias, out);
        continue;
      }
      // One group at a time: an odd last group, or the short last tile of each group of the pair
      // (which split the tile's share of the requests).
      for (int64_t j = g; j < g + ng; ++j) {
        const int64_t js = step / ng;
        const uint8_t* jn = nt + (j - g) * js * w.num_sub;
        if (m < full_end) {
          QuantTile<8, 1, SUB, kMin, kQ>(w, a, j, m, ahead, jn, js, bias, out);
        } else {
          ShortTile<SUB, kMin, kQ>(w, a, j, m, m_end, ahead, jn, js, bias, out);
        }
      }
    }
  }
}

template <int SUB, bool kMin>
QuantKernelFn ForQuants(const PackedMatrix::Impl& w) {
  if (!w.nibbles) return QuantGroups<SUB, kMin, Quants::k8>;
  if (w.high_bits == 1) return QuantGroups<SUB, kMin, Quants::k5>;
  if (w.high_bits == 2) return QuantGroups<SUB, kMin, Quants::k6>;
  for (int i = 0; i < 16; ++i)
    if (w.table[i] != i) return QuantGroups<SUB, kMin, Quants::k4Table>;
  return QuantGroups<SUB, kMin, Quants::k4>;
}

void QuantKernelAvx512(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g_begin,
                       int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias,
                       OutTile out) {
  const bool min = w.traits.has_min;
  const QuantKernelFn fn = w.traits.sub_block == 32
                               ? (min ? ForQuants<32, true>(w) : ForQuants<32, false>(w))
                               : (min ? ForQuants<16, true>(w) : ForQuants<16, false>(w));
  fn(w, a, g_begin, g_end, m_begin, m_end, bias, out);
  // Non-temporal stores are not ordered with the later stores that tell other threads the
  // output is done: fence them here.
  if (out.stream) _mm_sfence();
}

// 16 weights of a row starting at k as f32; `mask` selects the valid ones.
template <DType kType>
inline __m512 LoadW(const void* row, int64_t k, __mmask16 mask) {
  if constexpr (kType == DType::kF32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + k);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(row) + k);
    if constexpr (kType == DType::kF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType kType, int NT, int MT>
void FloatTile(const PackedMatrix::Impl& w, const float* x, int64_t n, int64_t m, const float* bias,
               float* out) {
  constexpr int64_t kElem = kType == DType::kF32 ? 4 : 2;
  const int64_t cols = w.cols;
  const void* rows[NT];
  for (int i = 0; i < NT; ++i)
    rows[i] = static_cast<const uint8_t*>(w.float_data) + (n + i) * cols * kElem;
  __m512 acc[NT][MT];
  for (int i = 0; i < NT; ++i)
    for (int j = 0; j < MT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < cols; k += 16) {
    const __mmask16 mask =
        cols - k >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (cols - k)) - 1);
    __m512 xv[MT];
    for (int j = 0; j < MT; ++j) xv[j] = _mm512_maskz_loadu_ps(mask, x + (m + j) * cols + k);
    for (int i = 0; i < NT; ++i) {
      const __m512 wv = LoadW<kType>(rows[i], k, mask);
      for (int j = 0; j < MT; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NT; ++i)
    for (int j = 0; j < MT; ++j) {
      const float v = _mm512_reduce_add_ps(acc[i][j]);
      out[(m + j) * w.rows + n + i] = bias ? v + bias[n + i] : v;
    }
}

template <DType kType, int NT>
void FloatRows(const PackedMatrix::Impl& w, const float* x, int64_t n, int64_t m_begin,
               int64_t m_end, const float* bias, float* out) {
  int64_t m = m_begin;
  for (; m + 4 <= m_end; m += 4) FloatTile<kType, NT, 4>(w, x, n, m, bias, out);
  switch (m_end - m) {
    case 3:
      FloatTile<kType, NT, 3>(w, x, n, m, bias, out);
      break;
    case 2:
      FloatTile<kType, NT, 2>(w, x, n, m, bias, out);
      break;
    case 1:
      FloatTile<kType, NT, 1>(w, x, n, m, bias, out);
      break;
    default:
      break;
  }
}

template <DType kType>
void FloatKernelTyped(const PackedMatrix::Impl& w, const float* x, int64_t n_begin, int64_t n_end,
                      int64_t m_begin, int64_t m_end, const float* bias, float* out) {
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) FloatRows<kType, 4>(w, x, n, m_begin, m_end, bias, out);
  for (; n < n_end; ++n) FloatRows<kType, 1>(w, x, n, m_begin, m_end, bias, out);
}

void FloatKernelAvx512(const PackedMatrix::Impl& w, const float* x, int64_t n_begin, int64_t n_end,
                       int64_t m_begin, int64_t m_end, const float* bias, float* out) {
  switch (w.dtype) {
    case DType::kF16:
      return FloatKernelTyped<DType::kF16>(w, x, n_begin, n_end, m_begin, m_end, bias, out);
    case DType::kBF16:
      return FloatKernelTyped<DType::kBF16>(w, x, n_begin, n_end, m_begin, m_end, bias, out);
    default:
      return FloatKernelTyped<DType::kF32>(w, x, n_begin, n_end, m_begin, m_end, bias, out);
  }
}

}  // namespace

MatMulKernels Avx512Kernels() { return {QuantizeActsAvx512, QuantKernelAvx512, FloatKernelAvx512}; }

}  // namespace tinyserve::kernels
