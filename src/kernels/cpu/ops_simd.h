// The row-wise operators written once against a vector interface (avx2::Vec, avx512::Vec in
// simd_avx2.h / simd_avx512.h); ops_avx2.cc and ops_avx512.cc instantiate them under their own
// target flags. Each template is instantiated on a per-ISA type, so the linker never merges an
// AVX-512 instantiation into the AVX2 path; keep it free of non-template helpers and std calls
// (those would be emitted once per target under one name). Same thread rules as cpu_kernels.h.
#pragma once

#include <cstdint>

#include "formats/dtype.h"

namespace tinyserve::kernels::cpu::simd {

template <class Vec>
void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth;
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    // Four independent chains; lane sums are combined in a fixed order.
    V acc[4] = {Vec::Zero(), Vec::Zero(), Vec::Zero(), Vec::Zero()};
    int64_t i = 0;
    for (; i + 4 * kW <= dim; i += 4 * kW) {
      for (int u = 0; u < 4; ++u) {
        const V v = Vec::Load(xr + i + u * kW);
        acc[u] = Vec::Fmadd(v, v, acc[u]);
      }
    }
    for (; i < dim; i += kW) {
      const V v = Vec::LoadPart(xr + i, dim - i);
      acc[0] = Vec::Fmadd(v, v, acc[0]);
    }
    const float sum_sq =
        Vec::ReduceAdd(Vec::Add(Vec::Add(acc[0], acc[1]), Vec::Add(acc[2], acc[3])));
    const V inv = Vec::Set1(1.0f / __builtin_sqrtf(sum_sq / static_cast<float>(dim) + eps));
    for (i = 0; i < dim; i += kW) {
      const V v = Vec::Mul(Vec::LoadPart(xr + i, dim - i), inv);
      Vec::StorePart(o + i, Vec::Mul(v, Vec::LoadPart(weight + i, dim - i)), dim - i);
    }
  }
}

template <class Vec>
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  using V = typename Vec::V;
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = cos_sin + t * head_dim;
    const float* s = c + half;
    for (int64_t h = 0; h < num_heads; ++h) {
      float* xh = x + (t * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; i += Vec::kWidth) {
        const int64_t left = half - i;
        const V a = Vec::LoadPart(xh + i, left);
        const V b = Vec::LoadPart(xh + half + i, left);
        const V cv = Vec::LoadPart(c + i, left);
        const V sv = Vec::LoadPart(s + i, left);
        Vec::StorePart(xh + i, Vec::Fmsub(a, cv, Vec::Mul(b, sv)), left);
        Vec::StorePart(xh + half + i, Vec::Fmadd(b, cv, Vec::Mul(a, sv)), left);
      }
    }
  }
}

template <class Vec>
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  using V = typename Vec::V;
  const V one = Vec::Set1(1.0f);
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    float* o = out + r * dim;
    for (int64_t i = 0; i < dim; i += Vec::kWidth) {
      const V gv = Vec::LoadPart(g + i, dim - i);
      const V uv = Vec::LoadPart(g + dim + i, dim - i);
      const V denom = Vec::Add(one, Vec::Exp(Vec::Sub(Vec::Zero(), gv)));
      Vec::StorePart(o + i, Vec::Mul(Vec::Div(gv, denom), uv), dim - i);
    }
  }
}

template <class Vec>
float SoftmaxWeights(float* x, int64_t n) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth;
  const V neg_inf = Vec::Set1(-__builtin_inff());
  V mx = neg_inf;
  for (int64_t i = 0; i < n; i += kW) mx = Vec::Max(mx, Vec::LoadPartOr(x + i, n - i, neg_inf));
  const V max_v = Vec::Set1(Vec::ReduceMax(mx));
  V sum[2] = {Vec::Zero(), Vec::Zero()};  // two chains
  for (int64_t i = 0, u = 0; i < n; i += kW, u ^= 1) {
    const V e = Vec::ZeroPast(Vec::Exp(Vec::Sub(Vec::LoadPart(x + i, n - i), max_v)), n - i);
    sum[u] = Vec::Add(sum[u], e);
    Vec::StorePart(x + i, e, n - i);
  }
  return Vec::ReduceAdd(Vec::Add(sum[0], sum[1]));
}

// log(sum exp(x[i])), taken as max + log(sum exp(x[i] - max)). Each lane sums 128 weights
// (<= 1 each) in float, so a block's rounding stays near 128 ulp of its sum at worst; the blocks
// are added in double, so a vocabulary of 151,936 loses no more than one block does. Log-probs
// read it for every sampled token that asks for them; the scalar version's libm exp in double
// took ~1.4 ms a draw on Qwen2.5's vocabulary (bench_sampling).
template <class Vec>
float LogSumExp(const float* x, int64_t n) {
  using V = typename Vec::V;
  constexpr int64_t kW = Vec::kWidth, kBlock = 128 * kW;
  const V neg_inf = Vec::Set1(-__builtin_inff());
  V mx = neg_inf;
  for (int64_t i = 0; i < n; i += kW) mx = Vec::Max(mx, Vec::LoadPartOr(x + i, n - i, neg_inf));
  const float max = Vec::ReduceMax(mx);
  if (max == -__builtin_inff()) return max;
  const V max_v = Vec::Set1(max);
  double sum = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t end = n - b < kBlock ? n : b + kBlock;
    V part[2] = {Vec::Zero(), Vec::Zero()};  // two chains
    for (int64_t i = b, u = 0; i < end; i += kW, u ^= 1) {
      const V e = Vec::ZeroPast(Vec::Exp(Vec::Sub(Vec::LoadPart(x + i, end - i), max_v)), end - i);
      part[u] = Vec::Add(part[u], e);
    }
    sum += Vec::ReduceAdd(Vec::Add(part[0], part[1]));
  }
  return max + static_cast<float>(__builtin_log(sum));
}

// Blocks of 512 first, each summed in 32 double lanes (plain loops the compiler vectorises under
// the file's flags: with AVX-512 four chains of 8) folded in halves, then one by one from the
// block where the running sum passes target. Every step's order is fixed, so every SIMD ISA gives
// the same index. A block sum rounded differently from the one-by-one sum would only move the
// one-by-one scan to a neighbouring block: it still ends at the first weight whose running sum
// passes target. (Vec only makes each ISA's instantiation its own, as the file comment asks.)
template <class Vec>
int64_t FirstIndexPassing(const float* w, int64_t n, double target) {
  constexpr int64_t kBlock = 512, kLanes = 32;
  double cum = 0;
  int64_t start = 0;
  for (; start + kBlock <= n; start += kBlock) {
    double lanes[kLanes] = {};
    for (int64_t i = start; i < start + kBlock; i += kLanes)
      for (int64_t k = 0; k < kLanes; ++k) lanes[k] += w[i + k];
    for (int64_t half = kLanes / 2; half > 0; half /= 2)
      for (int64_t k = 0; k < half; ++k) lanes[k] += lanes[k + half];
    if (target < cum + lanes[0]) break;
    cum += lanes[0];
  }
  for (int64_t i = start; i < n; ++i) {
    cum += w[i];
    if (target < cum) return i;
  }
  return -1;
}

// The largest value first, in vectors (NaN lanes dropped: the max instructions return their
// second operand, the running maximum, when the first is NaN), then its first index: one
// compare per element, not the compare and move per element of a scalar running argmax.
template <class Vec>
int64_t Argmax(const float* x, int64_t n) {
  using V = typename Vec::V;
  const V neg_inf = Vec::Set1(-__builtin_inff());
  V mx = neg_inf;
  for (int64_t i = 0; i < n; i += Vec::kWidth)
    mx = Vec::Max(Vec::LoadPartOr(x + i, n - i, neg_inf), mx);
  const float best = Vec::ReduceMax(mx);
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == best) return i;
  return 0;  // every element NaN
}

template <class Vec>
void AddInPlace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += Vec::kWidth) {
    Vec::StorePart(out + i, Vec::Add(Vec::LoadPart(out + i, n - i), Vec::LoadPart(x + i, n - i)),
                   n - i);
  }
}

template <class Vec>
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  for (int64_t r = 0; r < num_rows; ++r) AddInPlace<Vec>(out + r * dim, bias, dim);
}

// dtype: kF32, kF16 or kBF16 (conversion to f32 is exact).
template <class Vec>
void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  const auto* f = static_cast<const float*>(src);
  for (int64_t i = 0; i < n; i += Vec::kWidth) {
    if (dtype == DType::kF16) {
      Vec::StorePart(dst + i, Vec::LoadF16Part(h + i, n - i), n - i);
    } else if (dtype == DType::kBF16) {
      Vec::StorePart(dst + i, Vec::LoadBf16Part(h + i, n - i), n - i);
    } else {
      Vec::StorePart(dst + i, Vec::LoadPart(f + i, n - i), n - i);
    }
  }
}

}  // namespace tinyserve::kernels::cpu::simd
