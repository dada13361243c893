// AVX2 AttendBlock: attention_simd.h's grouped path (one query at a time for steps over
// kGroupMaxKeys keys) at 8 floats per vector, and for int8 rows with head_dim a multiple of 64 an
// integer path (below): attention_avx512.cc's VNNI one, its exact integers from vpmaddwd.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/kv_quant.h"

namespace tinyserve::kernels::cpu::avx2 {
namespace {

// Queries per group: a decode row's whole GQA group for Qwen2.5-0.5B's 7, one accumulator each
// (with a key or value vector and a broadcast, within the 16 ymm registers).
constexpr int kQueryGroup = 8;

// The int8 cache's integer path. The float path converts every key and value element to f32 and
// spends one FMA per multiply-add; vpmaddwd does two 16-bit multiply-adds per 32-bit lane, on
// pipes of its own beside the adds, and the key and value rows widen to int16 once per sub-step
// for the whole group. q.k is the exact integer dot of each query's 16-bit row Q = 256 hi + lo
// (AttendBlockArgs::q_i8) with the keys, times the key's and the query's scales; the value scale is
// folded into the softmax weight, rounded to int16 for an exact integer p.v (as on AVX-512, whose
// integers these are: only the float sums' order differs). Keys in sub-steps of kI8Keys (the
// driver's steps for this path are as long, attention.cc's kIntDotStepKeys); head_dim a multiple
// of 64 up to 256 (R = head_dim / 64).
constexpr int32_t kI8Keys = 128;
static_assert(int64_t{kI8Keys} * 32767 * 128 < (int64_t{1} << 31), "p.v sums must fit int32");

// 2^x lane by lane for x <= 0 (0 at or below -127, NaN for NaN): 2^n from the exponent bits times
// 2^f, f = x - n in [-0.5, 0.5], from simd_avx512.h's Exp2NonPositive polynomial.
inline __m256 Exp2NonPositive(__m256 x) {
  // x second: vmaxps returns its second operand when either is NaN, and a NaN score (a NaN
  // query) must stay NaN so that its output is NaN.
  x = _mm256_max_ps(_mm256_set1_ps(-127.0f), x);
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.33908634e-3f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.67603192e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.55035711e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.40221075e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.93147188e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.00000008f));
  // n in [-127, 0]: -127 gives the bits of 0.0f.
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// TailMask for a count that may be negative or past the width.
inline __m256i Live(int64_t left) {
  return TailMask(left <= 0 ? 0 : (left >= kWidth ? kWidth : left));
}

// The first half of the online-softmax update of NQ queries over their scores p[g][0, nv[g]):
// each query's new running max and the factor its old state is scaled by, phase by phase across
// the queries as attention_avx512.cc's NewMax (the corrections from one vector exp).
template <int NQ>
void NewMax(const AttendBlockArgs& a, const int32_t* idx, const int32_t* nv,
            const float (*p)[kI8Keys], float* new_max, float* correction) {
  static_assert(NQ <= kWidth);
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  __m256 mx[NQ];
  for (int g = 0; g < NQ; ++g) {
    mx[g] = neg_inf;
    for (int32_t t = 0; t < nv[g]; t += kWidth) {
      const __m256 s =
          _mm256_blendv_ps(neg_inf, _mm256_load_ps(p[g] + t), _mm256_castsi256_ps(Live(nv[g] - t)));
      mx[g] = _mm256_max_ps(mx[g], s);
    }
  }
  alignas(32) float diff[kWidth] = {};
  for (int g = 0; g < NQ; ++g) {
    const float block_max = HorizontalMax(mx[g]);
    const float old_max = a.max[idx[g]];
    new_max[g] = old_max > block_max ? old_max : block_max;
    diff[g] = old_max - new_max[g];
  }
  alignas(32) float corr[kWidth];
  _mm256_store_ps(corr, Exp(_mm256_load_ps(diff)));
  for (int g = 0; g < NQ; ++g) correction[g] = a.max[idx[g]] == -__builtin_inff() ? 0.0f : corr[g];
}

// The softmax step's weights as int16 for the integer p.v, attention_avx512.cc's SoftmaxStepI8 at
// 8 lanes: w[g][t] = round(exp(score - max) * vs[t] / unit[g]), exactly 0 from nv[g] to max_nv
// rounded up to 8, unit[g] the largest weight / 32767; folds the block into a.max / a.sum.
template <int NQ>
void SoftmaxStepI8(const AttendBlockArgs& a, const int32_t* idx, const int32_t* nv, int32_t max_nv,
                   float (*p)[kI8Keys], const float* vs, int16_t (*w)[kI8Keys], float* unit,
                   float* correction) {
  float new_max[NQ], largest[NQ], total[NQ];
  NewMax<NQ>(a, idx, nv, p, new_max, correction);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  for (int g = 0; g < NQ; ++g) {
    // exp(score - max) as 2^(score * log2(e) - max * log2(e)): one FMA into Exp2NonPositive.
    const __m256 max2 = _mm256_set1_ps(new_max[g] * 1.44269504088896341f);
    __m256 psum = _mm256_setzero_ps(), wmax = _mm256_setzero_ps();
    for (int32_t t = 0; t < max_nv; t += kWidth) {
      const __m256i live = Live(nv[g] - t);
      const __m256 e =
          _mm256_and_ps(_mm256_castsi256_ps(live),
                        Exp2NonPositive(_mm256_fmsub_ps(_mm256_load_ps(p[g] + t), log2e, max2)));
      psum = _mm256_add_ps(psum, e);
      const __m256 weight = _mm256_mul_ps(e, _mm256_maskload_ps(vs + t, live));
      wmax = _mm256_max_ps(wmax, weight);
      _mm256_store_ps(p[g] + t, weight);
    }
    largest[g] = HorizontalMax(wmax);
    total[g] = HorizontalSum(psum);
  }
  for (int g = 0; g < NQ; ++g) {
    unit[g] = largest[g] / 32767.0f;
    const __m256 inv = _mm256_set1_ps(largest[g] > 0 ? 32767.0f / largest[g] : 0.0f);
    for (int32_t t = 0; t < max_nv; t += kWidth) {
      const __m256i wi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(p[g] + t), inv));
      // Saturating pack (as AVX-512's vpmovsdw), the 8 words gathered into the low half.
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(wi, wi), 0x08);
      _mm_store_si128(reinterpret_cast<__m128i*>(w[g] + t), _mm256_castsi256_si128(packed));
    }
    a.sum[idx[g]] = a.sum[idx[g]] * correction[g] + total[g];
    a.max[idx[g]] = new_max[g];
  }
}

// kw[t * hd + d]: dimension d of key t as int16, for the m keys of a sub-step and up to the next
// multiple of 8 (slots past m repeat key m - 1; their scores are never used).
template <int R>
void WidenKeys(const void* const* k, int32_t m, int16_t* kw) {
  constexpr int64_t hd = 64 * R;
  for (int32_t t = 0; t < (m + 7) / 8 * 8; ++t) {
    const auto* row = static_cast<const int8_t*>(k[t < m ? t : m - 1]);
    for (int c = 0; c < 4 * R; ++c) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * c));
      _mm256_store_si256(reinterpret_cast<__m256i*>(kw + t * hd + 16 * c),
                         _mm256_cvtepi8_epi16(bytes));
    }
  }
}

// vw[c * kI8Keys / 2 + t / 2]: columns [8c, 8c + 8) of the key pair (t, t + 1) as 16 int16, the two
// keys' values of a column side by side (a 32-bit lane of vpmaddwd), for the m keys of a sub-step
// (an odd last key pairs with itself; its partner's weight is 0). Once per sub-step for the whole
// group, as the keys are widened: interleaving each pair in the p.v loop, with its two row-pointer
// loads, took twice its vpmaddwd time there.
template <int R>
void WidenValuePairs(const void* const* v, int32_t m, int16_t* vw) {
  auto* out = reinterpret_cast<__m256i*>(vw);
  for (int32_t t = 0; t < m; t += 2) {
    const auto* row0 = static_cast<const int8_t*>(v[t]);
    const auto* row1 = static_cast<const int8_t*>(v[t + 1 < m ? t + 1 : t]);
    for (int c = 0; c < 4 * R; ++c) {
      const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row0 + 16 * c));
      const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row1 + 16 * c));
      _mm256_store_si256(out + (2 * c) * (kI8Keys / 2) + t / 2,
                         _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1)));
      _mm256_store_si256(out + (2 * c + 1) * (kI8Keys / 2) + t / 2,
                         _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1)));
    }
  }
}

// One online-softmax step of the NQ queries idx[] over keys [o, o + m) of the step, widened in kw
// (keys) and vw (values).
template <int NQ, int R>
void AttendQueriesI8(const AttendBlockArgs& a, const int32_t* idx, int32_t o, int32_t m,
                     const int16_t* kw, const int16_t* vw, float (*p)[kI8Keys],
                     simd::ReadAhead& ahead) {
  constexpr int64_t hd = 64 * R;
  alignas(32) int16_t q[NQ][hd];  // Q = 256 hi + lo: |Q| <= kQueryMax fits int16
  int32_t nv[NQ];
  int32_t max_nv = 0;
  __m256 qscale[NQ];
  for (int g = 0; g < NQ; ++g) {
    const int8_t* qi = a.q_i8 + idx[g] * 2 * hd;
    for (int c = 0; c < 4 * R; ++c) {
      const __m256i hi =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qi + 16 * c)));
      const __m256i lo =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qi + hd + 16 * c)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q[g] + 16 * c),
                         _mm256_add_epi16(_mm256_slli_epi16(hi, 8), lo));
    }
    const int32_t valid = a.num_valid[idx[g]] - o;
    nv[g] = valid < m ? valid : m;
    max_nv = nv[g] > max_nv ? nv[g] : max_nv;
    qscale[g] = _mm256_set1_ps(a.q_scales[idx[g]] * a.scale);
  }
  // Scores 8 keys at a time: per query, each key's products summed in int32 lanes, then the 8
  // keys' lanes by one tree. |Q.k| <= 256 * 32512 * 127 < 2^31: exact.
  for (int32_t j = 0; j * kWidth < max_nv; ++j) {
    const int16_t* kj = kw + j * kWidth * hd;
    const __m256 ks = _mm256_maskload_ps(a.k_scales + o + j * kWidth, Live(m - j * kWidth));
    for (int g = 0; g < NQ; ++g) {
      const auto* qg = reinterpret_cast<const __m256i*>(q[g]);
      auto key_sum = [&](int32_t t) {
        const auto* kt = reinterpret_cast<const __m256i*>(kj + t * hd);
        __m256i s = _mm256_madd_epi16(_mm256_load_si256(kt), _mm256_load_si256(qg));
        for (int c = 1; c < 4 * R; ++c) {
          s = _mm256_add_epi32(
              s, _mm256_madd_epi16(_mm256_load_si256(kt + c), _mm256_load_si256(qg + c)));
        }
        return s;
      };
      // Lane t of the sums = key t's dot: the 8 keys' int32 lanes added by a transpose tree
      // (ReduceAdd8's, on integers: exact), each level built as soon as its inputs are ready:
      // with all 8 key sums live at once GCC spilled them to the stack.
      auto pair_sum = [&](int32_t t) {
        const __m256i s0 = key_sum(t), s1 = key_sum(t + 1);
        return _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
      };
      auto quad_sum = [&](int32_t t) {
        const __m256i l0 = pair_sum(t), l1 = pair_sum(t + 2);
        return _mm256_add_epi32(_mm256_unpacklo_epi64(l0, l1), _mm256_unpackhi_epi64(l0, l1));
      };
      const __m256i h0 = quad_sum(0), h1 = quad_sum(4);
      const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                                            _mm256_permute2x128_si256(h0, h1, 0x31));
      const __m256 dot = _mm256_cvtepi32_ps(sums);
      _mm256_store_ps(p[g] + j * kWidth, _mm256_mul_ps(_mm256_mul_ps(dot, ks), qscale[g]));
    }
  }
  alignas(32) int16_t w[NQ][kI8Keys];
  float unit[NQ], correction[NQ];
  SoftmaxStepI8<NQ>(a, idx, nv, max_nv, p, a.v_scales + o, w, unit, correction);
  // 8 columns at a time, a key pair per vector of vw (WidenValuePairs), against the pair's two
  // weights.
  for (int c = 0; c < 8 * R; ++c) {
    __m256i dot[NQ];
    for (int g = 0; g < NQ; ++g) dot[g] = _mm256_setzero_si256();
    const __m256i* pairs = reinterpret_cast<const __m256i*>(vw) + c * (kI8Keys / 2);
    for (int32_t t = 0; t < max_nv; t += 2) {
      ahead.Some();
      const __m256i v = _mm256_load_si256(pairs + t / 2);
      for (int g = 0; g < NQ; ++g) {
        int32_t pair;
        std::memcpy(&pair, w[g] + t, sizeof(pair));
        dot[g] = _mm256_add_epi32(dot[g], _mm256_madd_epi16(v, _mm256_set1_epi32(pair)));
      }
    }
    for (int g = 0; g < NQ; ++g) {
      float* acc = a.acc + idx[g] * hd + c * kWidth;
      const __m256 old = _mm256_mul_ps(_mm256_loadu_ps(acc), _mm256_set1_ps(correction[g]));
      _mm256_storeu_ps(acc,
                       _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[g]), _mm256_set1_ps(unit[g]), old));
    }
  }
}

template <int R, int NQ>
void AttendGroupI8(const AttendBlockArgs& a, const int32_t* idx, int num, int32_t o, int32_t m,
                   const int16_t* kw, const int16_t* vw, float (*p)[kI8Keys],
                   simd::ReadAhead& ahead) {
  if constexpr (NQ > 1) {
    if (num < NQ) return AttendGroupI8<R, NQ - 1>(a, idx, num, o, m, kw, vw, p, ahead);
  }
  AttendQueriesI8<NQ, R>(a, idx, o, m, kw, vw, p, ahead);
}

template <int R>
void AttendBlockI8(const AttendBlockArgs& a) {
  alignas(32) int16_t kw[kI8Keys * 64 * R];
  alignas(32) int16_t vw[kI8Keys * 64 * R];
  alignas(32) float p[kQueryGroup][kI8Keys];
  simd::ReadAhead ahead(a, int64_t{(a.n + 1) / 2} * 8 * R);  // the p.v loops' key pairs
  for (int32_t o = 0; o < a.n; o += kI8Keys) {
    const int32_t m = a.n - o < kI8Keys ? a.n - o : kI8Keys;
    bool widened = false;
    // simd::ForEachQueryGroup's loop from key o on, written out: through that template and a
    // lambda this kernel ran ~10% slower (bench_ops --threads 1 --decode, 1 x 8,192: 0.515 ->
    // 0.568 ms, Zen 3), as GCC allocated the inner loops' registers worse.
    int32_t idx[kQueryGroup];
    int num = 0;
    for (int32_t i = 0; i <= a.num_q; ++i) {
      if (i < a.num_q) {
        if (a.num_valid[i] <= o) continue;  // sees no key of this sub-step: state untouched
        idx[num++] = i;
        if (num < kQueryGroup) continue;
      }
      if (num == 0) break;
      if (!widened) {
        WidenKeys<R>(a.k_rows + o, m, kw);
        WidenValuePairs<R>(a.v_rows + o, m, vw);
        widened = true;
      }
      AttendGroupI8<R, kQueryGroup>(a, idx, num, o, m, kw, vw, p, ahead);
      num = 0;
    }
  }
  ahead.Rest();
}

}  // namespace

void AttendBlock(const AttendBlockArgs& a) {
  switch (a.rows_dtype) {
    case DType::kF16:
      return simd::AttendBlockGrouped<Vec, DType::kF16, kQueryGroup>(a);
    case DType::kBF16:
      return simd::AttendBlockGrouped<Vec, DType::kBF16, kQueryGroup>(a);
    case DType::kI8:
      if (a.q_i8 != nullptr && a.head_dim % 64 == 0) {
        switch (a.head_dim / 64) {
          case 1:
            return AttendBlockI8<1>(a);
          case 2:
            return AttendBlockI8<2>(a);
          case 3:
            return AttendBlockI8<3>(a);
          case 4:
            return AttendBlockI8<4>(a);
          default:
            break;
        }
      }
      return simd::AttendBlockGrouped<Vec, DType::kI8, kQueryGroup>(a);
    default:
      return simd::AttendBlockGrouped<Vec, DType::kF32, kQueryGroup>(a);
  }
}

namespace {

// The 8 int32 lanes of v, each in [-128, 127], as the bytes q[0, left) (all 8 for left >= 8).
inline void StoreI32AsI8(int8_t* q, __m256i v, int64_t left) {
  const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i bytes = _mm_packs_epi16(words, words);
  if (left >= kWidth) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q), bytes);
    return;
  }
  alignas(16) int8_t b[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(b), bytes);
  std::memcpy(q, b, left);
}

}  // namespace

// kernels/kv_quant.h's QuantizeQueryRow 8 lanes at a time, as attention_avx512.cc's at 16: the
// same reciprocal, fused rounding, clamp and split per element, so the same bytes, scale and sum
// (max and integer sums are exact in any order). Its scalar form took about 600 cycles a row of 64
// (Zen 3), half the driver's time around this kernel at 64 decode rows (bench_ops --decode, 64 x
// 576). A row holding NaN (its output is NaN anyway) takes the scalar function.
float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  int nan = 0;
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m256 v = LoadTail(x + i, n - i);  // zeros past n
    nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v));
  }
  if (nan != 0) return QuantizeQueryRow(x, n, q, sum);
  float scale, inverse;
  *sum = 0;
  if (!QueryRowScale(HorizontalMax(amax), &scale, &inverse)) {
    std::memset(q, 0, 2 * n);
    return scale;
  }
  const __m256 inverse_v = _mm256_set1_ps(inverse);
  const __m256 magic = _mm256_set1_ps(kRoundingMagic);
  const __m256 lo = _mm256_set1_ps(-static_cast<float>(kQueryMax));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(kQueryMax));
  const __m256i half = _mm256_set1_epi32(128);
  __m256i total = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m256 r =
        _mm256_sub_ps(_mm256_fmadd_ps(LoadTail(x + i, n - i), inverse_v, magic), magic);
    const __m256i v = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));  // integral
    const __m256i high = _mm256_srai_epi32(_mm256_add_epi32(v, half), 8);
    StoreI32AsI8(q + i, high, n - i);
    StoreI32AsI8(q + n + i, _mm256_sub_epi32(v, _mm256_slli_epi32(high, 8)), n - i);
    total = _mm256_add_epi32(total, v);  // lanes past n hold 0
  }
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  *sum = _mm_cvtsi128_si32(s);
  return scale;
}

// kernels/kv_quant.h's QuantizeKvRow 8 lanes at a time, as attention_avx512.cc's at 16: the same
// maximum (a NaN element left out of it, as there), binary16 scale, IEEE division and rounding, and
// a NaN element stored as 127 (vminps returns its second operand for NaN), so the same bytes and
// scale. Run for every K and V row an int8 cache stores: the scalar form's division per element
// took ~4 cycles (Zen 3).
uint16_t QuantizeKv(const float* x, int64_t n, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += kWidth)
    amax = _mm256_max_ps(_mm256_andnot_ps(sign, LoadTail(x + i, n - i)), amax);  // NaN: amax
  uint16_t scale_bits;
  const float scale = KvRowScale(HorizontalMax(amax), &scale_bits);
  if (scale == 0) {
    std::memset(q, 0, n);
    return 0;
  }
  const __m256 scale_v = _mm256_set1_ps(scale);
  const __m256 magic = _mm256_set1_ps(kRoundingMagic);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m256 r =
        _mm256_sub_ps(_mm256_add_ps(_mm256_div_ps(LoadTail(x + i, n - i), scale_v), magic), magic);
    StoreI32AsI8(q + i, _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(r, hi), lo)), n - i);
  }
  return scale_bits;
}

}  // namespace tinyserve::kernels::cpu::avx2
