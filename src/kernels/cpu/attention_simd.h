// AttendBlock's one-query-at-a-time path written once against the vector interface (avx2::Vec,
// avx512::Vec): scores, the online-softmax update and the accumulator update, reading keys and
// values through AttendBlockArgs::k_rows / v_rows in any cache type (f32, f16, bf16, int8 times
// the row's scale; conversion to f32 is exact). attention_avx2.cc and attention_avx512.cc
// instantiate it under their own target flags (the AVX-512 file adds a grouped path for short
// head dims). Every template takes the per-ISA Vec, so no instantiation is shared between
// targets. Same thread rules as cpu_kernels.h.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/prefetch.h"

namespace tinyserve::kernels::cpu::simd {

// Lanes [0, left) of the row starting at element i of a cache row in kType, as f32 (kI8 rows are
// int8 times the row's scale, see kernels/kv_quant.h).
template <class Vec, DType kType>
inline typename Vec::V LoadRow(const void* row, int64_t i, int64_t left, float scale) {
  if constexpr (kType == DType::kF32) {
    return Vec::LoadPart(static_cast<const float*>(row) + i, left);
  } else if constexpr (kType == DType::kI8) {
    return Vec::Mul(Vec::LoadI8Part(static_cast<const int8_t*>(row) + i, left), Vec::Set1(scale));
  } else if constexpr (kType == DType::kF16) {
    return Vec::LoadF16Part(static_cast<const uint16_t*>(row) + i, left);
  } else {
    return Vec::LoadBf16Part(static_cast<const uint16_t*>(row) + i, left);
  }
}

// The scale of row t (kI8 only; other types ignore it and may pass no scales).
template <class Vec, DType kType>
inline float RowScale(const float* scales, int32_t t) {
  if constexpr (kType == DType::kI8) return scales[t];
  return 1.0f;
}

// scores[t] = dot(q, k[t]) * scale for t < n, kWidth keys at a time, for head_dim <= kWidth *
// kChunks (q stays in registers). Slots past n reuse key n - 1 and are never stored.
template <class Vec, int kChunks, DType kType>
void ScoresQInRegisters(const float* q, const void* const* k, const float* ks, int32_t n,
                        int64_t hd, float scale, float* scores) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  V qv[kChunks];
  for (int c = 0; c < kChunks; ++c) qv[c] = Vec::LoadPart(q + c * kW, hd - c * kW);
  const V scale_v = Vec::Set1(scale);
  for (int32_t t0 = 0; t0 < n; t0 += kW) {
    V partial[kW];
#pragma GCC unroll 16
    for (int32_t t = 0; t < kW; ++t) {
      const int32_t row = t0 + t < n ? t0 + t : n - 1;
      const void* kt = k[row];
      const float rs = RowScale<Vec, kType>(ks, row);
      V sum = Vec::Mul(qv[0], LoadRow<Vec, kType>(kt, 0, hd, rs));
      for (int c = 1; c < kChunks; ++c) {
        sum = Vec::Fmadd(qv[c], LoadRow<Vec, kType>(kt, c * kW, hd - c * kW, rs), sum);
      }
      partial[t] = sum;
    }
    Vec::StorePart(scores + t0, Vec::Mul(Vec::ReduceAddEach(partial), scale_v), n - t0);
  }
}

// The same for any head_dim (q read from memory).
template <class Vec, DType kType>
void ScoresAnyDim(const float* q, const void* const* k, const float* ks, int32_t n, int64_t hd,
                  float scale, float* scores) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  const V scale_v = Vec::Set1(scale);
  for (int32_t t0 = 0; t0 < n; t0 += kW) {
    V partial[kW];
    for (int32_t t = 0; t < kW; ++t) {
      const int32_t row = t0 + t < n ? t0 + t : n - 1;
      const void* kt = k[row];
      const float rs = RowScale<Vec, kType>(ks, row);
      partial[t] = Vec::Zero();
      for (int64_t d = 0; d < hd; d += kW) {
        partial[t] = Vec::Fmadd(Vec::LoadPart(q + d, hd - d),
                                LoadRow<Vec, kType>(kt, d, hd - d, rs), partial[t]);
      }
    }
    Vec::StorePart(scores + t0, Vec::Mul(Vec::ReduceAddEach(partial), scale_v), n - t0);
  }
}

template <class Vec, DType kType>
void Scores(const float* q, const void* const* k, const float* ks, int32_t n, int64_t hd,
            float scale, float* scores) {
  constexpr int64_t kW = Vec::kWidth;
  if constexpr (Vec::kMaxQChunks >= 8) {
    if (hd <= 4 * kW) return ScoresQInRegisters<Vec, 4, kType>(q, k, ks, n, hd, scale, scores);
    if (hd <= 8 * kW) return ScoresQInRegisters<Vec, 8, kType>(q, k, ks, n, hd, scale, scores);
  }
  ScoresAnyDim<Vec, kType>(q, k, ks, n, hd, scale, scores);
}

// acc[0, hd) = acc * correction + sum_t p[t] * v[t], four column chunks at a time (independent
// FMA chains; each lane still adds the tokens in order).
template <class Vec, DType kType>
void UpdateAcc(float* acc, const float* p, const void* const* v, const float* vs, int32_t nv,
               int64_t hd, float correction) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth;
  const V corr_v = Vec::Set1(correction);
  for (int64_t d0 = 0; d0 < hd; d0 += 4 * kW) {
    V x[4];
    int64_t left[4];
    for (int u = 0; u < 4; ++u) {
      left[u] = hd - (d0 + u * kW);
      x[u] = Vec::Mul(Vec::LoadPart(acc + d0 + u * kW, left[u]), corr_v);
    }
    for (int32_t t = 0; t < nv; ++t) {
      const V pt = Vec::Set1(p[t]);
      const void* vt = v[t];
      const float rs = RowScale<Vec, kType>(vs, t);
      for (int u = 0; u < 4; ++u) {
        x[u] = Vec::Fmadd(pt, LoadRow<Vec, kType>(vt, d0 + u * kW, left[u], rs), x[u]);
      }
    }
    for (int u = 0; u < 4; ++u) Vec::StorePart(acc + d0 + u * kW, x[u], left[u]);
  }
}

// The factor that rescales a running state whose max moves from old_max to new_max.
template <class Vec>
float Correction(float old_max, float new_max) {
  return old_max == -__builtin_inff() ? 0.0f : Vec::First(Vec::Exp(Vec::Set1(old_max - new_max)));
}

// Scores of query i over the first nv keys, then the online-softmax update of its max and sum:
// leaves exp(score - new max) in p[0, nv) and returns the factor that rescales its accumulator.
template <class Vec, DType kType>
float SoftmaxStep(const AttendBlockArgs& a, int32_t i, const void* const* k, const float* ks,
                  int32_t nv, float* p) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth;
  const int64_t hd = a.head_dim;
  const V neg_inf = Vec::Set1(-__builtin_inff());
  Scores<Vec, kType>(a.q + i * hd, k, ks, nv, hd, a.scale, p);
  V mx = neg_inf;
  for (int32_t t = 0; t < nv; t += kW) mx = Vec::Max(mx, Vec::LoadPartOr(p + t, nv - t, neg_inf));
  const float block_max = Vec::ReduceMax(mx);
  const float old_max = a.max[i];
  const float new_max = old_max > block_max ? old_max : block_max;
  const float correction = Correction<Vec>(old_max, new_max);
  const V max_v = Vec::Set1(new_max);
  V psum = Vec::Zero();
  for (int32_t t = 0; t < nv; t += kW) {
    const int64_t left = nv - t;
    const V e = Vec::ZeroPast(Vec::Exp(Vec::Sub(Vec::LoadPart(p + t, left), max_v)), left);
    psum = Vec::Add(psum, e);
    Vec::StorePart(p + t, e, left);
  }
  a.sum[i] = a.sum[i] * correction + Vec::ReduceAdd(psum);
  a.max[i] = new_max;
  return correction;
}

// Every query that sees a key, one at a time (the scores scratch holds one query's weights); the
// read-ahead goes out first.
template <class Vec, DType kType>
void AttendEachQuery(const AttendBlockArgs& a) {
  for (int32_t j = 0; j < a.num_prefetch; ++j) PrefetchLineToL2(a.prefetch[j]);
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) continue;
    const float correction = SoftmaxStep<Vec, kType>(a, i, a.k_rows, a.k_scales, nv, a.scores);
    UpdateAcc<Vec, kType>(a.acc + i * a.head_dim, a.scores, a.v_rows, a.v_scales, nv, a.head_dim,
                          correction);
  }
}

}  // namespace tinyserve::kernels::cpu::simd
