#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/ops.h"

namespace tinyserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Larger value first; lower id among ties, so every selection is deterministic.
struct ByLogitDesc {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

// The min(m, vocabulary) best ids under ByLogitDesc, best first: what sorting every id and keeping
// the first m gives, in one pass that holds the m best so far in a heap whose top is the worst of
// them, so most ids cost one comparison with it (m at or above the vocabulary: a heap sort of
// every id). The sort it replaces (nth_element or
// partial_sort over index vectors of the vocabulary, comparing through them) took 4-5 ms a draw
// on Qwen2.5's 151,936 logits with its generation_config's top_k = 20 / top_p = 0.8, every token
// of every sequence on the engine thread's pool; the whole draw now takes ~0.05 ms
// (bench_sampling). Heap operations never index past their range whatever the comparisons
// answer (NaN logits), where nth_element's unguarded partitions may.
std::vector<int32_t> BestIds(std::span<const float> logits, size_t m) {
  const ByLogitDesc cmp{logits.data()};
  const auto n = static_cast<int32_t>(logits.size());
  const float* v = logits.data();
  std::vector<int32_t> heap;
  heap.reserve(std::min<size_t>(m, logits.size()));
  int32_t i = 0;
  for (; i < n && heap.size() < m; ++i) {
    heap.push_back(i);
    std::push_heap(heap.begin(), heap.end(), cmp);
  }
  // The worst kept value in a register: an id below it (most of them) costs one comparison of
  // values read in order (NaN compares false: it goes on to cmp, which keeps it out or in as
  // the sort would).
  float worst = heap.empty() ? 0.0f : v[heap.front()];
  for (; i < n; ++i) {
    if (v[i] < worst || !cmp(i, heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), cmp);
    heap.back() = i;
    std::push_heap(heap.begin(), heap.end(), cmp);
    worst = v[heap.front()];
  }
  std::sort_heap(heap.begin(), heap.end(), cmp);
  return heap;
}

}  // namespace

SamplerState::SamplerState(const ResolvedSamplingParams& params, std::span<const int32_t> prompt)
    : prompt_tokens_(prompt.begin(), prompt.end()) {
  if (params.seed) {
    rng_.seed(*params.seed);
  } else {
    std::random_device rd;
    rng_.seed((uint64_t{rd()} << 32) ^ rd());
  }
  std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
  prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()),
                       prompt_tokens_.end());
}

void SamplerState::Accept(int32_t token_id) { ++output_counts_[token_id]; }

double SamplerState::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void ApplyLogitBias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] += b;
  }
}

void ApplyPenalties(std::span<float> logits, const ResolvedSamplingParams& params,
                    const SamplerState& state) {
  const float rep = params.repetition_penalty;
  if (rep != 1.0f) {
    auto penalize = [&](int32_t id) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) return;
      logits[id] = logits[id] > 0 ? logits[id] / rep : logits[id] * rep;
    };
    for (int32_t id : state.prompt_tokens()) penalize(id);
    for (const auto& [id, count] : state.output_counts()) {
      // A token in both sets is penalised once.
      if (!std::binary_search(state.prompt_tokens().begin(), state.prompt_tokens().end(), id)) {
        penalize(id);
      }
    }
  }
  if (params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) {
    for (const auto& [id, count] : state.output_counts()) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      logits[id] -= params.frequency_penalty * static_cast<float>(count) +
                    params.presence_penalty * (count > 0 ? 1.0f : 0.0f);
    }
  }
}

int32_t Argmax(std::span<const float> logits) {
  return static_cast<int32_t>(kernels::Argmax(logits.data(), static_cast<int64_t>(logits.size())));
}

float LogSumExp(std::span<const float> logits) {
  return kernels::LogSumExp(logits.data(), static_cast<int64_t>(logits.size()));
}

std::vector<std::pair<int32_t, float>> TopLogprobs(std::span<const float> logits, int32_t k,
                                                   float lse) {
  std::vector<std::pair<int32_t, float>> out;
  if (k <= 0) return out;
  for (int32_t id : BestIds(logits, k)) out.emplace_back(id, logits[id] - lse);
  return out;
}

Candidates FilterCandidates(std::span<const float> logits, const ResolvedSamplingParams& params) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  const float inv_t =
      1.0f / std::max(params.temperature, ResolvedSamplingParams::kGreedyTemperature);
  // Softmax of logits / temperature over the candidates (masked tokens have -inf logits): w[j]
  // is the weight of ids[j]. Vectors the size of the candidates: vocabulary-sized ones,
  // allocated and zeroed per draw, cost more than a top_k = 20 selection (page faults).
  std::vector<int32_t> ids;
  std::vector<float> w;
  double total = 0;
  const bool use_top_k = params.top_k > 0 && params.top_k < vocab;
  // Without top_k every token is a candidate: their weights by id, in this thread's scratch.
  thread_local std::vector<float> by_id;
  float max_logit = kNegInf;
  auto weight = [&](float x) { return x == kNegInf ? 0.0f : std::exp((x - max_logit) * inv_t); };
  if (use_top_k) {
    ids = BestIds(logits, params.top_k);
    for (int32_t id : ids) max_logit = std::max(max_logit, logits[id]);
    w.resize(ids.size());
    for (size_t j = 0; j < ids.size(); ++j) total += w[j] = weight(logits[ids[j]]);
  } else {
    // The vectorised softmax of logits / temperature: exp per logit in libm took ~0.6 ms a
    // draw over Qwen2.5's vocabulary (bench_sampling, top_k off).
    if (by_id.size() < logits.size()) by_id.resize(logits.size());
    for (int32_t i = 0; i < vocab; ++i) by_id[i] = logits[i] * inv_t;
    if (!std::isfinite(kernels::SoftmaxWeights(by_id.data(), vocab))) {
      return {{Argmax(logits)}, {1.0f}};  // every logit -inf
    }
    // Summed again in double (four chains, so the adds overlap): top_p's cut compares running
    // sums with a share of this total, and the float one moved the cut by a token.
    double part[4] = {};
    int32_t i = 0;
    for (; i + 4 <= vocab; i += 4) {
      for (int u = 0; u < 4; ++u) part[u] += by_id[i + u];
    }
    for (; i < vocab; ++i) part[0] += by_id[i];
    total = (part[0] + part[1]) + (part[2] + part[3]);
  }
  // Gives ids the m best (best first) and w their weights, without top_k.
  auto select = [&](size_t m) {
    ids = BestIds(logits, m);
    w.resize(ids.size());
    for (size_t j = 0; j < ids.size(); ++j) w[j] = by_id[ids[j]];
  };
  if (params.top_p < 1.0f) {
    // Keep the most likely tokens until their mass reaches top_p. Without top_k, select only a
    // growing number of the best: usually a few hundred tokens hold the mass.
    const size_t all = use_top_k ? ids.size() : vocab;
    size_t m = use_top_k ? all : std::min<size_t>(all, 256);
    const double target = params.top_p * total;
    while (true) {
      if (!use_top_k) select(m);
      double cum = 0;
      size_t keep = 0;
      while (keep < m && cum < target) cum += w[keep++];
      if (cum >= target || m == all) {
        ids.resize(std::max<size_t>(keep, 1));
        w.resize(ids.size());
        break;
      }
      m = std::min(all, m * 4);
    }
  } else if (!use_top_k) {
    ids.resize(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    w.assign(by_id.begin(), by_id.begin() + vocab);
  }
  if (params.min_p > 0.0f) {
    // Relative to the most likely token: exp((l - max) / t) >= min_p.
    size_t n = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      if (w[j] < params.min_p) continue;
      ids[n] = ids[j];
      w[n++] = w[j];
    }
    ids.resize(n);
    w.resize(n);
  }
  Candidates out;
  if (ids.empty()) {  // Only possible if every logit was -inf: fall back to the argmax.
    out.ids = {Argmax(logits)};
    out.probs = {1.0f};
    return out;
  }
  double kept = 0;
  for (float x : w) kept += x;
  out.ids = std::move(ids);
  out.probs.reserve(w.size());
  for (float x : w) out.probs.push_back(static_cast<float>(x / kept));
  return out;
}

int32_t DrawFromFullSoftmax(std::span<float> logits, float temperature, double u) {
  if (logits.empty()) return 0;
  if (temperature != 1.0f) {
    const float inv_t = 1.0f / temperature;
    for (float& v : logits) v *= inv_t;
  }
  // Unnormalised weights: the first token whose running weight passes u times their sum (a -inf
  // logit's weight is 0: never drawn). With a pass dividing them (a normalised softmax) and a
  // scan compiled for the baseline ISA, 64 draws over 151,936 logits took 2.4-2.8 ms on one Zen 5
  // core with the logits in cache, now 2.0 (3.5-3.9 -> 2.9 from memory), every decode step.
  const int64_t n = static_cast<int64_t>(logits.size());
  const float total = kernels::SoftmaxWeights(logits.data(), n);
  // Every logit -inf: no weight is finite; the argmax of equal logits is token 0.
  if (!std::isfinite(total)) return 0;
  const int64_t token = kernels::FirstIndexPassing(logits.data(), n, u * total);
  // Rounding left u times the sum above the running total: the most likely token.
  return token >= 0 ? static_cast<int32_t>(token) : Argmax(logits);
}

int32_t Draw(const Candidates& candidates, double u) {
  double cum = 0;
  for (size_t i = 0; i < candidates.ids.size(); ++i) {
    cum += candidates.probs[i];
    if (u < cum) return candidates.ids[i];
  }
  // Rounding left u above the last cumulative sum: the last token with non-zero mass.
  for (size_t i = candidates.ids.size(); i-- > 0;) {
    if (candidates.probs[i] > 0) return candidates.ids[i];
  }
  return candidates.ids.back();
}

void ApplyAllowedMask(std::span<float> logits, std::span<const uint32_t> allowed) {
  const size_t n = logits.size();
  for (size_t w = 0; w * 32 < n; ++w) {
    const uint32_t bits = w < allowed.size() ? allowed[w] : 0;
    if (bits == 0xffffffffu) continue;
    const size_t end = std::min(n, w * 32 + 32);
    for (size_t i = w * 32; i < end; ++i) {
      if (!((bits >> (i - w * 32)) & 1)) logits[i] = kNegInf;
    }
  }
}

SampleResult Sample(std::span<float> logits, const ResolvedSamplingParams& params,
                    SamplerState& state, std::span<const int32_t> banned,
                    std::span<const uint32_t> allowed) {
  SampleResult result;
  // Log-probs describe the raw model distribution: keep the logits from before processing (in
  // this thread's scratch: a vocabulary-sized vector per draw costs page faults).
  thread_local std::vector<float> raw;
  float lse = 0;
  if (params.logprobs) {
    raw.assign(logits.begin(), logits.end());
    lse = LogSumExp(raw);
    result.top_logprobs = TopLogprobs(raw, params.top_logprobs, lse);
  }
  if (!allowed.empty()) ApplyAllowedMask(logits, allowed);
  ApplyLogitBias(logits, params.logit_bias);
  if (!banned.empty()) {
    std::vector<bool> is_banned(logits.size(), false);
    for (int32_t id : banned) {
      if (id >= 0 && static_cast<size_t>(id) < logits.size()) is_banned[id] = true;
    }
    // Bans apply only while some token stays possible.
    bool any_left = false;
    for (size_t i = 0; i < logits.size() && !any_left; ++i) {
      any_left = !is_banned[i] && logits[i] != kNegInf;
    }
    if (any_left) {
      for (size_t i = 0; i < logits.size(); ++i) {
        if (is_banned[i]) logits[i] = kNegInf;
      }
    }
  }
  ApplyPenalties(logits, params, state);
  if (params.greedy()) {
    result.token_id = Argmax(logits);
  } else if (params.top_k <= 0 && params.top_p >= 1.0f && params.min_p <= 0.0f) {
    // No filtering: every token is a candidate. Skip building the candidate list (two
    // vocabulary-sized vectors) and draw from the vectorised softmax in place.
    result.token_id = DrawFromFullSoftmax(logits, params.temperature, state.Uniform());
  } else {
    result.token_id = Draw(FilterCandidates(logits, params), state.Uniform());
  }
  state.Accept(result.token_id);
  if (params.logprobs) result.logprob = raw[result.token_id] - lse;
  return result;
}

}  // namespace tinyserve
