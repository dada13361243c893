// AVX-512 AttendBlock: one online-softmax step over a run of keys/values, read through row
// pointers either from f32 rows or straight from the cache (f16/bf16/int8 converted in
// registers; int8 rows times their scale). Short steps with head_dim <= 64 take the grouped path
// below (keys transposed once for up to eight queries); the rest attention_simd.h's shared path.
// Int8 rows with head_dim a multiple of 64 take an integer path (VNNI q.k and p.v, below). GCC 12's
// AVX-512 intrinsics (max/min/extract/unpack) read a deliberately undefined register and trip
// -Wmaybe-uninitialized / -Wuninitialized when inlined: known false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/int_dots_avx512.h"
#include "kernels/cpu/simd_avx512.h"
#include "kernels/kv_quant.h"
#include "kernels/prefetch.h"

namespace tinyserve::kernels::cpu::avx512 {
namespace {

// The first half of an online-softmax update of NQ queries over their scores p[g][0, nv[g])
// (rows of kKeys): each query's new running max (its old one or the block's, whichever is
// larger) and the factor its old state is scaled by. Phase by phase across the queries, not
// query by query: a query's max, its reduction and its correction form one chain of dependent
// instructions, longer than the out-of-order window can overlap with the next query's; side by
// side the NQ chains overlap, and the NQ corrections come from one vector exp (lane g is the
// value Correction computes for query g: Exp works lane by lane). The softmax step is about a
// quarter of decode attention (bench_ops --threads 1 --decode, int8 64 x 576 with it skipped:
// 1.25 -> 0.93 ms); phased, the whole attention took 4-9% less there (int8 64 x 576 1.50 / 1.45
// / 1.32 -> 1.31 / 1.37 / 1.15 ms, alternating).
template <int NQ, int kKeys>
void NewMax(const AttendBlockArgs& a, const int32_t* idx, const int32_t* nv,
            const float (*p)[kKeys], float* new_max, float* correction) {
  static_assert(NQ <= kWidth);
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __m512 mx[NQ];
  for (int g = 0; g < NQ; ++g) {
    mx[g] = neg_inf;
    for (int32_t t = 0; t < nv[g]; t += kWidth) {
      const __mmask16 live = nv[g] - t >= kWidth ? 0xFFFF : TailMask(nv[g] - t);
      mx[g] = _mm512_mask_max_ps(mx[g], live, mx[g], _mm512_load_ps(p[g] + t));
    }
  }
  alignas(64) float diff[kWidth] = {};
  for (int g = 0; g < NQ; ++g) {
    const float block_max = ReduceMax(mx[g]);
    const float old_max = a.max[idx[g]];
    new_max[g] = old_max > block_max ? old_max : block_max;
    diff[g] = old_max - new_max[g];
  }
  alignas(64) float corr[kWidth];
  _mm512_store_ps(corr, Exp(_mm512_load_ps(diff)));
  for (int g = 0; g < NQ; ++g) correction[g] = a.max[idx[g]] == -__builtin_inff() ? 0.0f : corr[g];
}

// The online-softmax update of NQ queries over their scores p[g][0, nv[g]) (rows of kKeys):
// folds the block's max and sum into a.max / a.sum, returns the factor each query's old state is
// scaled by, and leaves in p the weights exp(score - max), exactly 0 from nv[g] to max_nv.
template <int NQ, int kKeys>
void SoftmaxStep(const AttendBlockArgs& a, const int32_t* idx, const int32_t* nv, int32_t max_nv,
                 float (*p)[kKeys], float* correction) {
  float new_max[NQ];
  NewMax<NQ, kKeys>(a, idx, nv, p, new_max, correction);
  __m512 psum[NQ];
  for (int g = 0; g < NQ; ++g) {
    const __m512 max_v = _mm512_set1_ps(new_max[g]);
    psum[g] = _mm512_setzero_ps();
    for (int32_t t = 0; t < max_nv; t += kWidth) {
      const int64_t left = nv[g] - t;
      const __mmask16 live = left >= kWidth ? 0xFFFF : TailMask(left <= 0 ? 0 : left);
      const __m512 e =
          _mm512_maskz_mov_ps(live, Exp(_mm512_sub_ps(_mm512_load_ps(p[g] + t), max_v)));
      psum[g] = _mm512_add_ps(psum[g], e);
      _mm512_store_ps(p[g] + t, e);
    }
  }
  for (int g = 0; g < NQ; ++g) {
    a.sum[idx[g]] = a.sum[idx[g]] * correction[g] + ReduceAdd(psum[g]);
    a.max[idx[g]] = new_max[g];
  }
}

// Online-softmax step of the NQ queries idx[0 .. NQ - 1] over a run of keys are transposed
// in kt (hd <= 64, n <= simd::kGroupMaxKeys). Scores come 16 keys per vector from two FMA chains
// per query (even and odd dimensions); the accumulator updates share each value row. A query's
// arithmetic is the same whichever queries share its group: it sees only its own chains, and the
// keys it does not see (t >= its nv, up to the group's longest) get weight exactly 0.
template <DType kType, int NQ>
void AttendQueriesT(const AttendBlockArgs& a, const int32_t* idx, const __m512* kt,
                    const void* const* v, const float* vs, float (*p)[simd::kGroupMaxKeys],
                    simd::ReadAhead& ahead) {
  const int64_t hd = a.head_dim;
  const __m512 scale_v = _mm512_set1_ps(a.scale);
  const float* q[NQ];
  int32_t nv[NQ];
  const int32_t max_nv = simd::GroupQueries<NQ>(a, idx, q, nv);
  for (int32_t j = 0; j * kWidth < max_nv; ++j) {
    const __m512* ktj = kt + j * hd;
    __m512 even[NQ], odd[NQ];
    for (int g = 0; g < NQ; ++g) even[g] = odd[g] = _mm512_setzero_ps();
    int64_t d = 0;
    for (; d + 1 < hd; d += 2) {
      for (int g = 0; g < NQ; ++g) {
        even[g] = _mm512_fmadd_ps(_mm512_set1_ps(q[g][d]), ktj[d], even[g]);
        odd[g] = _mm512_fmadd_ps(_mm512_set1_ps(q[g][d + 1]), ktj[d + 1], odd[g]);
      }
    }
    if (d < hd) {
      for (int g = 0; g < NQ; ++g)
        even[g] = _mm512_fmadd_ps(_mm512_set1_ps(q[g][d]), ktj[d], even[g]);
    }
    for (int g = 0; g < NQ; ++g) {
      _mm512_store_ps(p[g] + j * kWidth, _mm512_mul_ps(_mm512_add_ps(even[g], odd[g]), scale_v));
    }
  }
  float correction[NQ];
  SoftmaxStep<NQ>(a, idx, nv, max_nv, p, correction);
  // 32 columns at a time: up to 8 queries x 2 accumulators stay in registers, so each value row
  // is converted once for a whole GQA group (the column split leaves each lane's sum as it is).
  for (int64_t c = 0; c < hd; c += 2 * kWidth) {
    const int64_t left[2] = {hd - c, hd - c - kWidth};
    __m512 x[NQ][2];
    for (int g = 0; g < NQ; ++g) {
      const __m512 corr_v = _mm512_set1_ps(correction[g]);
      for (int u = 0; u < 2; ++u)
        x[g][u] = _mm512_mul_ps(LoadPart(a.acc + idx[g] * hd + c + u * kWidth, left[u]), corr_v);
    }
    for (int32_t t = 0; t < max_nv; ++t) {
      ahead.Some();
      const void* vt = v[t];
      __m512 vv[2];
      const float rs = simd::RowScale<Vec, kType>(vs, t);
      for (int u = 0; u < 2; ++u)
        vv[u] = simd::LoadRow<Vec, kType>(vt, c + u * kWidth, left[u], rs);
      for (int g = 0; g < NQ; ++g) {
        const __m512 pt = _mm512_set1_ps(p[g][t]);
        for (int u = 0; u < 2; ++u) x[g][u] = _mm512_fmadd_ps(pt, vv[u], x[g][u]);
      }
    }
    for (int g = 0; g < NQ; ++g)
      for (int u = 0; u < 2; ++u) StorePart(a.acc + idx[g] * hd + c + u * kWidth, x[g][u], left[u]);
  }
}

// Queries per group of the grouped paths (a decode row's whole GQA group for Qwen2.5-0.5B's 7).
constexpr int kQueryGroup = 8;

template <DType kType, int NQ>
void AttendGroupT(const AttendBlockArgs& a, const int32_t* idx, int num, const __m512* kt,
                  const void* const* v, const float* vs, float (*p)[simd::kGroupMaxKeys],
                  simd::ReadAhead& ahead) {
  if constexpr (NQ > 1) {
    if (num < NQ) return AttendGroupT<kType, NQ - 1>(a, idx, num, kt, v, vs, p, ahead);
  }
  AttendQueriesT<kType, NQ>(a, idx, kt, v, vs, p, ahead);
}

// The int8 cache's path (VNNI): queries rounded to 16 bits held as two int8 rows
// (AttendBlockArgs::q_i8, kv_quant.h), so q.k is an exact integer dot (256 * hi.k + lo.k), 16 keys
// per vector from keys transposed four bytes at a time, times the query's and the key's scales; the
// value scale is folded into the softmax weight, and p.v is an integer dot on those weights rounded
// to int16 (AttendQueriesI8). Keys in sub-steps of kI8Keys (fixed by position within the step, so a
// query's arithmetic depends only on its position; the driver's steps for this path are as long,
// attention.cc); head_dim a multiple of 64 up to 256 (R = head_dim / 64 rows of 64 bytes per key).
constexpr int32_t kI8Keys = 128;
static_assert(int64_t{kI8Keys} * 32767 * 128 < (int64_t{1} << 31), "p.v sums must fit int32");

inline int32_t LoadI32(const int8_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

// SoftmaxStep for the int8 path, its weights written straight as int16 for p.v (an exact integer
// dot too: vpdpwssd, two keys per 32-bit lane, half the instructions of the f32 FMAs it
// replaces): per query w[g][t] = round(exp(score - max) * vs[t] / unit[g]) with the value scales
// vs folded in, exactly 0 from nv[g] to max_nv, and unit[g] its largest weight / 32767, so each
// weight moves by at most half a unit. Two phases across the queries, as NewMax: first every
// query's float weights (stored over its scores in p; base 2: Exp2NonPositive) with its largest
// weight and sum, then every query's rounding. Done query by query, weights in registers, each
// rounding waited on its own largest weight (a reduction and a division) and held up the next
// query's exponentials; the softmax was ~23% of int8 decode attention (bench_ops --threads 1
// --decode, 64 x 576 with it skipped: 0.69 -> 0.53 ms), and phased the whole took 0.680-0.696 ->
// 0.660-0.672 ms there (4 alternating pairs). (An older form that stored the floats and reread
// them in a max pass of its own had been slower: ~30% of the attention.) At most kI8Keys keys of
// 32767 x 127 keep the int32 sums exact. A NaN query leaves garbage weights, but its NaN sum makes
// its output NaN all the same.
template <int NQ>
void SoftmaxStepI8(const AttendBlockArgs& a, const int32_t* idx, const int32_t* nv, int32_t max_nv,
                   float (*p)[kI8Keys], const float* vs, int16_t (*w)[kI8Keys], float* unit,
                   float* correction) {
  float new_max[NQ], largest[NQ], total[NQ];
  NewMax<NQ, kI8Keys>(a, idx, nv, p, new_max, correction);
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  for (int g = 0; g < NQ; ++g) {
    // exp(score - max) as 2^(score * log2(e) - max * log2(e)): one FMA into Exp2NonPositive.
    const __m512 max2 = _mm512_set1_ps(new_max[g] * 1.44269504088896341f);
    __m512 psum = _mm512_setzero_ps(), wmax = _mm512_setzero_ps();
    for (int32_t t = 0; t < max_nv; t += kWidth) {
      const int64_t left = nv[g] - t;
      const __mmask16 live = left >= kWidth ? 0xFFFF : TailMask(left <= 0 ? 0 : left);
      const __m512 e = _mm512_maskz_mov_ps(
          live, Exp2NonPositive(_mm512_fmsub_ps(_mm512_load_ps(p[g] + t), log2e, max2)));
      psum = _mm512_add_ps(psum, e);
      const __m512 weight = _mm512_mul_ps(e, _mm512_maskz_loadu_ps(live, vs + t));
      wmax = _mm512_max_ps(wmax, weight);
      _mm512_store_ps(p[g] + t, weight);
    }
    largest[g] = ReduceMax(wmax);
    total[g] = ReduceAdd(psum);
  }
  for (int g = 0; g < NQ; ++g) {
    unit[g] = largest[g] / 32767.0f;
    const __m512 inv = _mm512_set1_ps(largest[g] > 0 ? 32767.0f / largest[g] : 0.0f);
    for (int32_t t = 0; t < max_nv; t += kWidth) {
      const __m512i wi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(p[g] + t), inv));
      _mm256_store_si256(reinterpret_cast<__m256i*>(w[g] + t), _mm512_cvtsepi32_epi16(wi));
    }
    a.sum[idx[g]] = a.sum[idx[g]] * correction[g] + total[g];
    a.max[idx[g]] = new_max[g];
  }
}

// kt[(j * R + c) * 16 + w]: bytes 4w .. 4w + 3 of 64-byte chunk c of keys 16j .. 16j + 15, each
// byte + 128 (unsigned, for vpdpbusd); key slots past m repeat key m - 1 (never used).
template <int R>
void TransposeKeysI8(const void* const* k, int32_t m, __m512i* kt) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int32_t j = 0; j * kWidth < m; ++j) {
    for (int c = 0; c < R; ++c) {
      __m512 r[16];
      for (int32_t t = 0; t < 16; ++t) {
        const int32_t row = j * 16 + t < m ? j * 16 + t : m - 1;
        const __m512i bytes = _mm512_loadu_si512(static_cast<const int8_t*>(k[row]) + 64 * c);
        r[t] = _mm512_castsi512_ps(_mm512_xor_si512(bytes, flip));
      }
      Transpose16(r, reinterpret_cast<__m512*>(kt + (j * R + c) * 16));
    }
  }
}

// One online-softmax step of the NQ queries idx[] over keys [o, o + m) of the step, the keys
// transposed in kt.
template <int NQ, int R>
void AttendQueriesI8(const AttendBlockArgs& a, const int32_t* idx, int32_t o, int32_t m,
                     const __m512i* kt, float (*p)[kI8Keys], simd::ReadAhead& ahead) {
  constexpr int64_t hd = 64 * R;
  const int8_t* q[NQ];
  int32_t nv[NQ];
  int32_t max_nv = 0;
  __m512i bias[NQ];
  __m512 qscale[NQ];
  for (int g = 0; g < NQ; ++g) {
    q[g] = a.q_i8 + idx[g] * 2 * hd;
    const int32_t valid = a.num_valid[idx[g]] - o;
    nv[g] = valid < m ? valid : m;
    max_nv = nv[g] > max_nv ? nv[g] : max_nv;
    bias[g] = _mm512_set1_epi32(128 * a.q_sums[idx[g]]);
    qscale[g] = _mm512_set1_ps(a.q_scales[idx[g]] * a.scale);
  }
  for (int32_t j = 0; j * kWidth < max_nv; ++j) {
    const __m512i* ktj = kt + j * R * 16;
    // Two chains per query, its high and its low bytes: 2 NQ accumulators, within the 32
    // registers with the keys.
    I32x16 high[NQ], low[NQ];
    for (int g = 0; g < NQ; ++g) high[g] = low[g] = I32x16{};
    for (int w = 0; w < R * 16; ++w) {
      const I32x16 k = AsI32x16(ktj[w]);
      for (int g = 0; g < NQ; ++g) {
        high[g] = DotBytes(high[g], k, AsI32x16(_mm512_set1_epi32(LoadI32(q[g] + 4 * w))));
        low[g] = DotBytes(low[g], k, AsI32x16(_mm512_set1_epi32(LoadI32(q[g] + hd + 4 * w))));
      }
    }
    const int32_t keys = m - j * kWidth;
    const __m512 ks =
        _mm512_maskz_loadu_ps(keys >= kWidth ? 0xFFFF : TailMask(keys), a.k_scales + o + j * 16);
    for (int g = 0; g < NQ; ++g) {
      // 256 * high + low - 128 * sum: exact, in int32 lanes that wrap (the high sum times 256
      // may pass 2^31 for head_dim 256; the final dot, |Q.k| <= 256 * 32512 * 127, does not).
      const __m512i full =
          _mm512_add_epi32(_mm512_slli_epi32(AsM512i(high[g]), 8), AsM512i(low[g]));
      const __m512i dot = _mm512_sub_epi32(full, bias[g]);
      _mm512_store_ps(p[g] + j * kWidth,
                      _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), ks), qscale[g]));
    }
  }
  alignas(64) int16_t w[NQ][kI8Keys];
  float unit[NQ], correction[NQ];
  SoftmaxStepI8<NQ>(a, idx, nv, max_nv, p, a.v_scales + o, w, unit, correction);
  // 32 columns at a time. A key pair's two value rows interleaved byte by byte (unpack within
  // 128-bit lanes) and widened to int16 give, in int32 lane i of `lo`, columns i (i < 8) and
  // 8 + i (i >= 8); of `hi` the 8 columns after each: the accumulators hold the columns in that
  // order, and the f32 state is permuted to it and back around the update (whole 128-bit lanes).
  for (int c = 0; c < 2 * R; ++c) {
    I32x16 dot[NQ][2];
    for (int g = 0; g < NQ; ++g) dot[g][0] = dot[g][1] = I32x16{};
    for (int32_t t = 0; t < max_nv; t += 2) {
      ahead.Some();
      // An odd last key pairs with itself: its partner's weight is 0.
      const int32_t t1 = t + 1 < max_nv ? t + 1 : t;
      const __m256i x0 = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(static_cast<const int8_t*>(a.v_rows[o + t]) + 32 * c));
      const __m256i x1 = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(static_cast<const int8_t*>(a.v_rows[o + t1]) + 32 * c));
      const I32x16 lo = AsI32x16(_mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(x0, x1)));
      const I32x16 hi = AsI32x16(_mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(x0, x1)));
      for (int g = 0; g < NQ; ++g) {
        int32_t pair;
        std::memcpy(&pair, w[g] + t, sizeof(pair));
        const I32x16 wp = AsI32x16(_mm512_set1_epi32(pair));
        dot[g][0] = DotWords(dot[g][0], lo, wp);
        dot[g][1] = DotWords(dot[g][1], hi, wp);
      }
    }
    for (int g = 0; g < NQ; ++g) {
      float* acc = a.acc + idx[g] * hd + c * 32;
      const __m512 n0 = _mm512_loadu_ps(acc), n1 = _mm512_loadu_ps(acc + 16);
      const __m512 corr_v = _mm512_set1_ps(correction[g]);
      const __m512 s = _mm512_set1_ps(unit[g]);
      const __m512 p0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(AsM512i(dot[g][0])), s,
                                        _mm512_mul_ps(_mm512_shuffle_f32x4(n0, n1, 0x44), corr_v));
      const __m512 p1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(AsM512i(dot[g][1])), s,
                                        _mm512_mul_ps(_mm512_shuffle_f32x4(n0, n1, 0xEE), corr_v));
      _mm512_storeu_ps(acc, _mm512_shuffle_f32x4(p0, p1, 0x44));
      _mm512_storeu_ps(acc + 16, _mm512_shuffle_f32x4(p0, p1, 0xEE));
    }
  }
}

constexpr int kI8Group = kQueryGroup;

template <int R, int NQ>
void AttendGroupI8(const AttendBlockArgs& a, const int32_t* idx, int num, int32_t o, int32_t m,
                   const __m512i* kt, float (*p)[kI8Keys], simd::ReadAhead& ahead) {
  if constexpr (NQ > 1) {
    if (num < NQ) return AttendGroupI8<R, NQ - 1>(a, idx, num, o, m, kt, p, ahead);
  }
  AttendQueriesI8<NQ, R>(a, idx, o, m, kt, p, ahead);
}

template <int R>
void AttendBlockI8(const AttendBlockArgs& a) {
  alignas(64) __m512i kt[kI8Keys / 16 * R * 16];
  alignas(64) float p[kI8Group][kI8Keys];
  simd::ReadAhead ahead(a, int64_t{(a.n + 1) / 2} * 2 * R);  // the p.v loops' key pairs
  for (int32_t o = 0; o < a.n; o += kI8Keys) {
    const int32_t m = a.n - o < kI8Keys ? a.n - o : kI8Keys;
    bool transposed = false;
    int32_t idx[kI8Group];
    int num = 0;
    for (int32_t i = 0; i <= a.num_q; ++i) {
      if (i < a.num_q) {
        if (a.num_valid[i] <= o) continue;  // sees no key of this sub-step: state untouched
        idx[num++] = i;
        if (num < kI8Group) continue;
      }
      if (num == 0) break;
      if (!transposed) {
        TransposeKeysI8<R>(a.k_rows + o, m, kt);
        transposed = true;
      }
      AttendGroupI8<R, kI8Group>(a, idx, num, o, m, kt, p, ahead);
      num = 0;
    }
  }
  ahead.Rest();
}

template <DType kType>
void AttendBlockTyped(const AttendBlockArgs& a, const void* const* k, const void* const* v) {
  const float* ks = a.k_scales;
  const float* vs = a.v_scales;
  const int64_t hd = a.head_dim;
  if (hd > simd::kGroupMaxHeadDim || a.n > simd::kGroupMaxKeys)
    return simd::AttendEachQuery<Vec, kType>(a);
  __m512 kt[simd::kGroupMaxKeys / kWidth * simd::kGroupMaxHeadDim];
  simd::TransposeKeys<Vec, kType>(k, ks, a.n, hd, kt);
  alignas(64) float p[kQueryGroup][simd::kGroupMaxKeys];
  simd::ReadAhead ahead(a, int64_t{a.n} * ((hd + 2 * kWidth - 1) / (2 * kWidth)));
  simd::ForEachQueryGroup<kQueryGroup>(a, [&](const int32_t* idx, int num) {
    AttendGroupT<kType, kQueryGroup>(a, idx, num, kt, v, vs, p, ahead);
  });
  ahead.Rest();
}

}  // namespace

// kernels/kv_quant.h's QuantizeQueryRow 16 lanes at a time: the same reciprocal, fused rounding,
// clamp and split per element, so the same bytes, scale and sum (max and integer sums are exact in
// any order). Run per query head row of every decode item, its scalar form took about a tenth of
// the int8 decode attention time. A row holding NaN (its output is NaN anyway) takes the scalar
// function.
float QuantizeQuery(const float* x, int64_t n, int8_t* q, int32_t* sum) {
  __m512 amax = _mm512_setzero_ps();
  __mmask16 nan = 0;
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m512 v = LoadPart(x + i, n - i);  // zeros past n
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
  }
  if (nan != 0) return QuantizeQueryRow(x, n, q, sum);
  float scale, inverse;
  *sum = 0;
  if (!QueryRowScale(ReduceMax(amax), &scale, &inverse)) {
    std::memset(q, 0, 2 * n);
    return scale;
  }
  const __m512 inverse_v = _mm512_set1_ps(inverse);
  const __m512 magic = _mm512_set1_ps(kRoundingMagic);
  const __m512 lo = _mm512_set1_ps(-static_cast<float>(kQueryMax));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(kQueryMax));
  const __m512i half = _mm512_set1_epi32(128);
  __m512i total = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m512 r =
        _mm512_sub_ps(_mm512_fmadd_ps(LoadPart(x + i, n - i), inverse_v, magic), magic);
    const __m512i v = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, lo), hi));  // integral
    const __m512i high = _mm512_srai_epi32(_mm512_add_epi32(v, half), 8);
    const __m512i low = _mm512_sub_epi32(v, _mm512_slli_epi32(high, 8));
    if (n - i >= kWidth) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(high));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + n + i), _mm512_cvtepi32_epi8(low));
    } else {
      _mm512_mask_cvtepi32_storeu_epi8(q + i, TailMask(n - i), high);
      _mm512_mask_cvtepi32_storeu_epi8(q + n + i, TailMask(n - i), low);
    }
    total = _mm512_add_epi32(total, v);  // lanes past n hold 0
  }
  *sum = _mm512_reduce_add_epi32(total);
  return scale;
}

// kernels/kv_quant.h's QuantizeKvRow 16 lanes at a time: the same maximum (a NaN element left out
// of it, as there), binary16 scale, IEEE division and rounding, and a NaN element stored as 127
// (vminps returns its second operand for NaN), so the same bytes and scale. Run for every K and V
// row the cache stores (RopeStoreKv), the scalar form's division per element took ~20 us a layer
// on one core for a decode step of 64 rows (64 x 2 KV heads x K and V: 256 rows of 64).
uint16_t QuantizeKv(const float* x, int64_t n, int8_t* q) {
  __m512 amax = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kWidth)
    amax = _mm512_max_ps(_mm512_abs_ps(LoadPart(x + i, n - i)), amax);  // NaN: amax
  uint16_t scale_bits;
  const float scale = KvRowScale(ReduceMax(amax), &scale_bits);
  if (scale == 0) {
    std::memset(q, 0, n);
    return 0;
  }
  const __m512 scale_v = _mm512_set1_ps(scale);
  const __m512 magic = _mm512_set1_ps(kRoundingMagic);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (int64_t i = 0; i < n; i += kWidth) {
    const __m512 r =
        _mm512_sub_ps(_mm512_add_ps(_mm512_div_ps(LoadPart(x + i, n - i), scale_v), magic), magic);
    const __m512i v = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(r, hi), lo));  // integral
    if (n - i >= kWidth) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
    } else {
      _mm512_mask_cvtepi32_storeu_epi8(q + i, TailMask(n - i), v);
    }
  }
  return scale_bits;
}

void AttendBlock(const AttendBlockArgs& a) {
  switch (a.rows_dtype) {
    case DType::kF16:
      return AttendBlockTyped<DType::kF16>(a, a.k_rows, a.v_rows);
    case DType::kBF16:
      return AttendBlockTyped<DType::kBF16>(a, a.k_rows, a.v_rows);
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
      return AttendBlockTyped<DType::kI8>(a, a.k_rows, a.v_rows);
    default:
      return AttendBlockTyped<DType::kF32>(a, a.k_rows, a.v_rows);
  }
}

}  // namespace tinyserve::kernels::cpu::avx512
