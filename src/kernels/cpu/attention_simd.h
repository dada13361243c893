// AttendBlock's shared paths written once against the vector interface (avx2::Vec,
// avx512::Vec): one query at a time (scores, the online-softmax update and the accumulator update)
// and the grouped path below (up to a GQA group of queries per converted key and value), reading
// keys and values through AttendBlockArgs::k_rows / v_rows in any cache type (f32, f16, bf16,
// int8 times the row's scale; conversion to f32 is exact). attention_avx2.cc instantiates both;
// attention_avx512.cc the one-query path and its own grouped path (two FMA chains per query and
// two value chunks per pass, which 16 ymm registers cannot hold: this one ran 5-10% slower there
// on prefill, bench_ops --threads 1) and its integer int8 path. Every template takes the per-ISA
// Vec, so no instantiation is shared between targets. Same thread rules as cpu_kernels.h.
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

// The online-softmax update of query i over its scores p[0, nv): folds their max and sum into
// a.max[i] / a.sum[i], leaves exp(score - new max) in p[0, nv) and exactly 0 in p[nv, width)
// (width >= nv: the grouped path's longest query), and returns the factor that rescales the
// query's accumulator. The zeros add nothing to the sum, so a query's result does not depend on
// width.
template <class Vec>
float SoftmaxUpdate(const AttendBlockArgs& a, int32_t i, float* p, int32_t nv, int32_t width) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth;
  const V neg_inf = Vec::Set1(-__builtin_inff());
  V mx = neg_inf;
  for (int32_t t = 0; t < nv; t += kW) mx = Vec::Max(mx, Vec::LoadPartOr(p + t, nv - t, neg_inf));
  const float block_max = Vec::ReduceMax(mx);
  const float old_max = a.max[i];
  const float new_max = old_max > block_max ? old_max : block_max;
  const float correction = Correction<Vec>(old_max, new_max);
  const V max_v = Vec::Set1(new_max);
  V psum = Vec::Zero();
  for (int32_t t = 0; t < width; t += kW) {
    const int64_t left = nv - t;
    const V e = Vec::ZeroPast(Vec::Exp(Vec::Sub(Vec::LoadPart(p + t, left), max_v)), left);
    psum = Vec::Add(psum, e);
    Vec::StorePart(p + t, e, width - t);
  }
  a.sum[i] = a.sum[i] * correction + Vec::ReduceAdd(psum);
  a.max[i] = new_max;
  return correction;
}

// Scores of query i over the first nv keys, then the online-softmax update of its max and sum:
// leaves exp(score - new max) in p[0, nv) and returns the factor that rescales its accumulator.
template <class Vec, DType kType>
float SoftmaxStep(const AttendBlockArgs& a, int32_t i, const void* const* k, const float* ks,
                  int32_t nv, float* p) {
  Scores<Vec, kType>(a.q + i * a.head_dim, k, ks, nv, a.head_dim, a.scale, p);
  return SoftmaxUpdate<Vec>(a, i, p, nv, nv);
}

// Every query that sees a key, one at a time (the scores scratch holds one query's weights); the
// read-ahead goes out first.
template <class Vec, DType kType>
void AttendEachQuery(const AttendBlockArgs& a) {
  PrefetchRunsToL2(a.prefetch, a.num_prefetch_runs);
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = a.num_valid[i] < a.n ? a.num_valid[i] : a.n;
    if (nv <= 0) continue;
    const float correction = SoftmaxStep<Vec, kType>(a, i, a.k_rows, a.k_scales, nv, a.scores);
    UpdateAcc<Vec, kType>(a.acc + i * a.head_dim, a.scores, a.v_rows, a.v_scales, nv, a.head_dim,
                          correction);
  }
}

// AttendBlockArgs::prefetch, a few lines per value row of the accumulator updates (the longest
// loop of a step: `rows` of them), the rest at the end of the step (see AttendBlockArgs::prefetch:
// spread, the requests overlap the arithmetic).
class ReadAhead {
 public:
  ReadAhead(const AttendBlockArgs& a, int64_t rows)
      : run_(a.prefetch),
        end_(a.prefetch + a.num_prefetch_runs),
        per_(rows <= 0 ? a.num_prefetch
                       : static_cast<int32_t>((a.num_prefetch + rows - 1) / rows)) {
    if (run_ < end_) Enter();
  }
  void Some() {
    for (int32_t i = 0; i < per_ && left_ > 0; ++i) Issue();
  }
  void Rest() {
    while (left_ > 0) Issue();
  }

 private:
  void Enter() {
    line_ = run_->first;
    left_ = run_->count;
  }
  void Issue() {
    PrefetchLineToL2(line_);
    line_ += run_->stride;
    if (--left_ == 0 && ++run_ < end_) Enter();
  }
  const LineRun* run_;
  const LineRun* end_;
  int32_t per_;
  const char* line_ = nullptr;
  int32_t left_ = 0;  // lines left in *run_ (0: none left at all)
};

// The grouped path: up to kGroup queries of a step share each converted key and value row, so a
// GQA group (Qwen2.5-0.5B: 7 query heads per KV head) converts and loads them once instead of
// once per query. For steps of at most kGroupMaxKeys keys (the rest go one query at a time).
// Scores come either from keys transposed once per step (TransposedScores: heads of at most
// kGroupMaxHeadDim) or from each key row as it is (GroupScores: wider heads). A query's arithmetic
// is the same whichever queries share its group, and the keys it does not see (up to the group's
// longest) get weight exactly 0.
inline constexpr int32_t kGroupMaxKeys = 64;
inline constexpr int64_t kGroupMaxHeadDim = 64;  // keeps the transposed keys to 16 KiB

// kt[j * hd + d] lane L: dimension d of key j * kWidth + L as f32, for the step's n keys; slots
// past n repeat key n - 1 (their scores are never used).
template <class Vec, DType kType>
void TransposeKeys(const void* const* k, const float* ks, int32_t n, int64_t hd,
                   typename Vec::V* kt) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  // Whole int8 chunks are transposed as bytes where the Vec can (AVX2's).
  constexpr bool kBytes =
      kType == DType::kI8 && requires(const int8_t* const* r, const float* s, V* o) {
    Vec::TransposeI8(r, s, o);
  };
  for (int32_t j = 0; j * kW < n; ++j) {
    // The group's rows and scales, found once for all its chunks instead of once per chunk: a
    // step of 7 queries x 64 keys (head_dim 64, AVX2, Zen 3, one core, cached) 2.70-2.83 ->
    // 2.54-2.59 us with int8 rows, 2.62-2.70 -> 2.44-2.47 with f16.
    const void* rows[kW];
    float scales[kW];
    for (int32_t t = 0; t < kW; ++t) {
      const int32_t row = j * kW + t < n ? j * kW + t : n - 1;
      rows[t] = k[row];
      scales[t] = RowScale<Vec, kType>(ks, row);
    }
    V* out = kt + j * hd;
    int64_t c = 0;
    if constexpr (kBytes) {
      for (; c + kW <= hd; c += kW) {
        const int8_t* bytes[kW];
        for (int32_t t = 0; t < kW; ++t) bytes[t] = static_cast<const int8_t*>(rows[t]) + c;
        Vec::TransposeI8(bytes, scales, out + c);
      }
    }
    for (; c < hd; c += kW) {
      V chunk[kW], cols[kW];
      for (int32_t t = 0; t < kW; ++t) {
        chunk[t] = LoadRow<Vec, kType>(rows[t], c, hd - c, scales[t]);
      }
      Vec::Transpose(chunk, cols);
      for (int64_t d = 0; d < kW && c + d < hd; ++d) out[c + d] = cols[d];
    }
  }
}

// The f32 rows of the NQ queries idx[] and how many of the step's keys each sees; returns the
// most.
template <int NQ>
int32_t GroupQueries(const AttendBlockArgs& a, const int32_t* idx, const float** q, int32_t* nv) {
  int32_t max_nv = 0;
  for (int g = 0; g < NQ; ++g) {
    q[g] = a.q + idx[g] * a.head_dim;
    nv[g] = a.num_valid[idx[g]] < a.n ? a.num_valid[idx[g]] : a.n;
    max_nv = nv[g] > max_nv ? nv[g] : max_nv;
  }
  return max_nv;
}

// p[g][t] = dot(q[g], k[t]) * scale for t < max_nv (rounded up to whole vectors; slots past
// max_nv reuse key max_nv - 1), from keys transposed in kt: kWidth keys per vector, one FMA chain
// per query over the dimensions in order. Each transposed key serves every group of the step, so
// prefill tiles (many groups) convert each key once.
template <class Vec, int NQ>
void TransposedScores(const AttendBlockArgs& a, const float* const* q, const typename Vec::V* kt,
                      int32_t max_nv, float (*p)[kGroupMaxKeys]) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  const int64_t hd = a.head_dim;
  const V scale_v = Vec::Set1(a.scale);
  for (int32_t j = 0; j * kW < max_nv; ++j) {
    const V* ktj = kt + j * hd;
    V s[NQ];
    for (int g = 0; g < NQ; ++g) s[g] = Vec::Zero();
    for (int64_t d = 0; d < hd; ++d) {
      const V kd = ktj[d];
      for (int g = 0; g < NQ; ++g) s[g] = Vec::Fmadd(Vec::Set1(q[g][d]), kd, s[g]);
    }
    for (int g = 0; g < NQ; ++g) Vec::StorePart(p[g] + j * kW, Vec::Mul(s[g], scale_v), kW);
  }
}

// The same scores from the key rows as they are, for heads of any width: each row is converted
// once, chunk by chunk, and meets every query (one FMA chain per query over the chunks, lane by
// lane); the chains' lanes are summed for kWidth keys at once by one transpose-add tree: for a
// query the arithmetic of ScoresAnyDim, so of the one-query path, which heads over
// kGroupMaxHeadDim took before (converting each key and value row once per query): at head_dim
// 128 (Qwen2.5-1.5B and larger) decode attention runs 2.3-3.7x faster (bench_ops --threads 1
// --decode, f16 and int8, Zen 3). For heads of 64 the transposed form is as fast on decode and
// 15-20% faster on prefill.
template <class Vec, DType kType, int NQ>
void GroupScores(const AttendBlockArgs& a, const float* const* q, int32_t max_nv,
                 float (*p)[kGroupMaxKeys]) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  const int64_t hd = a.head_dim;
  const int64_t full = hd / kW * kW;  // whole chunks: plain loads
  const V scale_v = Vec::Set1(a.scale);
  for (int32_t t0 = 0; t0 < max_nv; t0 += kW) {
    V part[NQ][kW];
    for (int32_t t = 0; t < kW; ++t) {
      const int32_t row = t0 + t < max_nv ? t0 + t : max_nv - 1;
      const void* kr = a.k_rows[row];
      const float rs = RowScale<Vec, kType>(a.k_scales, row);
      V s[NQ];
      for (int g = 0; g < NQ; ++g) s[g] = Vec::Zero();
      int64_t c = 0;
      for (; c < full; c += kW) {
        const V kc = LoadRow<Vec, kType>(kr, c, kW, rs);
        for (int g = 0; g < NQ; ++g) s[g] = Vec::Fmadd(Vec::Load(q[g] + c), kc, s[g]);
      }
      if (c < hd) {
        const V kc = LoadRow<Vec, kType>(kr, c, hd - c, rs);
        for (int g = 0; g < NQ; ++g) s[g] = Vec::Fmadd(Vec::LoadPart(q[g] + c, hd - c), kc, s[g]);
      }
      for (int g = 0; g < NQ; ++g) part[g][t] = s[g];
    }
    for (int g = 0; g < NQ; ++g)
      Vec::StorePart(p[g] + t0, Vec::Mul(Vec::ReduceAddEach(part[g]), scale_v), kW);
  }
}

// One online-softmax step of the NQ queries idx[] over the step's keys (transposed in kt, or
// nullptr: read as they are).
template <class Vec, DType kType, int NQ>
void AttendQueriesGrouped(const AttendBlockArgs& a, const int32_t* idx, const typename Vec::V* kt,
                          ReadAhead& ahead) {
  using V = typename Vec::V;
  constexpr int32_t kW = Vec::kWidth;
  const int64_t hd = a.head_dim;
  alignas(64) float p[NQ][kGroupMaxKeys];
  const float* q[NQ];
  int32_t nv[NQ];
  const int32_t max_nv = GroupQueries<NQ>(a, idx, q, nv);
  if (kt != nullptr) {
    TransposedScores<Vec, NQ>(a, q, kt, max_nv, p);
  } else {
    GroupScores<Vec, kType, NQ>(a, q, max_nv, p);
  }
  float correction[NQ];
  for (int g = 0; g < NQ; ++g) correction[g] = SoftmaxUpdate<Vec>(a, idx[g], p[g], nv[g], max_nv);
  // One column vector of every query at a time: NQ accumulators, each value chunk converted once.
  for (int64_t c = 0; c < hd; c += kW) {
    const int64_t left = hd - c;
    V x[NQ];
    for (int g = 0; g < NQ; ++g) {
      x[g] = Vec::Mul(Vec::LoadPart(a.acc + idx[g] * hd + c, left), Vec::Set1(correction[g]));
    }
    // A whole chunk's loads take the constant width, which drops LoadRow's tail test and buffer
    // from the loop (a step of 7 queries x 64 keys with f16 rows 2.43 -> 2.24 us, Zen 3; int8
    // unchanged).
    auto keys = [&](int64_t width) {
      for (int32_t t = 0; t < max_nv; ++t) {
        ahead.Some();
        const V vt =
            LoadRow<Vec, kType>(a.v_rows[t], c, width, RowScale<Vec, kType>(a.v_scales, t));
        for (int g = 0; g < NQ; ++g) x[g] = Vec::Fmadd(Vec::Set1(p[g][t]), vt, x[g]);
      }
    };
    if (left >= kW) {
      keys(kW);
    } else {
      keys(left);
    }
    for (int g = 0; g < NQ; ++g) Vec::StorePart(a.acc + idx[g] * hd + c, x[g], left);
  }
}

template <class Vec, DType kType, int NQ>
void AttendGroup(const AttendBlockArgs& a, const int32_t* idx, int num, const typename Vec::V* kt,
                 ReadAhead& ahead) {
  if constexpr (NQ > 1) {
    if (num < NQ) return AttendGroup<Vec, kType, NQ - 1>(a, idx, num, kt, ahead);
  }
  AttendQueriesGrouped<Vec, kType, NQ>(a, idx, kt, ahead);
}

// Calls attend(idx, num) for the step's queries that see at least one key, in order, up to kGroup
// at a time (idx: their indexes, num of them); the others' state stays untouched.
template <int kGroup, class Attend>
void ForEachQueryGroup(const AttendBlockArgs& a, Attend&& attend) {
  int32_t idx[kGroup];
  int num = 0;
  for (int32_t i = 0; i <= a.num_q; ++i) {
    if (i < a.num_q) {
      if (a.num_valid[i] <= 0) continue;
      idx[num++] = i;
      if (num < kGroup) continue;
    }
    if (num == 0) break;
    attend(static_cast<const int32_t*>(idx), num);
    num = 0;
  }
}

// AttendBlock for any step: the grouped path where it applies, else one query at a time.
template <class Vec, DType kType, int kGroup>
void AttendBlockGrouped(const AttendBlockArgs& a) {
  if (a.n > kGroupMaxKeys) return AttendEachQuery<Vec, kType>(a);
  typename Vec::V kt[kGroupMaxKeys / Vec::kWidth * kGroupMaxHeadDim];
  const bool transpose = a.head_dim <= kGroupMaxHeadDim;
  if (transpose) TransposeKeys<Vec, kType>(a.k_rows, a.k_scales, a.n, a.head_dim, kt);
  ReadAhead ahead(a, int64_t{a.n} * ((a.head_dim + Vec::kWidth - 1) / Vec::kWidth));
  ForEachQueryGroup<kGroup>(a, [&](const int32_t* idx, int num) {
    AttendGroup<Vec, kType, kGroup>(a, idx, num, transpose ? kt : nullptr, ahead);
  });
  ahead.Rest();
}

}  // namespace tinyserve::kernels::cpu::simd
