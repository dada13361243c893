// AVX2 (+FMA, F16C) MatMul kernels, for CPUs without AVX-512 VNNI. Same packed layout as the
// AVX-512 path, read as two halves of 8 rows; the u8 x s8 dot products use maddubs + madd.
// maddubs saturates its 16-bit pair sums, which only 8-bit weights can reach: Q8_0 quants are
// turned back into signed bytes and multiplied with the sign trick (|w| x sign(w) * x) instead.
// 4-, 5- and 6-bit quants are unpacked in registers (and/shift/or, vpshufb through the 16-entry
// table).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_internal.h"

namespace tinyserve::kernels {
namespace {

inline int32_t LoadI32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// QuantizeActsScalar's numbers for finite inputs (a NaN may be kept by one max order and dropped
// by the other; the product is garbage either way), 32 values at a time: the block's largest
// magnitude from one max tree, each value times 127 / amax rounded to nearest even (vcvtps2dq in
// the default rounding mode: std::nearbyint's), packed to bytes and summed through vpsadbw. The
// scalar quantizer (a libm call per value for the rounding and another for each max) took a quarter
// of the time of a 64-row product on this path (perf, bench_matmul --threads 1, Zen 3).
void QuantizeActsAvx2(const float* x, int64_t ldx, int64_t row_begin, int64_t row_end,
                      int64_t col_begin, int64_t col_end, const QuantTraits& traits,
                      QuantizedActs* acts) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  // Dword order after the two packs (per 128-bit lane: 4 values of each vector in turn).
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t m = row_begin; m < row_end; ++m) {
    const float* xr = x + (m - row_begin) * ldx;
    int8_t* xq = acts->xq.data() + acts->XqIndex(m, 0);
    const int64_t chunk_stride = acts->TileRows(m) * 4;
    for (int64_t blk = col_begin / kActBlock; blk < col_end / kActBlock; ++blk) {
      const float* xb = xr + blk * kActBlock - col_begin;
      __m256 v[4];
      for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
      const __m256 a =
          _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                        _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
      const __m256 id = _mm256_set1_ps(amax == 0 ? 0.0f : 127.0f / amax);
      const float sx = amax / 127.0f;
      acts->sx[acts->SxIndex(m, blk)] = sx;
      __m256i q[4];
      for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));
      const __m256i bytes = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
          order);
      alignas(32) int32_t chunks[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(chunks), bytes);
      for (int c = 0; c < 8; ++c) std::memcpy(xq + (blk * 8 + c) * chunk_stride, chunks + c, 4);
      // Sums of each 16 values: the bytes + 128 as unsigned, 8 at a time (none saturated: the
      // products round to at most 127 in magnitude).
      alignas(32) int64_t eights[4];
      _mm256_store_si256(
          reinterpret_cast<__m256i*>(eights),
          _mm256_sad_epu8(_mm256_xor_si256(bytes, _mm256_set1_epi8(-128)), _mm256_setzero_si256()));
      StoreBlockSums(traits, sx, static_cast<int32_t>(eights[0] + eights[1]) - 16 * 128,
                     static_cast<int32_t>(eights[2] + eights[3]) - 16 * 128, m, blk, acts);
    }
  }
}

// How the quants of a record are stored (matmul_internal.h): 8-bit, 4-bit (identity or a
// codebook), 4-bit lines plus a high line of 1 (k5) or 2 (k6) bits per weight.
enum class Quants { k8, k4, k4Table, k5, k6 };

constexpr int HighBits(Quants q) { return q == Quants::k5 ? 1 : q == Quants::k6 ? 2 : 0; }

// Chunk c of rows [8h, 8h + 8) of a record's quants as u8 q; hb: those rows of the high line.
template <Quants kQ>
inline __m256i LoadChunk(const uint8_t* rec, int c, int h, __m256i table, __m256i hb) {
  if constexpr (kQ == Quants::k8) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + c * 64 + h * 32));
  } else {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + (c / 2) * 64 + h * 32));
    if (c % 2) v = _mm256_srli_epi16(v, 4);
    v = _mm256_and_si256(v, _mm256_set1_epi8(15));
    constexpr int kHigh = HighBits(kQ);
    if constexpr (kHigh > 0) {
      // Chunk c's bits to bits [4, 4 + kHigh) of each byte; the spill from the neighbouring
      // byte lands outside them.
      const int s = kHigh * c - 4;
      const __m256i hs = s >= 0 ? _mm256_srli_epi16(hb, s) : _mm256_slli_epi16(hb, -s);
      const __m256i mask = _mm256_set1_epi8(static_cast<char>(((1 << kHigh) - 1) << 4));
      return _mm256_or_si256(v, _mm256_and_si256(hs, mask));
    }
    return kQ == Quants::k4Table ? _mm256_shuffle_epi8(table, v) : v;
  }
}

// Scales (i = 0, 1) or offsets (i = 2, 3) of rows [8 (i % 2), 8 (i % 2) + 8) of record rec: f16,
// f32, or int8 times f, the f16 factors of its super-block (exact, as Impl::Scale).
inline __m256 LoadScales(const PackedMatrix::Impl& w, const uint8_t* rec, const uint16_t* f,
                         int i) {
  const uint8_t* p = rec + w.quant_bytes;
  if (w.int_scales) {
    const __m256 k = _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * i))));
    const auto* fi = reinterpret_cast<const __m128i*>(f) + i;
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(fi)), k);
  }
  if (w.f16_scales)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p) + i));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * i);
}

// Both halves of row group g (16 weight rows, two registers of 8) for activation rows
// [m + r0, m + r0 + MT) of the tile at m, whose rows are TR (8, or fewer for the last). Each
// broadcast of 4 activation bytes meets both halves: with one half per broadcast the
// broadcasts capped the sign-trick loop at ~2.0 G row-chunks/s on Zen 3, with two at ~2.3; a
// tile's rows are taken MT <= 4 at a time so that the 2 x MT sums stay in registers. The tile's
// layout is read through one pointer per array (the per-row index arithmetic and pointers spilled
// registers). ahead: request the records kWeightPrefetchBytes ahead into L2 (the first pass over a
// group; the later ones find the records in cache).
template <int TR, int MT, int SUB, bool kMin, bool kSigned, Quants kQ>
void QuantTile(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g, int64_t m, int r0,
               bool ahead, const float* bias, OutTile out) {
  const uint8_t* rec = w.Group(g);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(w.table)));
  const int8_t* xq = a.xq.data() + m * a.cols + r0 * 4;           // [cols / 4][TR][4]
  const float* sx = a.sx.data() + m * (a.cols / kActBlock) + r0;  // [cols / 32][TR]
  const int32_t* init = a.init.data() + m * a.num_sub + r0;       // [num_sub][TR]
  const float* xsum = a.xsum.data() + m * a.num_sub + r0;         // [num_sub][TR]
  __m256 acc[2][MT];
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < MT; ++r) acc[h][r] = _mm256_setzero_ps();
  // int_scales: the factors of record b's super-block, a step on every subs_per_super records.
  // Impl::Factors divides twice per record: through it, 64-row q4_k products reached 65% of the
  // int8 dot probe and q6_k 45%, stepped 74% and 59% (bench_matmul --threads 1, Zen 3).
  const uint16_t* factors = w.int_scales ? w.Factors(g, 0) : nullptr;
  int64_t in_super = 0;
  for (int64_t b = 0; b < w.num_sub; ++b, rec += w.record_bytes) {
    if (ahead) PrefetchToL2(rec + kWeightPrefetchBytes, w.record_bytes);
    const int8_t* xb = xq + b * (SUB / 4) * TR * 4;
    __m256i dot[2][MT];
    for (int r = 0; r < MT; ++r) {
      dot[0][r] = kSigned ? _mm256_setzero_si256() : _mm256_set1_epi32(init[b * TR + r]);
      dot[1][r] = dot[0][r];
    }
    __m256i hb[2];
    for (int h = 0; h < 2; ++h) {
      hb[h] = HighBits(kQ) > 0
                  ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + SUB * 8 + h * 32))
                  : _mm256_setzero_si256();
    }
#pragma GCC unroll 8
    for (int c = 0; c < SUB / 4; ++c) {
      __m256i wv[2], ws[2], wabs[2];
      for (int h = 0; h < 2; ++h) {
        wv[h] = LoadChunk<kQ>(rec, c, h, table, hb[h]);
        // The signed weights' magnitudes and signs, once for all rows.
        ws[h] = kSigned ? _mm256_xor_si256(wv[h], flip) : wv[h];
        wabs[h] = kSigned ? _mm256_sign_epi8(ws[h], ws[h]) : wv[h];
      }
      for (int r = 0; r < MT; ++r) {
        const __m256i xv = _mm256_set1_epi32(LoadI32(xb + (c * TR + r) * 4));
        for (int h = 0; h < 2; ++h) {
          const __m256i p = kSigned ? _mm256_maddubs_epi16(wabs[h], _mm256_sign_epi8(xv, ws[h]))
                                    : _mm256_maddubs_epi16(wv[h], xv);
          dot[h][r] = _mm256_add_epi32(dot[h][r], _mm256_madd_epi16(p, ones));
          // Keeps each sum one chain in a register: left free, GCC reassociated the block's
          // products into trees and spilled them (a 32-byte store and reload per product);
          // without the spills the 64-row products ran 7-9% faster (bench_matmul --threads 1).
          asm("" : "+x"(dot[h][r]));
        }
      }
    }
    const float* sxb = sx + (b * SUB / kActBlock) * TR;
    const __m256 sv[2] = {LoadScales(w, rec, factors, 0), LoadScales(w, rec, factors, 1)};
    for (int r = 0; r < MT; ++r) {
      const __m256 s = _mm256_set1_ps(sxb[r]);
      for (int h = 0; h < 2; ++h)
        acc[h][r] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[h][r]), _mm256_mul_ps(sv[h], s), acc[h][r]);
    }
    if constexpr (kMin) {
      const __m256 ov[2] = {LoadScales(w, rec, factors, 2), LoadScales(w, rec, factors, 3)};
      for (int r = 0; r < MT; ++r) {
        const __m256 x = _mm256_set1_ps(xsum[b * TR + r]);
        for (int h = 0; h < 2; ++h) acc[h][r] = _mm256_fmadd_ps(ov[h], x, acc[h][r]);
      }
    }
    if (w.int_scales && ++in_super == w.subs_per_super) {
      in_super = 0;
      factors += (w.traits.has_min ? 2 : 1) * kGroupRows;
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int64_t n0 = g * kGroupRows + h * 8;
    const int64_t valid = w.rows - n0 < 8 ? w.rows - n0 : 8;
    if (valid <= 0) return;
    for (int r = 0; r < MT; ++r) {
      float* o = out.At(m + r0 + r, n0);
      if (out.stream && valid == 8) {  // 32-byte aligned (OutTile::stream)
        _mm256_stream_ps(o,
                         bias ? _mm256_add_ps(acc[h][r], _mm256_loadu_ps(bias + n0)) : acc[h][r]);
        continue;
      }
      alignas(32) float v[8];
      _mm256_store_ps(v, acc[h][r]);
      for (int i = 0; i < valid; ++i) o[i] = bias ? v[i] + bias[n0 + i] : v[i];
    }
  }
}

// Row group g for the tile of activation rows [m, m + rows): up to 4 rows per pass.
template <int SUB, bool kMin, bool kSigned, Quants kQ>
void GroupTile(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g, int64_t m,
               int64_t rows, bool ahead, const float* bias, OutTile out) {
  switch (rows) {
    case 8:
      QuantTile<8, 4, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
      return QuantTile<8, 4, SUB, kMin, kSigned, kQ>(w, a, g, m, 4, false, bias, out);
    case 7:
      QuantTile<7, 4, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
      return QuantTile<7, 3, SUB, kMin, kSigned, kQ>(w, a, g, m, 4, false, bias, out);
    case 6:
      QuantTile<6, 3, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
      return QuantTile<6, 3, SUB, kMin, kSigned, kQ>(w, a, g, m, 3, false, bias, out);
    case 5:
      QuantTile<5, 3, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
      return QuantTile<5, 2, SUB, kMin, kSigned, kQ>(w, a, g, m, 3, false, bias, out);
    case 4:
      return QuantTile<4, 4, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
    case 3:
      return QuantTile<3, 3, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
    case 2:
      return QuantTile<2, 2, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
    case 1:
      return QuantTile<1, 1, SUB, kMin, kSigned, kQ>(w, a, g, m, 0, ahead, bias, out);
    default:
      return;
  }
}

// m_begin is a tile start (matmul.cc splits rows in multiples of kRowTile).
template <int SUB, bool kMin, bool kSigned, Quants kQ>
void QuantGroups(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g_begin,
                 int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias, OutTile out) {
  for (int64_t g = g_begin; g < g_end; ++g) {
    for (int64_t m = m_begin; m < m_end; m += kRowTile) {
      const int64_t rows = std::min<int64_t>(kRowTile, m_end - m);
      GroupTile<SUB, kMin, kSigned, kQ>(w, a, g, m, rows, m == m_begin, bias, out);
    }
  }
}

template <int SUB, bool kMin, bool kSigned>
QuantKernelFn ForQuants(const PackedMatrix::Impl& w) {
  if (!w.nibbles) return QuantGroups<SUB, kMin, kSigned, Quants::k8>;
  if (w.high_bits == 1) return QuantGroups<SUB, kMin, kSigned, Quants::k5>;
  if (w.high_bits == 2) return QuantGroups<SUB, kMin, kSigned, Quants::k6>;
  for (int i = 0; i < 16; ++i)
    if (w.table[i] != i) return QuantGroups<SUB, kMin, kSigned, Quants::k4Table>;
  return QuantGroups<SUB, kMin, kSigned, Quants::k4>;
}

void QuantKernelAvx2(const PackedMatrix::Impl& w, const QuantizedActs& a, int64_t g_begin,
                     int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias,
                     OutTile out) {
  const QuantTraits& t = w.traits;
  // Zero point 128 (Q8_0 and the codebooks): q ^ 0x80 is the signed weight.
  const QuantKernelFn fn =
      t.zero_point == 128 ? ForQuants<32, false, true>(w)
      : t.sub_block == 32
          ? (t.has_min ? ForQuants<32, true, false>(w) : ForQuants<32, false, false>(w))
          : (t.has_min ? ForQuants<16, true, false>(w) : ForQuants<16, false, false>(w));
  fn(w, a, g_begin, g_end, m_begin, m_end, bias, out);
  // Non-temporal stores are not ordered with the later stores that tell other threads the
  // output is done: fence them here.
  if (out.stream) _mm_sfence();
}

template <DType kType>
inline __m256 LoadW8(const void* row, int64_t k) {
  if constexpr (kType == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    if constexpr (kType == DType::kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float LoadScalar(DType type, const void* row, int64_t k) {
  uint16_t h;
  switch (type) {
    case DType::kF16:
      std::memcpy(&h, static_cast<const uint16_t*>(row) + k, 2);
      return _cvtsh_ss(h);
    case DType::kBF16: {
      std::memcpy(&h, static_cast<const uint16_t*>(row) + k, 2);
      const uint32_t u = uint32_t{h} << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    default:
      return static_cast<const float*>(row)[k];
  }
}

// 4 weight rows x up to 2 activation rows; 8 columns per step, then a scalar tail.
template <DType kType, int NT, int MT>
void FloatTile(const PackedMatrix::Impl& w, const float* x, int64_t n, int64_t m, const float* bias,
               float* out) {
  constexpr int64_t kElem = kType == DType::kF32 ? 4 : 2;
  const int64_t cols = w.cols;
  const void* rows[NT];
  for (int i = 0; i < NT; ++i)
    rows[i] = static_cast<const uint8_t*>(w.float_data) + (n + i) * cols * kElem;
  __m256 acc[NT][MT];
  for (int i = 0; i < NT; ++i)
    for (int j = 0; j < MT; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= cols; k += 8) {
    __m256 xv[MT];
    for (int j = 0; j < MT; ++j) xv[j] = _mm256_loadu_ps(x + (m + j) * cols + k);
    for (int i = 0; i < NT; ++i) {
      const __m256 wv = LoadW8<kType>(rows[i], k);
      for (int j = 0; j < MT; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NT; ++i)
    for (int j = 0; j < MT; ++j) {
      float v = HorizontalSum(acc[i][j]);
      for (int64_t t = k; t < cols; ++t) v += LoadScalar(kType, rows[i], t) * x[(m + j) * cols + t];
      out[(m + j) * w.rows + n + i] = bias ? v + bias[n + i] : v;
    }
}

template <DType kType>
void FloatKernelTyped(const PackedMatrix::Impl& w, const float* x, int64_t n_begin, int64_t n_end,
                      int64_t m_begin, int64_t m_end, const float* bias, float* out) {
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) {
    int64_t m = m_begin;
    for (; m + 2 <= m_end; m += 2) FloatTile<kType, 4, 2>(w, x, n, m, bias, out);
    if (m < m_end) FloatTile<kType, 4, 1>(w, x, n, m, bias, out);
  }
  for (; n < n_end; ++n)
    for (int64_t m = m_begin; m < m_end; ++m) FloatTile<kType, 1, 1>(w, x, n, m, bias, out);
}

void FloatKernelAvx2(const PackedMatrix::Impl& w, const float* x, int64_t n_begin, int64_t n_end,
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

MatMulKernels Avx2Kernels() { return {QuantizeActsAvx2, QuantKernelAvx2, FloatKernelAvx2}; }

}  // namespace tinyserve::kernels
