#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "kernels/ops.h"

namespace tinyserve {
namespace {

ResolvedSamplingParams Params(float temperature) {
  ResolvedSamplingParams p;
  p.temperature = temperature;
  p.seed = 1234;
  return p;
}

std::vector<float> RandomLogits(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Reference: softmax(logits / t) with a full sort, top-k, top-p, min-p written plainly.
std::map<int32_t, double> ReferenceDistribution(const std::vector<float>& logits, float t,
                                                int top_k, float top_p, float min_p) {
  const int n = static_cast<int>(logits.size());
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  if (top_k > 0 && top_k < n) order.resize(top_k);
  auto softmax = [&](const std::vector<int32_t>& ids) {
    double mx = -1e30;
    for (int32_t id : ids) mx = std::max(mx, double(logits[id]) / t);
    double s = 0;
    std::map<int32_t, double> p;
    for (int32_t id : ids) s += std::exp(double(logits[id]) / t - mx);
    for (int32_t id : ids) p[id] = std::exp(double(logits[id]) / t - mx) / s;
    return p;
  };
  auto probs = softmax(order);
  if (top_p < 1.0f) {
    std::vector<int32_t> kept;
    double cum = 0;
    for (int32_t id : order) {
      if (cum >= top_p) break;
      kept.push_back(id);
      cum += probs[id];
    }
    order = kept;
    probs = softmax(order);
  }
  if (min_p > 0) {
    double pmax = 0;
    for (auto& [id, p] : probs) pmax = std::max(pmax, p);
    std::vector<int32_t> kept;
    for (int32_t id : order) {
      if (probs[id] >= min_p * pmax) kept.push_back(id);
    }
    order = kept;
    probs = softmax(order);
  }
  return probs;
}

void ExpectCandidatesMatch(const std::vector<float>& logits, float t, int top_k, float top_p,
                           float min_p) {
  ResolvedSamplingParams p = Params(t);
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  Candidates c = FilterCandidates(logits, p);
  auto ref = ReferenceDistribution(logits, t, top_k, top_p, min_p);
  ASSERT_EQ(c.ids.size(), ref.size())
      << "t=" << t << " k=" << top_k << " p=" << top_p << " min_p=" << min_p;
  for (size_t i = 0; i < c.ids.size(); ++i) {
    ASSERT_TRUE(ref.count(c.ids[i])) << c.ids[i];
    EXPECT_NEAR(c.probs[i], ref[c.ids[i]], 1e-5);
  }
}

TEST(SamplerTest, LogitBiasAddsToTheNamedTokens) {
  std::vector<float> logits = {1, 2, 3, 4};
  std::vector<std::pair<int32_t, float>> bias = {{0, 5.0f}, {3, -100.0f}};
  ApplyLogitBias(logits, bias);
  EXPECT_EQ(logits, (std::vector<float>{6, 2, 3, -96}));
}

TEST(SamplerTest, PenaltiesFollowVllmDefinitions) {
  ResolvedSamplingParams p = Params(1.0f);
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  std::vector<int32_t> prompt = {0, 1};
  SamplerState state(p, prompt);
  state.Accept(1);
  state.Accept(2);
  state.Accept(2);
  std::vector<float> logits = {4.0f, -4.0f, 3.0f, 1.0f, -1.0f};
  ApplyPenalties(logits, p, state);
  // Token 0: prompt only -> 4 / 2. Token 1: prompt and output once -> -4 * 2 - 0.5 - 0.25.
  // Token 2: output twice -> 3 / 2 - 2 * 0.5 - 0.25. Tokens 3, 4 untouched.
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], -8.75f);
  EXPECT_FLOAT_EQ(logits[2], 0.25f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);
  EXPECT_FLOAT_EQ(logits[4], -1.0f);
}

TEST(SamplerTest, GreedyTakesTheArgmaxAfterProcessing) {
  ResolvedSamplingParams p = Params(0.0f);
  p.logit_bias = {{1, 10.0f}};
  SamplerState state(p, {});
  std::vector<float> logits = {5.0f, 0.0f, 4.0f};
  EXPECT_EQ(Sample(logits, p, state).token_id, 1);
  std::vector<float> ties = {1.0f, 3.0f, 3.0f};
  EXPECT_EQ(Argmax(ties), 1);
}

TEST(SamplerTest, BannedTokensAreNeverDrawn) {
  ResolvedSamplingParams p = Params(0.0f);
  SamplerState state(p, {});
  std::vector<float> logits = {5.0f, 0.0f, 4.0f};
  std::vector<int32_t> banned = {0};
  EXPECT_EQ(Sample(logits, p, state, banned).token_id, 2);
}

TEST(SamplerTest, AllowedMaskRestrictsDrawsAndKeepsRawLogprobs) {
  const int n = 100;  // not a multiple of 32: the last word is partial
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<uint32_t> words((n + 31) / 32, 0);
    std::vector<int32_t> allowed_ids;
    for (int t = 0; t < n; ++t) {
      if (rng() % 5 == 0) {
        words[t / 32] |= 1u << (t % 32);
        allowed_ids.push_back(t);
      }
    }
    if (allowed_ids.empty()) continue;
    const std::vector<float> base = RandomLogits(n, 100 + trial);
    ResolvedSamplingParams p = Params(trial % 2 == 0 ? 0.0f : 1.5f);
    p.seed = trial;
    p.logprobs = true;
    std::vector<float> logits = base;
    SamplerState state(p, {});
    const SampleResult r = Sample(logits, p, state, {}, words);
    EXPECT_TRUE(std::count(allowed_ids.begin(), allowed_ids.end(), r.token_id) == 1)
        << "token " << r.token_id << " is outside the mask";
    if (p.greedy()) {
      int32_t best = allowed_ids[0];
      for (int32_t t : allowed_ids)
        if (base[t] > base[best]) best = t;
      EXPECT_EQ(r.token_id, best);
    }
    // Log-probs come from the unmasked distribution.
    double sum = 0;
    for (float x : base) sum += std::exp(double(x));
    EXPECT_NEAR(r.logprob, base[r.token_id] - std::log(sum), 1e-4);
  }
}

TEST(SamplerTest, BansYieldWhenTheMaskLeavesOnlyBannedTokens) {
  std::vector<float> logits = RandomLogits(64, 3);
  std::vector<uint32_t> words = {0u, 1u << 9};  // only token 41
  const int32_t banned[] = {41};
  ResolvedSamplingParams p = Params(1.0f);
  SamplerState state(p, {});
  EXPECT_EQ(Sample(logits, p, state, banned, words).token_id, 41);
  logits = RandomLogits(64, 3);
  words = {1u << 3, 1u << 9};  // tokens 3 and 41: the ban holds
  for (int i = 0; i < 10; ++i) {
    std::vector<float> copy = logits;
    EXPECT_EQ(Sample(copy, p, state, banned, words).token_id, 3);
  }
}

TEST(SamplerTest, TemperatureTopKTopPMinPMatchPlainMath) {
  for (uint64_t seed : {1, 2, 3}) {
    std::vector<float> logits = RandomLogits(1000, seed);
    ExpectCandidatesMatch(logits, 1.0f, 0, 1.0f, 0.0f);
    ExpectCandidatesMatch(logits, 0.7f, 0, 1.0f, 0.0f);
    ExpectCandidatesMatch(logits, 1.3f, 50, 1.0f, 0.0f);
    ExpectCandidatesMatch(logits, 0.8f, 0, 0.9f, 0.0f);
    ExpectCandidatesMatch(logits, 2.0f, 0, 0.999f, 0.0f);  // needs more than 256 sorted
    ExpectCandidatesMatch(logits, 1.0f, 40, 0.5f, 0.0f);
    ExpectCandidatesMatch(logits, 1.0f, 0, 1.0f, 0.1f);
    ExpectCandidatesMatch(logits, 0.9f, 100, 0.8f, 0.05f);
  }
}

// The candidates come best first (ByLogitDesc: larger logit, then lower id), as Draw walks them.
void ExpectBestFirst(const std::vector<float>& logits, const Candidates& c) {
  for (size_t i = 1; i < c.ids.size(); ++i) {
    const int32_t a = c.ids[i - 1], b = c.ids[i];
    ASSERT_TRUE(logits[a] > logits[b] || (logits[a] == logits[b] && a < b)) << i;
  }
}

TEST(SamplerTest, QwenSizedVocabularyKeepsWhatAFullSortKeeps) {
  // Qwen2.5's 151,936 logits rounded to quarters (many ties, broken by the lower id), every
  // seventh masked: top_k small and in the thousands, top_p growing past 256 and 4,096
  // candidates, and the Qwen generation_config's top_k = 20 / top_p = 0.8.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> logits = RandomLogits(151936, 21);
  for (float& x : logits) x = std::round(x * 4) / 4;
  for (size_t i = 0; i < logits.size(); i += 7) logits[i] = -inf;
  const struct {
    float t;
    int top_k;
    float top_p;
    float min_p;
  } cases[] = {{0.7f, 20, 0.8f, 0.0f}, {1.0f, 20, 1.0f, 0.0f}, {1.0f, 5000, 1.0f, 0.0f},
               {0.7f, 0, 0.8f, 0.0f},  {2.0f, 0, 0.95f, 0.0f}, {0.7f, 0, 0.8f, 0.05f},
               {1.0f, 0, 1.0f, 0.1f}};
  for (const auto& c : cases) {
    ExpectCandidatesMatch(logits, c.t, c.top_k, c.top_p, c.min_p);
    ResolvedSamplingParams p = Params(c.t);
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    if (c.top_k > 0 || c.top_p < 1.0f) ExpectBestFirst(logits, FilterCandidates(logits, p));
  }
  // Ascending logits: every id beats the worst kept so far (the selection's worst case).
  std::vector<float> ascending(151936);
  for (size_t i = 0; i < ascending.size(); ++i) ascending[i] = 1e-4f * static_cast<float>(i);
  ExpectCandidatesMatch(ascending, 1.0f, 100, 1.0f, 0.0f);
  ExpectCandidatesMatch(ascending, 0.01f, 0, 0.9f, 0.0f);
}

TEST(SamplerTest, NanLogitsStillGiveATokenOfTheVocabulary) {
  // A broken model's NaN logits order nothing; the selection must still stay in bounds.
  std::vector<float> logits = RandomLogits(151936, 3);
  for (size_t i = 0; i < logits.size(); i += 3) logits[i] = std::numeric_limits<float>::quiet_NaN();
  ResolvedSamplingParams p = Params(0.7f);
  p.top_k = 20;
  p.top_p = 0.8f;
  SamplerState state(p, {});
  for (int top_k : {20, 0}) {
    p.top_k = top_k;
    std::vector<float> l = logits;
    const int32_t token = Sample(l, p, state).token_id;
    EXPECT_GE(token, 0);
    EXPECT_LT(token, static_cast<int32_t>(logits.size()));
  }
}

TEST(SamplerTest, SameSeedGivesSameTokensDifferentSeedsDiffer) {
  auto run = [](uint64_t seed) {
    ResolvedSamplingParams p = Params(1.0f);
    p.seed = seed;
    SamplerState state(p, {});
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> logits = RandomLogits(500, 99 + i);
      out.push_back(Sample(logits, p, state).token_id);
    }
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(SamplerTest, DrawsFollowTheDistribution) {
  // Chi-square goodness of fit on 5 tokens, 20,000 draws, fixed seed.
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  ResolvedSamplingParams p = Params(1.0f);
  SamplerState state(p, {});
  auto ref = ReferenceDistribution(logits, 1.0f, 0, 1.0f, 0.0f);
  const int kDraws = 20000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < kDraws; ++i) {
    std::vector<float> l = logits;
    ++counts[Draw(FilterCandidates(l, p), state.Uniform())];
  }
  double chi2 = 0;
  for (int id = 0; id < 5; ++id) {
    const double expected = ref[id] * kDraws;
    chi2 += (counts[id] - expected) * (counts[id] - expected) / expected;
  }
  EXPECT_LT(chi2, 18.47);  // 99.9% quantile of chi-square with 4 degrees of freedom
}

TEST(SamplerTest, UnfilteredSampleFollowsTheTemperatureSoftmaxAndSkipsMaskedTokens) {
  // Sample() with no top-k / top-p / min-p draws from the full softmax directly: chi-square
  // against the plain-math distribution at temperature 0.7 over 37 tokens (not a multiple of the
  // vector width), two of them masked with -inf and one banned; 30,000 draws, fixed seed.
  std::vector<float> logits = RandomLogits(37, 5);
  logits[3] = -std::numeric_limits<float>::infinity();
  logits[36] = -std::numeric_limits<float>::infinity();
  ResolvedSamplingParams p = Params(0.7f);
  SamplerState state(p, {});
  const std::vector<int32_t> banned = {10};
  std::vector<float> allowed = logits;
  allowed[10] = -std::numeric_limits<float>::infinity();
  auto ref = ReferenceDistribution(allowed, 0.7f, 0, 1.0f, 0.0f);
  const int kDraws = 30000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    std::vector<float> l = logits;
    ++counts[Sample(l, p, state, banned).token_id];
  }
  EXPECT_EQ(counts[3], 0);
  EXPECT_EQ(counts[36], 0);
  EXPECT_EQ(counts[10], 0);
  double chi2 = 0;
  int dof = -1;
  for (size_t id = 0; id < logits.size(); ++id) {
    const double expected = ref[static_cast<int32_t>(id)] * kDraws;
    if (expected < 5) continue;  // chi-square needs enough expected counts per cell
    chi2 += (counts[id] - expected) * (counts[id] - expected) / expected;
    ++dof;
  }
  ASSERT_GE(dof, 10);
  // Bound: mean + 5 standard deviations of chi-square with dof degrees of freedom.
  EXPECT_LT(chi2, dof + 5 * std::sqrt(2.0 * dof));
}

// The unfiltered draw sums whole blocks of probabilities before scanning one block: over a
// Qwen-sized vocabulary it must still pick, for u between two cumulative sums, the token whose
// one-by-one running sum first passes u (tokens at block edges, inside blocks, the last one).
TEST(SamplerTest, UnfilteredDrawPicksTheTokenWhoseRunningSumPassesU) {
  const std::vector<float> logits = RandomLogits(151936, 11);
  // The weights the draw computes, their running sums in double, and u aimed at the middle of a
  // token's share of their sum.
  std::vector<float> weights = logits;
  const double total =
      kernels::SoftmaxWeights(weights.data(), static_cast<int64_t>(weights.size()));
  std::vector<double> cum(weights.size());
  double run = 0;
  for (size_t i = 0; i < weights.size(); ++i) cum[i] = (run += weights[i]) / total;
  for (int32_t token : {0, 1, 511, 512, 513, 1023, 1024, 77777, 151423, 151424, 151935}) {
    const double below = token == 0 ? 0.0 : cum[token - 1];
    if (cum[token] - below < 1e-12) continue;  // a token too unlikely to aim u at
    std::vector<float> l = logits;
    EXPECT_EQ(DrawFromFullSoftmax(l, 1.0f, (below + cum[token]) / 2), token);
  }
  std::vector<float> l = logits;
  EXPECT_EQ(DrawFromFullSoftmax(l, 1.0f, 0.0), 0);
}

TEST(SamplerTest, UnfilteredDrawOfAllMaskedLogitsFallsBackToTokenZero) {
  std::vector<float> logits(20, -std::numeric_limits<float>::infinity());
  EXPECT_EQ(DrawFromFullSoftmax(logits, 1.0f, 0.5), 0);
}

TEST(SamplerTest, TopKOneIsGreedyAndTopPTinyKeepsOneToken) {
  std::vector<float> logits = RandomLogits(300, 5);
  const int32_t best = Argmax(logits);
  ResolvedSamplingParams p = Params(1.0f);
  p.top_k = 1;
  SamplerState state(p, {});
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = logits;
    EXPECT_EQ(Sample(l, p, state).token_id, best);
  }
  p.top_k = 0;
  p.top_p = 1e-6f;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = logits;
    EXPECT_EQ(Sample(l, p, state).token_id, best);
  }
}

TEST(SamplerTest, LogprobsAreRawLogSoftmax) {
  std::vector<float> logits = RandomLogits(64, 11);
  const std::vector<float> raw = logits;
  ResolvedSamplingParams p = Params(0.5f);
  p.logprobs = true;
  p.top_logprobs = 3;
  p.logit_bias = {{5, 50.0f}};  // changes the draw, not the reported distribution
  SamplerState state(p, {});
  SampleResult r = Sample(logits, p, state);
  EXPECT_EQ(r.token_id, 5);
  double mx = *std::max_element(raw.begin(), raw.end());
  double s = 0;
  for (float v : raw) s += std::exp(v - mx);
  const double lse = mx + std::log(s);
  EXPECT_NEAR(r.logprob, raw[5] - lse, 1e-4);
  std::vector<int32_t> order(raw.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return raw[a] > raw[b]; });
  ASSERT_EQ(r.top_logprobs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.top_logprobs[i].first, order[i]);
    EXPECT_NEAR(r.top_logprobs[i].second, raw[order[i]] - lse, 1e-4);
  }
}

TEST(SamplingParamsTest, DefaultsComeFromGenerationConfigThenOpenAi) {
  GenerationDefaults d;
  d.temperature = 0.7f;
  d.top_p = 0.8f;
  d.top_k = 20;
  d.repetition_penalty = 1.05f;
  SamplingParams req;
  req.top_p = 0.5f;
  ResolvedSamplingParams r = ResolveSamplingParams(req, d);
  EXPECT_FLOAT_EQ(r.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.top_k, 20);
  EXPECT_FLOAT_EQ(r.min_p, 0.0f);
  EXPECT_FLOAT_EQ(r.repetition_penalty, 1.05f);
  ResolvedSamplingParams plain = ResolveSamplingParams(SamplingParams{}, GenerationDefaults{});
  EXPECT_FLOAT_EQ(plain.temperature, 1.0f);
  EXPECT_FLOAT_EQ(plain.top_p, 1.0f);
  EXPECT_EQ(plain.top_k, 0);
}

TEST(SamplingParamsTest, ValidationNamesTheBadField) {
  SamplingParams p;
  p.temperature = -1.0f;
  Status s = ValidateSamplingParams(p, 100);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("temperature"), std::string::npos);
  p = SamplingParams{};
  p.logit_bias = {{100, 1.0f}};
  EXPECT_FALSE(ValidateSamplingParams(p, 100).ok());
  p = SamplingParams{};
  p.top_p = 0.0f;
  EXPECT_FALSE(ValidateSamplingParams(p, 100).ok());
  p = SamplingParams{};
  p.top_logprobs = 21;
  EXPECT_FALSE(ValidateSamplingParams(p, 100).ok());
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}, 100).ok());
}

}  // namespace
}  // namespace tinyserve
