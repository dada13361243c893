// One token drawn from Qwen2.5's 151,936 logits, per sampler configuration, on one thread: the
// time a decode step spends per sequence after the forward pass (the engine draws a step's
// sequences on the compute pool). Against the floor of reading the logits once at this machine's
// read bandwidth (one thread, measured in the same run, roofline.h): a draw reads them at least
// once, from cache here, so more than 100% is possible.
//   bench_sampling
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "roofline.h"
#include "sampling/sampler.h"

namespace tinyserve {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Config {
  const char* name;
  float temperature, top_p;
  int32_t top_k;
  float repetition_penalty;
  bool logprobs;
};

int Main() {
  ThreadPool pool(1);
  const bench::Roofline roof = bench::MeasureRoofline(&pool, uint64_t{256} << 20);
  std::printf("1 thread, %s\n", bench::Describe(roof).c_str());
  constexpr int32_t kVocab = 151936;
  std::mt19937 rng(1);
  std::normal_distribution<float> logit(0.0f, 3.0f);
  std::vector<float> logits(kVocab);
  for (float& x : logits) x = logit(rng);
  std::vector<int32_t> prompt(512);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % kVocab);
  const Config configs[] = {
      {"Qwen generation_config (T 0.7, top_k 20, top_p 0.8, rep 1.05)", 0.7f, 0.8f, 20, 1.05f,
       false},
      {"the same with logprobs (top 5)", 0.7f, 0.8f, 20, 1.05f, true},
      {"T 0.7, top_p 0.8 (top_k off)", 0.7f, 0.8f, 0, 1.0f, false},
      {"T 1.0 (vLLM bench throughput: no filter)", 1.0f, 1.0f, 0, 1.0f, false},
      {"greedy", 0.0f, 1.0f, 0, 1.0f, false},
  };
  const double floor_s = kVocab * sizeof(float) / (roof.read_gb_per_s * 1e9);
  std::vector<float> work(kVocab);
  for (const Config& c : configs) {
    ResolvedSamplingParams p;
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    p.top_k = c.top_k;
    p.repetition_penalty = c.repetition_penalty;
    p.logprobs = c.logprobs;
    p.top_logprobs = c.logprobs ? 5 : 0;
    p.seed = 7;
    SamplerState state(p, prompt);
    // Fastest of 200 draws (each on a fresh copy of the logits, copied outside the timing).
    double best = 1e30;
    for (int i = 0; i < 200; ++i) {
      std::copy(logits.begin(), logits.end(), work.begin());
      const double t0 = Now();
      const int32_t token = Sample(work, p, state).token_id;
      best = std::min(best, Now() - t0);
      if (token < 0 || token >= kVocab) return 1;
    }
    std::printf("%-64s %8.3f ms per draw (%4.0f%% of reading the logits at read bw)\n", c.name,
                best * 1e3, 100 * floor_s / best);
  }
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main() { return tinyserve::Main(); }
