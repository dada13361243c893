// bf16 MatMul on the AMX tile unit (Isa::kAmx with AMX-BF16): tdpbf16ps multiplies a 16-row x 32
// tile of activations rounded to bf16 by 32 columns of a 16-row weight group and adds to a 16 x
// 16 f32 tile, so, unlike block-quantized weights, the sums stay in the tile over the whole
// K: one store per output tile, no per-block scaling. The weight group's `bf16_pairs` record
// ([pairs][16 rows][2], matmul_internal.h) is already the unit's B layout: 16 consecutive pairs
// are one 1 KiB tile. Four accumulator tiles cover 32 activation rows x 2 groups, so each tile
// load serves two products. The unit's f32 sums round differently from vdpbf16ps (amx_tiles.h),
// so results differ from the AVX-512 path in the last bits, within matmul.h's bound. The same
// kernel runs over kernels/ref/amx_tiles_ref.h's model (tests on CPUs without AMX).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <bit>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/matmul_internal.h"
#include "kernels/ref/amx_tiles_ref.h"

namespace tinyserve::kernels {
namespace {

constexpr int kTileRows = 16;  // activation rows (and weight rows) per tile
constexpr int kTileCols = 32;  // bf16 values of K per tile (64 bytes per row)

// x rounded to bf16, in tiles: [rows / 16][kpad / 32][16 rows][32], rows padded with zero rows
// to a multiple of 16 and columns with zeros to `kpad` (a multiple of 32), so each tile load
// reads 1 KiB in a row (16 lines the prefetchers follow, not 16 rows kpad apart).
struct Bf16TileActs {
  int64_t rows = 0;
  int64_t kpad = 0;
  AlignedBuffer<uint16_t> x;
  // The tile of rows [m, m + 16) (m a multiple of 16), columns [32 kt, 32 kt + 32).
  int64_t TileIndex(int64_t m, int64_t kt) const {
    return ((m / kTileRows) * (kpad / kTileCols) + kt) * kTileRows * kTileCols;
  }
  const uint16_t* Tile(int64_t m, int64_t kt) const { return x.data() + TileIndex(m, kt); }
};

// Rows [begin, end) of acts from x (rows past num_rows are zero): the rounding of
// RoundActsBf16Avx512 (vcvtne2ps2bf16: nearest even, denormals to zero).
void RoundRows(const float* x, int64_t num_rows, int64_t cols, int64_t begin, int64_t end,
               Bf16TileActs* acts) {
  for (int64_t m = begin; m < end; ++m) {
    uint16_t* dst = acts->x.data() + acts->TileIndex(m, 0) + (m % kTileRows) * kTileCols;
    for (int64_t k = 0; k < acts->kpad; k += kTileCols) {
      auto mask = [&](int64_t from) {
        const int64_t n = m < num_rows ? cols - from : 0;
        return n >= 16  ? __mmask16(0xffff)
               : n <= 0 ? __mmask16(0)
                        : static_cast<__mmask16>((1u << n) - 1);
      };
      const float* xr = x + m * cols + k;
      const __m512 lo = _mm512_maskz_loadu_ps(mask(k), xr);
      const __m512 hi = _mm512_maskz_loadu_ps(mask(k + 16), xr + 16);
      _mm512_store_si512(dst + k * kTileRows, std::bit_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
}

// Tile registers: accumulator C(i, j) = 2 i + j for activation tile i and weight group j.
enum TileReg { kC00 = 0, kC01 = 1, kC10 = 2, kC11 = 3, kA0 = 4, kA1 = 5, kB0 = 6, kB1 = 7 };

amx::TileConfig Config() {
  amx::TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.Set(t, kTileRows, 64);
  return cfg;
}

// Output rows [m, m + 16 NM) x groups [g, g + NG) (NM, NG = 1 or 2), over the whole K.
template <class Tiles, int NM, int NG>
void Product(const PackedMatrix::Impl& w, const Bf16TileActs& a, int64_t g, int64_t m,
             int64_t num_rows, const float* bias, float* out) {
  Tiles::template Zero<kC00>();
  if constexpr (NG > 1) Tiles::template Zero<kC01>();
  if constexpr (NM > 1) Tiles::template Zero<kC10>();
  if constexpr (NM > 1 && NG > 1) Tiles::template Zero<kC11>();
  const int64_t group_stride = w.pair_stride * 2 * kGroupRows;
  const uint16_t* b0 = w.bf16_pairs.data() + g * group_stride;
  const uint16_t* b1 = b0 + group_stride;
  const int64_t a_stride = kTileCols * 2;
  const int64_t ktiles = a.kpad / kTileCols;
  for (int64_t kt = 0; kt < ktiles; ++kt) {
    // One tile of B is 16 pairs x 16 rows x 2 = 512 values.
    const int64_t bk = kt * kTileRows * 2 * kGroupRows;
    Tiles::template Load<kA0>(a.Tile(m, kt), a_stride);
    Tiles::template Load<kB0>(b0 + bk, 64);
    Tiles::template DotBf16<kC00, kA0, kB0>();
    if constexpr (NG > 1) {
      Tiles::template Load<kB1>(b1 + bk, 64);
      Tiles::template DotBf16<kC01, kA0, kB1>();
    }
    if constexpr (NM > 1) {
      Tiles::template Load<kA1>(a.Tile(m + kTileRows, kt), a_stride);
      Tiles::template DotBf16<kC10, kA1, kB0>();
      if constexpr (NG > 1) Tiles::template DotBf16<kC11, kA1, kB1>();
    }
  }
  alignas(64) float c[kTileRows * 16];
  auto write = [&](int i, int j) {
    const int64_t n0 = (g + j) * kGroupRows;
    const int64_t valid = std::min<int64_t>(kGroupRows, w.rows - n0);
    const auto mask = static_cast<__mmask16>((1u << valid) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    const int64_t m0 = m + i * kTileRows;
    const int64_t rows = std::min<int64_t>(kTileRows, num_rows - m0);
    for (int64_t r = 0; r < rows; ++r) {
      const __m512 v = _mm512_load_ps(c + 16 * r);
      _mm512_mask_storeu_ps(out + (m0 + r) * w.rows + n0, mask, bias ? _mm512_add_ps(v, bv) : v);
    }
  };
  Tiles::template Store<kC00>(c, 64);
  write(0, 0);
  if constexpr (NG > 1) {
    Tiles::template Store<kC01>(c, 64);
    write(0, 1);
  }
  if constexpr (NM > 1) {
    Tiles::template Store<kC10>(c, 64);
    write(1, 0);
  }
  if constexpr (NM > 1 && NG > 1) {
    Tiles::template Store<kC11>(c, 64);
    write(1, 1);
  }
}

template <class Tiles>
void Run(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
         float* out, ThreadPool* pool) {
  Bf16TileActs a;
  a.rows = (num_rows + kTileRows - 1) / kTileRows * kTileRows;
  a.kpad = w.pair_stride * 2;
  a.x.Resize(a.rows * a.kpad);
  const int num_threads = pool ? pool->num_threads() : 1;
  if (num_threads > 1) {
    pool->ParallelFor(a.rows, 1,
                      [&](int64_t b, int64_t e, int) { RoundRows(x, num_rows, w.cols, b, e, &a); });
  } else {
    RoundRows(x, num_rows, w.cols, 0, a.rows, &a);
  }
  // Blocks of activation rows (about 1 MiB of bf16) stay in L2 while a thread's weight groups
  // pass them two at a time; each group pair's weights stay in L2 across the block's rows.
  const int64_t block = std::max<int64_t>(2 * kTileRows, (1 << 20) / (a.kpad * 2) / 32 * 32);
  auto work = [&](int64_t g_begin, int64_t g_end, int) {
    Tiles::Configure(Config());
    for (int64_t m0 = 0; m0 < a.rows; m0 += block) {
      const int64_t m_end = std::min(a.rows, m0 + block);
      for (int64_t g = g_begin; g < g_end; g += 2) {
        const bool two_groups = g + 1 < g_end;
        for (int64_t m = m0; m < m_end; m += 2 * kTileRows) {
          const bool two_tiles = m + kTileRows < m_end;
          if (two_tiles && two_groups) {
            Product<Tiles, 2, 2>(w, a, g, m, num_rows, bias, out);
          } else if (two_tiles) {
            Product<Tiles, 2, 1>(w, a, g, m, num_rows, bias, out);
          } else if (two_groups) {
            Product<Tiles, 1, 2>(w, a, g, m, num_rows, bias, out);
          } else {
            Product<Tiles, 1, 1>(w, a, g, m, num_rows, bias, out);
          }
        }
      }
    }
    Tiles::Release();
  };
  if (num_threads > 1) {
    pool->ParallelFor(w.num_groups, 2, work);
  } else {
    work(0, w.num_groups, 0);
  }
}

}  // namespace

void RunBf16Amx(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
                float* out, ThreadPool* pool) {
  Run<amx::HardwareTiles>(w, x, num_rows, bias, out, pool);
}

void RunBf16AmxOnModel(const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
                       const float* bias, float* out, ThreadPool* pool) {
  Run<ref::ModelTiles>(w, x, num_rows, bias, out, pool);
}

}  // namespace tinyserve::kernels
