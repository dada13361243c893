// AVX-512 loops of roofline.cc: streaming reads, independent FMA chains, independent vpdpbusd
// and vdpbf16ps chains (enough chains to cover the instruction latency on current cores), and
// the AMX tile unit's int8 product on four independent accumulator tiles.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/amx_tiles.h"
#include "roofline.h"

namespace tinyserve::bench::internal {

uint64_t ReadSliceAvx512(const uint8_t* p, uint64_t bytes, uint64_t* sink) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (uint64_t i = 0; i + 256 <= bytes; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  // (An or, not _mm512_reduce_add_epi64: that adds as signed, and the lanes may overflow.)
  *sink += static_cast<uint64_t>(_mm512_reduce_or_epi64(a0));
  return bytes / 256 * 256;
}

uint64_t FmaLoopAvx512(int64_t iters, float* sink) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  *sink += _mm512_reduce_add_ps(s);
  return static_cast<uint64_t>(iters) * kChains * 16 * 2;
}

uint64_t DotLoopAvx512(int64_t iters, int32_t* sink) {
  constexpr int kChains = 12;
  __m512i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  __m512i s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_epi32(s, acc[i]);
  // The lanes wrapped long ago (20M rounds): summed as unsigned, where wrapping is defined
  // (_mm512_reduce_add_epi32 adds them as signed int, which UBSan rightly reports).
  alignas(64) uint32_t v[16];
  _mm512_store_si512(v, s);
  uint32_t total = 0;
  for (uint32_t x : v) total += x;
  *sink = static_cast<int32_t>(total);
  return static_cast<uint64_t>(iters) * kChains * 64 * 2;
}

uint64_t Bf16DotLoopAvx512(int64_t iters, float* sink) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  // Pairs of bf16 (1.0, 2^-10): each instruction adds 32 products into 16 f32 lanes.
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0x1p-10f), _mm512_set1_ps(0x1p-10f));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  *sink += _mm512_reduce_add_ps(s);
  return static_cast<uint64_t>(iters) * kChains * 32 * 2;
}

namespace {

// Four independent accumulator tiles, each fed by two of four operand tiles, `iters` rounds of
// Dot<C, A, B>(); returns the last accumulator tile (its first element) so the loop is kept.
// Operands: finite bf16 values of mixed bits, which are also mixed bytes for the int8 units (a
// unit's speed may depend on the data; zeros would flatter it).
template <class Acc, class Dot>
Acc AmxChains(int64_t iters, Dot dot) {
  using Tiles = kernels::amx::HardwareTiles;
  kernels::amx::TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.Set(t, 16, 64);  // full 16 x 64-byte tiles
  alignas(64) uint16_t data[16 * 32];
  for (int i = 0; i < 16 * 32; ++i) data[i] = static_cast<uint16_t>(0x3f00 + (i * 37 + 11) % 256);
  alignas(64) Acc c[16 * 16];
  Tiles::Configure(cfg);
  Tiles::Zero<0>();
  Tiles::Zero<1>();
  Tiles::Zero<2>();
  Tiles::Zero<3>();
  Tiles::Load<4>(data, 64);
  Tiles::Load<5>(data, 64);
  Tiles::Load<6>(data, 64);
  Tiles::Load<7>(data, 64);
  for (int64_t it = 0; it < iters; ++it) dot();
  Tiles::Store<0>(c, 64);
  Tiles::Release();
  return c[0];
}

}  // namespace

uint64_t AmxInt8Loop(int64_t iters, int32_t* sink) {
  using Tiles = kernels::amx::HardwareTiles;
  *sink += AmxChains<int32_t>(iters, [] {
    Tiles::DotSignedUnsigned<0, 4, 6>();
    Tiles::DotSignedUnsigned<1, 4, 7>();
    Tiles::DotSignedUnsigned<2, 5, 6>();
    Tiles::DotSignedUnsigned<3, 5, 7>();
  });
  return static_cast<uint64_t>(iters) * 4 * 16 * 16 * 64 * 2;
}

uint64_t AmxBf16Loop(int64_t iters, float* sink) {
  using Tiles = kernels::amx::HardwareTiles;
  *sink += AmxChains<float>(iters, [] {
    Tiles::DotBf16<0, 4, 6>();
    Tiles::DotBf16<1, 4, 7>();
    Tiles::DotBf16<2, 5, 6>();
    Tiles::DotBf16<3, 5, 7>();
  });
  return static_cast<uint64_t>(iters) * 4 * 16 * 16 * 32 * 2;
}

}  // namespace tinyserve::bench::internal
