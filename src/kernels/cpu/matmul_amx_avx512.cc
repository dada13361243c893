// Quantized MatMul on the AMX tile unit (Isa::kAmx). One tdpbsud multiplies 16 activation rows
// (int8, row-major) by one sub-block of a 16-row weight group: the group's record of quants
// ([S / 4][16 rows][4 bytes], matmul_internal.h) is already the tile unit's B layout, so 8-bit
// quants load straight from the packed weights and 4-bit ones are unpacked once per group into
// a small buffer. Each product is a 16 x 16 int32 tile for one sub-block; it is stored and scaled
// into f32 accumulators with AVX-512 exactly as the AVX-512 kernel does (same integer dot, then
// the same fused multiply-adds in the same order), so both paths agree bit for bit and the
// choice between them never changes a result. The per-sub-block scaling is the float work that
// bounds this kernel, as it bounds llama.cpp's and SGLang's. The same kernel runs over
// kernels/ref/amx_tiles_ref.h's model of the unit so that it is tested on CPUs without AMX.
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

// Activations for the tile unit: row-major int8 rows padded with zero rows to a multiple of
// kTileRows (a tile always loads 16 rows), and per row the same block scale and per-sub-block
// sums as QuantizedActs.
struct AmxActs {
  int64_t rows = 0;  // padded
  int64_t cols = 0;
  int64_t num_sub = 0;
  AlignedBuffer<int8_t> xq;   // [rows][cols]
  AlignedBuffer<float> sx;    // [rows][cols / 32]
  AlignedBuffer<int32_t> init;  // [rows][num_sub]: -zero * sum of xq over the sub-block
  AlignedBuffer<float> xsum;  // [rows][num_sub]: sx * sum of xq over the sub-block
};

void QuantizeRows(const float* x, int64_t row_begin, int64_t row_end, const QuantTraits& traits,
                  AmxActs* a) {
  const int64_t blocks = a->cols / kActBlock;
  for (int64_t m = row_begin; m < row_end; ++m) {
    int8_t* xq = a->xq.data() + m * a->cols;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      alignas(32) int8_t q[kActBlock];
      const cpu::QuantizedBlock32 r = cpu::QuantizeBlock32(x + m * a->cols + blk * kActBlock, q);
      std::memcpy(xq + blk * kActBlock, q, kActBlock);
      a->sx[m * blocks + blk] = r.sx;
      if (traits.sub_block == 32) {
        a->init[m * a->num_sub + blk] = -traits.zero_point * (r.s0 + r.s1);
        a->xsum[m * a->num_sub + blk] = r.sx * static_cast<float>(r.s0 + r.s1);
      } else {
        a->init[m * a->num_sub + 2 * blk] = -traits.zero_point * r.s0;
        a->init[m * a->num_sub + 2 * blk + 1] = -traits.zero_point * r.s1;
        a->xsum[m * a->num_sub + 2 * blk] = r.sx * static_cast<float>(r.s0);
        a->xsum[m * a->num_sub + 2 * blk + 1] = r.sx * static_cast<float>(r.s1);
      }
    }
  }
}

// The zero padding rows: no scale, no sums (their products are computed and never stored).
void ZeroRows(int64_t row_begin, AmxActs* a) {
  const int64_t n = a->rows - row_begin;
  if (n <= 0) return;
  std::memset(a->xq.data() + row_begin * a->cols, 0, n * a->cols);
  std::fill_n(a->sx.data() + row_begin * (a->cols / kActBlock), n * (a->cols / kActBlock), 0.0f);
  std::fill_n(a->init.data() + row_begin * a->num_sub, n * a->num_sub, 0);
  std::fill_n(a->xsum.data() + row_begin * a->num_sub, n * a->num_sub, 0.0f);
}

// Tile registers: C0/C1 products of an even/odd sub-block, A0/A1 its activations, B0/B1 its
// weights (two sub-blocks in flight so one's scaling overlaps the other's product).
enum TileReg { kC0 = 0, kC1 = 1, kA0 = 2, kA1 = 3, kB0 = 4, kB1 = 5 };

amx::TileConfig ConfigFor(int sub) {
  amx::TileConfig cfg;
  for (int c : {kC0, kC1}) cfg.Set(c, kTileRows, 64);
  for (int t : {kA0, kA1}) cfg.Set(t, kTileRows, sub);
  for (int t : {kB0, kB1}) cfg.Set(t, sub / 4, 64);
  return cfg;
}

// Where the 8-bit quants of sub-block b of the current group are: the packed record itself, or
// the group's unpacked copy.
struct GroupQuants {
  const uint8_t* base = nullptr;
  int64_t stride = 0;  // bytes from one sub-block to the next
  const uint8_t* Sub(int64_t b) const { return base + b * stride; }
};

template <bool kTable>
void UnpackGroup(const PackedMatrix::Impl& w, const uint8_t* rec, uint8_t* dst) {
  const __m512i table = cpu::NibbleTableVector(w);
  const int sub = w.traits.sub_block;
  for (int64_t b = 0; b < w.num_sub; ++b, rec += w.record_bytes) {
    for (int p = 0; p < sub / 8; ++p) {
      __m512i low, high;
      cpu::UnpackNibbles<kTable>(rec + p * 64, table, &low, &high);
      _mm512_storeu_si512(dst + (b * sub / 4 + 2 * p) * 64, low);
      _mm512_storeu_si512(dst + (b * sub / 4 + 2 * p + 1) * 64, high);
    }
  }
}

// Folds one sub-block's int32 products c[16 rows][16 weight rows] into acc, as QuantTile in
// matmul_avx512.cc: acc = fma(float(dot + init), scale * sx, acc), then the minimum's term.
template <int SUB, bool kMin>
inline void Scale(const PackedMatrix::Impl& w, const uint8_t* rec, const AmxActs& a, int64_t m0,
                  int64_t b, const int32_t* c, __m512* acc) {
  const uint8_t* scales = rec + w.quant_bytes;
  const __m512 scale = cpu::LoadScales(w, scales, 0);
  const int64_t blocks = a.cols / kActBlock;
  const int64_t blk = b * SUB / kActBlock;
  for (int r = 0; r < kTileRows; ++r) {
    const int64_t m = m0 + r;
    const __m512i dot = _mm512_add_epi32(_mm512_load_si512(c + 16 * r),
                                         _mm512_set1_epi32(a.init[m * a.num_sub + b]));
    const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(a.sx[m * blocks + blk]));
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r]);
  }
  if constexpr (kMin) {
    const __m512 offset = cpu::LoadScales(w, scales, 1);
    for (int r = 0; r < kTileRows; ++r)
      acc[r] = _mm512_fmadd_ps(offset, _mm512_set1_ps(a.xsum[(m0 + r) * a.num_sub + b]), acc[r]);
  }
}

// Output rows [m0, m0 + 16) (of which the first `valid_m` exist) x weight row group g.
template <class Tiles, int SUB, bool kMin>
void GroupTile(const PackedMatrix::Impl& w, const GroupQuants& q, const AmxActs& a, int64_t g,
               int64_t m0, int64_t valid_m, const float* bias, float* out) {
  alignas(64) int32_t c0[kTileRows * 16];
  alignas(64) int32_t c1[kTileRows * 16];
  __m512 acc[kTileRows];
  for (auto& v : acc) v = _mm512_setzero_ps();
  const uint8_t* rec = w.Group(g);
  const int8_t* xq = a.xq.data() + m0 * a.cols;
  for (int64_t b = 0; b < w.num_sub; b += 2) {
    const bool pair = b + 1 < w.num_sub;
    Tiles::template Zero<kC0>();
    Tiles::template Load<kA0>(xq + b * SUB, a.cols);
    Tiles::template Load<kB0>(q.Sub(b), 64);
    Tiles::template DotSignedUnsigned<kC0, kA0, kB0>();
    if (pair) {
      Tiles::template Zero<kC1>();
      Tiles::template Load<kA1>(xq + (b + 1) * SUB, a.cols);
      Tiles::template Load<kB1>(q.Sub(b + 1), 64);
      Tiles::template DotSignedUnsigned<kC1, kA1, kB1>();
    }
    Tiles::template Store<kC0>(c0, 64);
    Scale<SUB, kMin>(w, rec + b * w.record_bytes, a, m0, b, c0, acc);
    if (pair) {
      Tiles::template Store<kC1>(c1, 64);
      Scale<SUB, kMin>(w, rec + (b + 1) * w.record_bytes, a, m0, b + 1, c1, acc);
    }
  }
  const int64_t n0 = g * kGroupRows;
  const int64_t valid = std::min<int64_t>(kGroupRows, w.rows - n0);
  const auto mask = static_cast<__mmask16>((1u << valid) - 1);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
  for (int64_t r = 0; r < valid_m; ++r) {
    const __m512 v = bias ? _mm512_add_ps(acc[r], bv) : acc[r];
    _mm512_mask_storeu_ps(out + (m0 + r) * w.rows + n0, mask, v);
  }
}

// Rows [m_begin, m_end) (tile-aligned m_begin) x groups [g_begin, g_end), on the calling thread.
template <class Tiles, int SUB, bool kMin>
void Groups(const PackedMatrix::Impl& w, const AmxActs& a, int64_t num_rows, int64_t g_begin,
            int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias, float* out,
            AlignedBuffer<uint8_t>* unpacked) {
  bool table = false;
  for (int i = 0; i < 16; ++i) table = table || w.table[i] != i;
  for (int64_t g = g_begin; g < g_end; ++g) {
    GroupQuants q{w.Group(g), w.record_bytes};
    if (w.nibbles) {
      unpacked->Resize(w.num_sub * SUB * kGroupRows);
      if (table) {
        UnpackGroup<true>(w, w.Group(g), unpacked->data());
      } else {
        UnpackGroup<false>(w, w.Group(g), unpacked->data());
      }
      q = {unpacked->data(), SUB * kGroupRows};
    }
    for (int64_t m = m_begin; m < m_end; m += kTileRows)
      GroupTile<Tiles, SUB, kMin>(w, q, a, g, m, std::min<int64_t>(kTileRows, num_rows - m), bias,
                                  out);
  }
}

template <class Tiles, int SUB, bool kMin>
void Run(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
         float* out, ThreadPool* pool) {
  AmxActs a;
  a.rows = (num_rows + kTileRows - 1) / kTileRows * kTileRows;
  a.cols = w.cols;
  a.num_sub = w.num_sub;
  a.xq.Resize(a.rows * a.cols);
  a.sx.Resize(a.rows * (a.cols / kActBlock));
  a.init.Resize(a.rows * a.num_sub);
  a.xsum.Resize(a.rows * a.num_sub);
  const int num_threads = pool ? pool->num_threads() : 1;
  if (num_threads > 1) {
    pool->ParallelFor(num_rows, 1, [&](int64_t b, int64_t e, int) {
      QuantizeRows(x, b, e, w.traits, &a);
    });
  } else {
    QuantizeRows(x, 0, num_rows, w.traits, &a);
  }
  ZeroRows(num_rows, &a);
  // Tiles of activation rows (about 256 KiB of int8) stay in L2 while the weight groups of one
  // thread stream past them, as in matmul.cc.
  const int64_t tile =
      std::max<int64_t>(kTileRows, (256 << 10) / w.cols / kTileRows * kTileRows);
  auto work = [&](int64_t g_begin, int64_t g_end, int) {
    thread_local AlignedBuffer<uint8_t> unpacked;
    Tiles::Configure(ConfigFor(SUB));
    for (int64_t m = 0; m < num_rows; m += tile)
      Groups<Tiles, SUB, kMin>(w, a, num_rows, g_begin, g_end, m,
                               std::min(a.rows, m + tile), bias, out, &unpacked);
    Tiles::Release();
  };
  if (num_threads > 1) {
    pool->ParallelFor(w.num_groups, 1, work);
  } else {
    work(0, w.num_groups, 0);
  }
}

template <class Tiles>
void RunFor(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
            float* out, ThreadPool* pool) {
  const bool min = w.traits.has_min;
  if (w.traits.sub_block == 32) {
    (min ? Run<Tiles, 32, true> : Run<Tiles, 32, false>)(w, x, num_rows, bias, out, pool);
  } else {
    (min ? Run<Tiles, 16, true> : Run<Tiles, 16, false>)(w, x, num_rows, bias, out, pool);
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
