// AVX-512 AttendBlock: one online-softmax step over a block of keys/values, read either from f32
// rows or straight from the cache (f32/f16/bf16 rows with a stride, converted in registers).
// GCC 12's AVX-512 intrinsics (max/min/extract/unpack) read a deliberately undefined register
// and trip -Wmaybe-uninitialized / -Wuninitialized when inlined: known false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd_avx512.h"

namespace tinyserve::kernels::cpu::avx512 {
namespace {

// Adds the lanes of each of 16 vectors: result lane t = sum of v[t]'s 16 lanes. A transpose-add
// tree (45 instructions instead of 16 separate reductions); every v[t] goes through the same
// tree whatever t is, so a score never depends on its slot.
__m512 ReduceAdd16(__m512 v[16]) {
  __m512 l1[8];
  for (int i = 0; i < 8; ++i) {
    l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                          _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m512 l2[4];
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(l1[2 * i]);
    const __m512d b = _mm512_castps_pd(l1[2 * i + 1]);
    l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                          _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  __m512 l3[2];
  for (int i = 0; i < 2; ++i) {
    l3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Keys per block the grouped path handles (larger blocks take the one-query-at-a-time path).
constexpr int32_t kMaxGroupKeys = 64;

// Lanes [0, left) of the row starting at element i of a cache row in kType, as f32 (exact).
template <DType kType>
inline __m512 LoadRow(const void* row, int64_t i, int64_t left) {
  if constexpr (kType == DType::kF32) {
    return LoadPart(static_cast<const float*>(row) + i, left);
  } else {
    const uint16_t* h = static_cast<const uint16_t*>(row) + i;
    if (left >= kWidth) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
      if constexpr (kType == DType::kF16) return _mm512_cvtph_ps(bits);
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
    }
    const __mmask16 m = TailMask(left <= 0 ? 0 : left);
    if constexpr (kType == DType::kF16) return LoadF16(h, m);
    return LoadBf16(h, m);
  }
}

template <DType kType>
inline const void* RowAt(const void* base, int64_t row, int64_t stride) {
  constexpr int64_t kElem = kType == DType::kF32 ? 4 : 2;
  return static_cast<const uint8_t*>(base) + row * stride * kElem;
}

// scores[t] = dot(q, k[t]) * scale for t < n, 16 keys at a time, for head_dim <= 16 * kChunks
// (q stays in registers). Slots past n reuse key n - 1 and are never stored.
template <int kChunks, DType kType>
void Scores(const float* q, const void* k, int64_t stride, int32_t n, int64_t hd, float scale,
            float* scores) {
  __m512 qv[kChunks];
  for (int c = 0; c < kChunks; ++c) qv[c] = LoadPart(q + c * kWidth, hd - c * kWidth);
  const __m512 scale_v = _mm512_set1_ps(scale);
  for (int32_t t0 = 0; t0 < n; t0 += 16) {
    __m512 partial[16];
#pragma GCC unroll 16
    for (int32_t t = 0; t < 16; ++t) {
      const int32_t row = t0 + t < n ? t0 + t : n - 1;
      const void* kt = RowAt<kType>(k, row, stride);
      __m512 sum = _mm512_mul_ps(qv[0], LoadRow<kType>(kt, 0, hd));
      for (int c = 1; c < kChunks; ++c) {
        sum = _mm512_fmadd_ps(qv[c], LoadRow<kType>(kt, c * kWidth, hd - c * kWidth), sum);
      }
      partial[t] = sum;
    }
    StorePart(scores + t0, _mm512_mul_ps(ReduceAdd16(partial), scale_v), n - t0);
  }
}

// The same for any head_dim (q read from memory).
template <DType kType>
void ScoresAnyDim(const float* q, const void* k, int64_t stride, int32_t n, int64_t hd,
                  float scale, float* scores) {
  const __m512 scale_v = _mm512_set1_ps(scale);
  for (int32_t t0 = 0; t0 < n; t0 += 16) {
    __m512 partial[16];
    for (int32_t t = 0; t < 16; ++t) {
      const int32_t row = t0 + t < n ? t0 + t : n - 1;
      const void* kt = RowAt<kType>(k, row, stride);
      partial[t] = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; d += kWidth) {
        partial[t] = _mm512_fmadd_ps(LoadPart(q + d, hd - d), LoadRow<kType>(kt, d, hd - d),
                                     partial[t]);
      }
    }
    StorePart(scores + t0, _mm512_mul_ps(ReduceAdd16(partial), scale_v), n - t0);
  }
}

template <DType kType>
void Scores(const float* q, const void* k, int64_t stride, int32_t n, int64_t hd, float scale,
            float* scores) {
  if (hd <= 4 * kWidth) {
    Scores<4, kType>(q, k, stride, n, hd, scale, scores);
  } else if (hd <= 8 * kWidth) {
    Scores<8, kType>(q, k, stride, n, hd, scale, scores);
  } else {
    ScoresAnyDim<kType>(q, k, stride, n, hd, scale, scores);
  }
}

// acc[0, hd) = acc * correction + sum_t p[t] * v[t], four 16-lane column chunks at a time
// (independent FMA chains; each lane still adds the tokens in order).
template <DType kType>
void UpdateAcc(float* acc, const float* p, const void* v, int64_t stride, int32_t nv, int64_t hd,
               float correction) {
  const __m512 corr_v = _mm512_set1_ps(correction);
  for (int64_t d0 = 0; d0 < hd; d0 += 4 * kWidth) {
    __m512 x[4];
    int64_t left[4];
    for (int u = 0; u < 4; ++u) {
      left[u] = hd - (d0 + u * kWidth);
      x[u] = _mm512_mul_ps(LoadPart(acc + d0 + u * kWidth, left[u]), corr_v);
    }
    for (int32_t t = 0; t < nv; ++t) {
      const __m512 pt = _mm512_set1_ps(p[t]);
      const void* vt = RowAt<kType>(v, t, stride);
      for (int u = 0; u < 4; ++u) {
        x[u] = _mm512_fmadd_ps(pt, LoadRow<kType>(vt, d0 + u * kWidth, left[u]), x[u]);
      }
    }
    for (int u = 0; u < 4; ++u) StorePart(acc + d0 + u * kWidth, x[u], left[u]);
  }
}

// Scores of query i over the first nv keys, then the online-softmax update of its max and sum:
// leaves exp(score - new max) in p[0, nv) and returns the factor that rescales its accumulator.
template <DType kType>
float SoftmaxStep(const AttendBlockArgs& a, int32_t i, const void* k, int64_t stride, int32_t nv,
                  float* p) {
  const int64_t hd = a.head_dim;
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  Scores<kType>(a.q + i * hd, k, stride, nv, hd, a.scale, p);
  __m512 mx = neg_inf;
  for (int32_t t = 0; t < nv; t += kWidth) {
    const __m512 s = nv - t >= kWidth
                         ? _mm512_loadu_ps(p + t)
                         : _mm512_mask_loadu_ps(neg_inf, TailMask(nv - t), p + t);
    mx = _mm512_max_ps(mx, s);
  }
  const float block_max = ReduceMax(mx);
  const float old_max = a.max[i];
  const float new_max = old_max > block_max ? old_max : block_max;
  const float correction = old_max == -__builtin_inff()
                               ? 0.0f
                               : _mm512_cvtss_f32(Exp(_mm512_set1_ps(old_max - new_max)));
  const __m512 max_v = _mm512_set1_ps(new_max);
  __m512 psum = _mm512_setzero_ps();
  for (int32_t t = 0; t < nv; t += kWidth) {
    const int64_t left = nv - t;
    __m512 e = Exp(_mm512_sub_ps(LoadPart(p + t, left), max_v));
    if (left < kWidth) e = _mm512_maskz_mov_ps(TailMask(left), e);
    psum = _mm512_add_ps(psum, e);
    StorePart(p + t, e, left);
  }
  a.sum[i] = a.sum[i] * correction + ReduceAdd(psum);
  a.max[i] = new_max;
  return correction;
}

// Queries i0 .. i0 + NQ - 1, all seeing the same nv keys, with head_dim <= 64: the accumulator
// updates of the NQ queries run side by side, sharing each value row and giving the FMA chains
// NQ times more independent work. Each lane of each query gets exactly UpdateAcc's operations.
template <DType kType, int NQ>
void AttendQueries(const AttendBlockArgs& a, int32_t i0, const void* k, const void* v,
                   int64_t stride, int32_t nv, float (*p)[kMaxGroupKeys]) {
  const int64_t hd = a.head_dim;
  float correction[NQ];
  for (int q = 0; q < NQ; ++q) correction[q] = SoftmaxStep<kType>(a, i0 + q, k, stride, nv, p[q]);
  int64_t left[4];
  for (int u = 0; u < 4; ++u) left[u] = hd - u * kWidth;
  __m512 x[NQ][4];
  for (int q = 0; q < NQ; ++q) {
    const __m512 corr_v = _mm512_set1_ps(correction[q]);
    for (int u = 0; u < 4; ++u)
      x[q][u] = _mm512_mul_ps(LoadPart(a.acc + (i0 + q) * hd + u * kWidth, left[u]), corr_v);
  }
  for (int32_t t = 0; t < nv; ++t) {
    const void* vt = RowAt<kType>(v, t, stride);
    __m512 vv[4];
    for (int u = 0; u < 4; ++u) vv[u] = LoadRow<kType>(vt, u * kWidth, left[u]);
    for (int q = 0; q < NQ; ++q) {
      const __m512 pt = _mm512_set1_ps(p[q][t]);
      for (int u = 0; u < 4; ++u) x[q][u] = _mm512_fmadd_ps(pt, vv[u], x[q][u]);
    }
  }
  for (int q = 0; q < NQ; ++q)
    for (int u = 0; u < 4; ++u) StorePart(a.acc + (i0 + q) * hd + u * kWidth, x[q][u], left[u]);
}

template <DType kType>
void AttendBlockTyped(const AttendBlockArgs& a, const void* k, const void* v, int64_t stride) {
  const int64_t hd = a.head_dim;
  const bool grouped = hd <= 4 * kWidth && a.n <= kMaxGroupKeys;
  alignas(64) float p[4][kMaxGroupKeys];
  for (int32_t i = 0; i < a.num_q;) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) {
      ++i;
      continue;
    }
    if (!grouped) {
      const float correction = SoftmaxStep<kType>(a, i, k, stride, nv, a.scores);
      UpdateAcc<kType>(a.acc + i * hd, a.scores, v, stride, nv, hd, correction);
      ++i;
      continue;
    }
    // The run of following queries that see the same keys (the heads of one query row).
    int32_t run = 1;
    while (run < 4 && i + run < a.num_q &&
           (a.num_valid[i + run] < a.n ? a.num_valid[i + run] : a.n) == nv)
      ++run;
    switch (run) {
      case 4: AttendQueries<kType, 4>(a, i, k, v, stride, nv, p); break;
      case 3: AttendQueries<kType, 3>(a, i, k, v, stride, nv, p); break;
      case 2: AttendQueries<kType, 2>(a, i, k, v, stride, nv, p); break;
      default: AttendQueries<kType, 1>(a, i, k, v, stride, nv, p); break;
    }
    i += run;
  }
}

}  // namespace

void AttendBlock(const AttendBlockArgs& a) {
  if (a.k_cache == nullptr) return AttendBlockTyped<DType::kF32>(a, a.k, a.v, a.head_dim);
  switch (a.cache_dtype) {
    case DType::kF16:
      return AttendBlockTyped<DType::kF16>(a, a.k_cache, a.v_cache, a.cache_stride);
    case DType::kBF16:
      return AttendBlockTyped<DType::kBF16>(a, a.k_cache, a.v_cache, a.cache_stride);
    default:
      return AttendBlockTyped<DType::kF32>(a, a.k_cache, a.v_cache, a.cache_stride);
  }
}

}  // namespace tinyserve::kernels::cpu::avx512
