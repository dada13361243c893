// AVX-512 BF16 matmul for bf16 weights (layouts in matmul_internal.h): activations rounded to bf16
// once per call (vcvtne2ps2bf16), then vdpbf16ps with f32 accumulators, as llama.cpp multiplies
// bf16 weights (its vec_dot_type for BF16 is BF16). A 64-byte load holds one activation pair's
// weights for the 16 rows of a group; a broadcast pair of each activation row meets it, so a tile
// of NG groups x MT rows keeps NG * MT accumulators (up to 24 of the 32 registers) and each
// weight load serves MT rows. Pure functions; any thread.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <bit>
#include <utility>

#include "kernels/cpu/matmul_avx512_shared.h"
#include "kernels/matmul_internal.h"

namespace tinyserve::kernels {
namespace {

// Output rows [m, m + MT) (one whole activation tile starting at m) x row groups [g, g + NG).
template <int NG, int MT>
void Bf16Tile(const PackedMatrix::Impl& w, const Bf16Acts& a, int64_t g, int64_t m,
              const float* bias, float* out) {
  const int64_t pairs = w.pairs;
  const uint32_t* xt = a.x.data() + m * pairs;  // [pairs][MT]
  const uint16_t* wg[NG];
  for (int j = 0; j < NG; ++j)
    wg[j] = w.bf16_pairs.data() + (g + j) * w.pair_stride * 2 * kGroupRows;
  __m512 acc[NG][MT];
  for (int j = 0; j < NG; ++j)
    for (int r = 0; r < MT; ++r) acc[j][r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh wv[NG];
    for (int j = 0; j < NG; ++j)
      wv[j] = std::bit_cast<__m512bh>(_mm512_load_si512(wg[j] + p * 2 * kGroupRows));
    const uint32_t* xp = xt + p * MT;
    for (int r = 0; r < MT; ++r) {
      // Folds into vdpbf16ps's {1to16} memory operand.
      const __m512bh xb = std::bit_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(xp[r])));
      for (int j = 0; j < NG; ++j) acc[j][r] = _mm512_dpbf16_ps(acc[j][r], wv[j], xb);
    }
  }
  cpu::StoreGroups<NG, MT>(w, acc, g, m, bias, OutTile{out, w.rows, 0, 0});
}

using TileFn = void (*)(const PackedMatrix::Impl&, const Bf16Acts&, int64_t, int64_t, const float*,
                        float*);

// Tiles of NG groups x mt rows (mt = 1..12), from the table built below.
template <int NG, int... MT>
constexpr std::array<TileFn, sizeof...(MT)> MakeTiles(std::integer_sequence<int, MT...>) {
  return {Bf16Tile<NG, MT + 1>...};
}
constexpr auto kTiles1 = MakeTiles<1>(std::make_integer_sequence<int, kBf16RowTile>());
constexpr auto kTiles2 = MakeTiles<2>(std::make_integer_sequence<int, kBf16RowTile>());
// Up to 6 rows, 4 groups: more independent accumulator chains (decode: one row).
constexpr auto kTiles4 = MakeTiles<4>(std::make_integer_sequence<int, 6>());

}  // namespace

void RoundActsBf16Avx512(const float* x, int64_t cols, int64_t row_begin, int64_t row_end,
                         Bf16Acts* acts) {
  const int64_t pairs = acts->pairs;
  for (int64_t m = row_begin; m < row_end; ++m) {
    const float* xr = x + m * cols;
    uint32_t* dst = acts->x.data() + acts->Index(m, 0);
    const int64_t stride = acts->TileRows(m);
    const __m512i index =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(static_cast<int>(stride)));
    for (int64_t k = 0; k < cols; k += 32) {
      auto load_mask = [&](int64_t from) {
        const int64_t n = cols - from;
        return n >= 16  ? __mmask16(0xffff)
               : n <= 0 ? __mmask16(0)
                        : static_cast<__mmask16>((1u << n) - 1);
      };
      const __m512 lo = _mm512_maskz_loadu_ps(load_mask(k), xr + k);
      const __m512 hi = _mm512_maskz_loadu_ps(load_mask(k + 16), xr + k + 16);
      // bf16 element i of 32 is x[k + i]: dword j is the pair k / 2 + j.
      const __m512i v = std::bit_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      const int64_t left = pairs - k / 2;
      const __mmask16 mask =
          left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      uint32_t* p = dst + (k / 2) * stride;
      if (stride == 1) {
        _mm512_mask_storeu_epi32(p, mask, v);
      } else {
        _mm512_mask_i32scatter_epi32(p, mask, index, v, 4);
      }
    }
  }
}

void Bf16DotKernelAvx512(const PackedMatrix::Impl& w, const Bf16Acts& acts, int64_t g_begin,
                         int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias,
                         float* out) {
  int64_t g = g_begin;
  auto tiles = [&](int ng, const TileFn* table) {
    for (int64_t m = m_begin; m < m_end; m += acts.TileRows(m))
      table[acts.TileRows(m) - 1](w, acts, g, m, bias, out);
    g += ng;
  };
  // The widest tile of each row count: 4 groups up to 6 rows (registers: 4 * 6 accumulators),
  // 2 groups above (a tile of at most 6 rows is the range's only one).
  if (acts.TileRows(m_begin) <= 6)
    while (g + 4 <= g_end) tiles(4, kTiles4.data());
  while (g + 2 <= g_end) tiles(2, kTiles2.data());
  while (g < g_end) tiles(1, kTiles1.data());
}

}  // namespace tinyserve::kernels
