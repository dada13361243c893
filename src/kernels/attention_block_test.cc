// The per-ISA AttendBlock reading f16 / bf16 / int8 cache rows directly must give bit for bit
// what it gives on their (exact) f32 conversions: the paged driver picks either by tile size (and
// passes a read-ahead list or none).
// The AVX2 / AVX-512 int8 paths with integer q.k and p.v are a different sum order on int16-rounded
// weights: it must match the f32 arithmetic on the same rounded queries within the attention
// tests' tolerance plus the weights' rounding bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kv_quant.h"

namespace tinyserve::kernels {
namespace {

struct State {
  std::vector<float> max, sum, acc;
};

State RunStep(Isa isa, const cpu::AttendBlockArgs& base, DType dtype, const void* const* k,
              const void* const* v, State s) {
  cpu::AttendBlockArgs a = base;
  std::vector<float> scores(a.n + 16);
  a.k_rows = k;
  a.v_rows = v;
  a.rows_dtype = dtype;
  a.max = s.max.data();
  a.sum = s.sum.data();
  a.acc = s.acc.data();
  a.scores = scores.data();
  cpu::KernelsFor(isa).attend_block(a);
  return s;
}

// A step's arguments for one query per num_valid entry (rows of hd in q) over n keys whose K and
// V scales are scales[0, n) and scales[n, 2n).
cpu::AttendBlockArgs StepArgs(const std::vector<float>& q, const std::vector<int32_t>& num_valid,
                              int32_t n, int32_t hd, const std::vector<float>& scales) {
  cpu::AttendBlockArgs a;
  a.q = q.data();
  a.num_valid = num_valid.data();
  a.num_q = static_cast<int32_t>(num_valid.size());
  a.n = n;
  a.head_dim = hd;
  a.scale = 0.125f;
  a.k_scales = scales.data();
  a.v_scales = scales.data() + n;
  return a;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(AttendBlockTest, CacheRowsReadDirectlyEqualTheirF32ConversionBitwise) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  int checked = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) {
      std::printf("SKIPPED %s: not supported here (CPU or TINYSERVE_ISA cap)\n",
                  std::string(IsaName(isa)).c_str());
      continue;
    }
    for (DType dtype : {DType::kF16, DType::kBF16, DType::kI8}) {
      for (int32_t hd : {3, 17, 35, 64, 72, 100, 136}) {
        for (int32_t n : {1, 9, 31, 64, 65}) {
          const int32_t num_q = 5;
          // Rows start one element past each other's end: misaligned for every type.
          const int64_t stride = hd + 1;
          std::vector<uint16_t> h(2 * n * stride);
          std::vector<int8_t> b(2 * n * stride);
          for (auto& x : h) x = dtype == DType::kF16 ? F32ToFp16(dist(rng)) : F32ToBf16(dist(rng));
          for (auto& x : b) x = static_cast<int8_t>(rng());
          std::vector<float> scales(2 * n), f(2 * n * hd);
          for (auto& x : scales) x = 0.001f + 0.05f * std::abs(dist(rng));
          std::vector<const void*> rows(2 * n), f32_rows(2 * n);
          for (int32_t t = 0; t < 2 * n; ++t) {
            const int64_t at = t * stride + 1;
            rows[t] = dtype == DType::kI8 ? static_cast<const void*>(b.data() + at)
                                          : static_cast<const void*>(h.data() + at);
            for (int32_t d = 0; d < hd; ++d) {
              f[t * hd + d] = dtype == DType::kI8    ? DequantizeKv(b[at + d], scales[t])
                              : dtype == DType::kF16 ? Fp16ToF32(h[at + d])
                                                     : Bf16ToF32(h[at + d]);
            }
            f32_rows[t] = f.data() + t * hd;
          }
          std::vector<float> q(num_q * hd);
          for (auto& x : q) x = dist(rng);
          const std::vector<int32_t> num_valid = {n, 0, n / 2 + 1, n + 3, 1};
          cpu::AttendBlockArgs a = StepArgs(q, num_valid, n, hd, scales);
          // Query 0 starts fresh, the others carry a state from an earlier step.
          State s{std::vector<float>(num_q, 0.5f), std::vector<float>(num_q, 2.0f),
                  std::vector<float>(num_q * hd)};
          s.max[0] = -INFINITY;
          s.sum[0] = 0;
          for (int64_t i = hd; i < num_q * hd; ++i) s.acc[i] = dist(rng);
          const State f32 = RunStep(isa, a, DType::kF32, f32_rows.data(), f32_rows.data() + n, s);
          // The direct run also issues a read-ahead (AttendBlockArgs::prefetch): it moves data,
          // never a result.
          const std::vector<LineRun> runs = {
              {reinterpret_cast<const char*>(h.data()), 64, static_cast<int32_t>(h.size() / 32)},
              {reinterpret_cast<const char*>(rows[0]), 0, 1}};
          a.prefetch = runs.data();
          a.num_prefetch_runs = 2;
          a.num_prefetch = runs[0].count + 1;
          const State direct = RunStep(isa, a, dtype, rows.data(), rows.data() + n, s);
          SCOPED_TRACE(std::string(IsaName(isa)) + " dtype " + std::string(DTypeName(dtype)) +
                       " hd " + std::to_string(hd) + " n " + std::to_string(n));
          EXPECT_TRUE(SameBits(direct.max, f32.max));
          EXPECT_TRUE(SameBits(direct.sum, f32.sum));
          EXPECT_TRUE(SameBits(direct.acc, f32.acc));
          // Query 1 sees no key: its state is untouched.
          EXPECT_EQ(direct.max[1], 0.5f);
          EXPECT_EQ(direct.sum[1], 2.0f);
          ++checked;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "SKIPPED: no SIMD ISA on this CPU";
}

// The grouped paths share each key and value row among a step's queries (scores from transposed
// keys up to head_dim 64, from the rows as they are above): a query's result must not depend on
// which queries share its step, or a row's output would change with the prefill tiling and the
// batch.
TEST(AttendBlockTest, AQueryGetsTheSameBitsAloneOrWithOthers) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  int checked = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) {
      std::printf("SKIPPED %s: not supported here (CPU or TINYSERVE_ISA cap)\n",
                  std::string(IsaName(isa)).c_str());
      continue;
    }
    for (DType dtype : {DType::kF16, DType::kI8}) {
      for (int32_t hd : {40, 64, 100}) {
        for (int32_t n : {9, 64}) {
          const int32_t num_q = 7;
          std::vector<uint16_t> h(2 * n * hd);
          std::vector<int8_t> b(2 * n * hd);
          for (auto& x : h) x = F32ToFp16(dist(rng));
          for (auto& x : b) x = static_cast<int8_t>(rng());
          std::vector<float> scales(2 * n);
          for (auto& x : scales) x = 0.001f + 0.05f * std::abs(dist(rng));
          std::vector<const void*> rows(2 * n);
          for (int32_t t = 0; t < 2 * n; ++t) {
            rows[t] = dtype == DType::kI8 ? static_cast<const void*>(b.data() + t * hd)
                                          : static_cast<const void*>(h.data() + t * hd);
          }
          std::vector<float> q(num_q * hd);
          for (auto& x : q) x = dist(rng);
          const std::vector<int32_t> num_valid = {n, n / 2 + 1, n, 1, n - 1, 3, n};
          cpu::AttendBlockArgs a = StepArgs(q, num_valid, n, hd, scales);
          State s{std::vector<float>(num_q, 0.5f), std::vector<float>(num_q, 2.0f),
                  std::vector<float>(num_q * hd)};
          for (float& x : s.acc) x = dist(rng);
          const State together = RunStep(isa, a, dtype, rows.data(), rows.data() + n, s);
          SCOPED_TRACE(std::string(IsaName(isa)) + " dtype " + std::string(DTypeName(dtype)) +
                       " hd " + std::to_string(hd) + " n " + std::to_string(n));
          for (int32_t i = 0; i < num_q; ++i) {
            cpu::AttendBlockArgs one = a;
            one.q = q.data() + i * hd;
            one.num_valid = num_valid.data() + i;
            one.num_q = 1;
            const State alone = RunStep(
                isa, one, dtype, rows.data(), rows.data() + n,
                {{s.max[i]}, {s.sum[i]}, {s.acc.begin() + i * hd, s.acc.begin() + (i + 1) * hd}});
            EXPECT_EQ(std::memcmp(&alone.max[0], &together.max[i], sizeof(float)), 0) << i;
            EXPECT_EQ(std::memcmp(&alone.sum[0], &together.sum[i], sizeof(float)), 0) << i;
            EXPECT_EQ(
                std::memcmp(alone.acc.data(), together.acc.data() + i * hd, hd * sizeof(float)), 0)
                << i;
          }
          ++checked;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "SKIPPED: no SIMD ISA on this CPU";
}

// The integer path (q.k and p.v: attention_avx2.cc's vpmaddwd, attention_avx512.cc's VNNI) against
// the same ISA's f32 arithmetic on the same rounded queries.
void CheckIntegerDots(Isa isa) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int32_t hd : {64, 128, 256}) {
    for (int32_t n : {1, 9, 31, 64, 65, 130}) {
      const int32_t num_q = 7;
      std::vector<int8_t> b(2 * n * hd);
      for (auto& x : b) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      // Rows of values up to 0.5 .. 1.5 in magnitude, as attention_test's caches (scores of a
      // few units: the tolerance is relative to the output, not to the scores' magnitude).
      std::vector<float> scales(2 * n);
      for (auto& x : scales) x = (1.0f + 0.25f * dist(rng)) / 127;
      std::vector<const void*> rows(2 * n);
      for (int32_t t = 0; t < 2 * n; ++t) rows[t] = b.data() + int64_t{t} * hd;
      std::vector<float> x(num_q * hd), q(num_q * hd), q_scales(num_q);
      std::vector<int8_t> q_i8(2 * num_q * hd);
      std::vector<int32_t> q_sums(num_q);
      for (auto& v : x) v = dist(rng) / 2;
      for (int32_t i = 0; i < num_q; ++i) {
        int8_t* qi = q_i8.data() + 2 * i * hd;
        q_scales[i] = QuantizeQueryRow(x.data() + i * hd, hd, qi, &q_sums[i]);
        for (int32_t d = 0; d < hd; ++d) q[i * hd + d] = DequantizeQuery(qi, hd, d, q_scales[i]);
      }
      const std::vector<int32_t> num_valid = {n, 0, n / 2 + 1, n + 3, 1, n - 1, (n + 1) / 3};
      cpu::AttendBlockArgs a = StepArgs(q, num_valid, n, hd, scales);
      State s{std::vector<float>(num_q, 0.5f), std::vector<float>(num_q, 2.0f),
              std::vector<float>(num_q * hd)};
      s.max[0] = -INFINITY;
      s.sum[0] = 0;
      for (int64_t i = hd; i < num_q * hd; ++i) s.acc[i] = dist(rng);
      const State f32 = RunStep(isa, a, DType::kI8, rows.data(), rows.data() + n, s);
      a.q_i8 = q_i8.data();
      a.q_scales = q_scales.data();
      a.q_sums = q_sums.data();
      const State ints = RunStep(isa, a, DType::kI8, rows.data(), rows.data() + n, s);
      SCOPED_TRACE("hd " + std::to_string(hd) + " n " + std::to_string(n));
      // The integer p.v rounds each weight (value scale folded in) to int16: by at most
      // max v scale / 65534 relative to the step's final max, so acc element d of a query that
      // sees keys [0, nv) moves by at most that times sum |v_q[d]| (on top of the f32 tolerance).
      const float max_scale = *std::max_element(scales.begin() + n, scales.end());
      auto near = [&](const std::vector<float>& got, const std::vector<float>& want,
                      bool weighted) {
        for (size_t i = 0; i < want.size(); ++i) {
          float bound = 0;
          if (weighted) {
            const int64_t qi = static_cast<int64_t>(i) / hd, d = static_cast<int64_t>(i) % hd;
            const int32_t nv = std::min(num_valid[qi], n);
            for (int32_t t = 0; t < nv; ++t)
              bound += std::fabs(static_cast<float>(b[int64_t{n + t} * hd + d]));
            bound *= max_scale / 65534.0f;
          }
          EXPECT_NEAR(got[i], want[i], 2e-6f + 2e-5f * std::fabs(want[i]) + bound)
              << "element " << i;
        }
      };
      near(ints.max, f32.max, false);
      near(ints.sum, f32.sum, false);
      near(ints.acc, f32.acc, true);
      // Query 1 sees no key: its state is untouched (bit for bit).
      EXPECT_EQ(ints.max[1], 0.5f);
      EXPECT_EQ(ints.sum[1], 2.0f);
      // A query holding NaN (QuantizeQueryRow gives it a NaN scale) leaves a NaN sum, so its
      // output is NaN rather than a plausible row that skipped these keys.
      x[2 * hd + 3] = NAN;
      q_scales[2] = QuantizeQueryRow(x.data() + 2 * hd, hd, q_i8.data() + 4 * hd, &q_sums[2]);
      const State nan_query = RunStep(isa, a, DType::kI8, rows.data(), rows.data() + n, s);
      EXPECT_TRUE(std::isnan(nan_query.sum[2])) << nan_query.sum[2];
    }
  }
}

TEST(AttendBlockTest, Int8IntegerDotsMatchF32ArithmeticOnTheRoundedQueries) {
  int checked = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) {
      SCOPED_TRACE(IsaName(isa));
      CheckIntegerDots(isa);
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "SKIPPED: no AVX2 here (CPU or TINYSERVE_ISA cap)";
}

// kv_quant.h's query format: Q = 256 hi + lo is x / s rounded to nearest (within half a unit,
// the largest |x| at +-kQueryMax), lo in [-128, 127], the sum is the Qs', and the f32 value the
// kernels without integer dots read is Q * s.
TEST(AttendBlockTest, QueryRowsKeepSixteenBits) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  for (int64_t n : {1, 7, 64, 128}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (float& v : x) v = dist(rng) * (trial % 2 == 0 ? 1.0f : 1e-3f);
      std::vector<int8_t> q(2 * n);
      int32_t sum = 0;
      const float s = QuantizeQueryRow(x.data(), n, q.data(), &sum);
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      ASSERT_EQ(s, amax / static_cast<float>(kQueryMax));
      int64_t want_sum = 0;
      bool saw_max = false;
      for (int64_t i = 0; i < n; ++i) {
        const int32_t full = 256 * int32_t{q[i]} + q[n + i];
        ASSERT_LE(std::abs(full), kQueryMax);
        // Rounded to nearest (the f32 reciprocal moves x / s by up to ~1 ulp of 32512).
        EXPECT_LE(std::fabs(static_cast<double>(x[i]) / s - full), 0.5 + 1e-2) << i;
        saw_max = saw_max || std::abs(full) == kQueryMax;
        want_sum += full;
        EXPECT_EQ(DequantizeQuery(q.data(), n, i, s), static_cast<float>(full) * s);
      }
      EXPECT_TRUE(saw_max);
      EXPECT_EQ(sum, want_sum);
    }
  }
}

// The rows the per-ISA quantizers are checked on, built by add_rows(n, random row of n values in
// [-3, 3), rng) for odd and head-dim lengths n.
template <typename Fn>
std::vector<std::vector<float>> QuantizerRows(uint32_t seed, Fn&& add_rows) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<std::vector<float>> rows;
  for (int64_t n : {1, 15, 16, 17, 64, 100, 128, 256}) {
    std::vector<float> r(n);
    for (float& x : r) x = dist(rng);
    rows.push_back(r);
    add_rows(n, r, rng, rows);
  }
  return rows;
}

// check(isa, row) for every ISA this CPU runs (scalar, AVX2, AVX-512) and every row.
template <typename Fn>
void ForEachIsaAndRow(const std::vector<std::vector<float>>& rows, Fn&& check) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    for (const std::vector<float>& r : rows) check(isa, r);
  }
}

// Every ISA's quantize_query (attention.cc rounds each query head row of an int8 cache with it)
// gives QuantizeQueryRow's bytes, scale and sum exactly: random rows of odd and head-dim lengths,
// values on rounding ties, a zero row, rows whose scale is a denormal, and rows holding inf or NaN.
TEST(AttendBlockTest, QuantizeQueryIsQuantizeQueryRowOnEveryIsa) {
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const auto rows = QuantizerRows(5, [&](int64_t n, std::vector<float>& r, std::mt19937& rng,
                                         std::vector<std::vector<float>>& out) {
    // amax 127, so the scale is 1 / 256: every (k + 0.5) / 256 is a tie of the rounding.
    for (int64_t i = 0; i < n; ++i)
      r[i] = (i == 0) ? 127.0f : (static_cast<float>(i % 120) * 200 + 0.5f) / 256;
    out.push_back(r);
    out.push_back(std::vector<float>(n, 0.0f));
    for (float& x : r) x = 1e-43f * dist(rng);
    out.push_back(r);
    r[n / 2] = INFINITY;
    out.push_back(r);
    r[n / 2] = NAN;
    out.push_back(r);
  });
  ForEachIsaAndRow(rows, [](Isa isa, const std::vector<float>& r) {
    const int64_t n = static_cast<int64_t>(r.size());
    std::vector<int8_t> want(2 * n, 99), got(2 * n, 99);
    int32_t want_sum = -1, got_sum = -2;
    const float want_scale = QuantizeQueryRow(r.data(), n, want.data(), &want_sum);
    const float got_scale = cpu::KernelsFor(isa).quantize_query(r.data(), n, got.data(), &got_sum);
    EXPECT_EQ(std::memcmp(&got_scale, &want_scale, sizeof(float)), 0)
        << IsaName(isa) << " n=" << n << " " << got_scale << " vs " << want_scale;
    EXPECT_EQ(got, want) << IsaName(isa) << " n=" << n;
    EXPECT_EQ(got_sum, want_sum) << IsaName(isa) << " n=" << n;
  });
}

// Every ISA's quantize_kv (the KV store quantizes each K and V row of an int8 cache with it) gives
// QuantizeKvRow's bytes and scale exactly: random rows of odd and head-dim lengths, values on
// rounding ties, a row whose denormal scale puts values past the clamp, a zero row, rows whose
// scale is a binary16 denormal or underflows to 0, and rows holding inf or NaN.
TEST(AttendBlockTest, QuantizeKvIsQuantizeKvRowOnEveryIsa) {
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const auto rows = QuantizerRows(6, [&](int64_t n, std::vector<float>& r, std::mt19937& rng,
                                         std::vector<std::vector<float>>& out) {
    // amax 127 * 2: the scale is 2, so every odd integer is a tie of x / 2's rounding.
    for (int64_t i = 0; i < n; ++i) r[i] = (i == 0) ? -254.0f : static_cast<float>(i % 255 - 127);
    out.push_back(r);
    // amax 1.4 * 127 * 2^-24: the scale rounds down to the binary16 denormal 2^-24, so x / scale
    // passes 127 (up to ~178) and is clamped.
    for (int64_t i = 0; i < n; ++i)
      r[i] = (i % 2 == 0 ? 1.0f : -1.0f) * (1.4f * 127 * 0x1p-24f) * (1.0f - 1e-3f * (i % 300));
    out.push_back(r);
    out.push_back(std::vector<float>(n, 0.0f));
    for (float& x : r) x = 1e-5f * dist(rng);  // scale up to ~2.4e-7: a binary16 denormal
    out.push_back(r);
    for (float& x : r) x = 1e-9f * dist(rng);  // the scale underflows to 0
    out.push_back(r);
    for (float& x : r) x = dist(rng);
    r[n / 2] = NAN;
    out.push_back(r);
    // In lane 12 too (a vector maximum taken in the other operand order keeps NaN there).
    r[std::min<int64_t>(n - 1, 12)] = NAN;
    out.push_back(r);
    r[n / 2] = -INFINITY;
    out.push_back(r);
  });
  ForEachIsaAndRow(rows, [](Isa isa, const std::vector<float>& r) {
    const int64_t n = static_cast<int64_t>(r.size());
    std::vector<int8_t> want(n, 99), got(n, 99);
    const uint16_t want_scale = QuantizeKvRow(r.data(), n, want.data());
    const uint16_t got_scale = cpu::KernelsFor(isa).quantize_kv(r.data(), n, got.data());
    EXPECT_EQ(got_scale, want_scale) << IsaName(isa) << " n=" << n;
    EXPECT_EQ(got, want) << IsaName(isa) << " n=" << n;
  });
}

}  // namespace
}  // namespace tinyserve::kernels
