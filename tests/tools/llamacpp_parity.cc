// tool_llamacpp_parity: tinyserve's side of the llama.cpp parity test
// (tests/reference/test_llamacpp_parity.py, and test_llamacpp_live.py on live llama.cpp records).
//
// Usage: tool_llamacpp_parity MODEL.gguf REFERENCE.json OUT.json [f16|int8]
// (the KV cache's type: f16, llama.cpp's, by default; int8 measures that cache against llama.cpp)
// For each prompt of a fixture's reference (see shared fixtures README), runs ONE forward pass
// over ids + greedy_16 with logits for the recorded rows: since attention is causal, row k - 1
// holds the next-token logits of the prefix of length k, which is what llama.cpp measured with a
// fresh prefill of that prefix. Writes, per recorded position and per greedy step, the
// log-probabilities (log-softmax in double over the whole vocabulary, as the reference) of
// llama.cpp's top-10 ids, plus tinyserve's own argmax and its log-probability:
//   {"prompts": [{"positions": [{"k", "logprobs": [10], "argmax", "argmax_logprob"}],
//                 "greedy": [same without k]}],
//    "eos_token_ids": the end-of-generation ids tinyserve derived from the file}
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "model/qwen2.h"

namespace tinyserve {
namespace {

using Json = nlohmann::json;

Json Row(const float* logits, int64_t vocab, const Json& top) {
  const float* best = std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - double(*best));
  const double lse = double(*best) + std::log(sum);
  Json lps = Json::array();
  for (const Json& entry : top) lps.push_back(double(logits[entry[0].get<int64_t>()]) - lse);
  return {{"logprobs", lps}, {"argmax", best - logits}, {"argmax_logprob", double(*best) - lse}};
}

int Run(const std::string& model_path, const std::string& ref_path, const std::string& out_path,
        DType kv_dtype) {
  std::ifstream in(ref_path);
  std::stringstream ss;
  ss << in.rdbuf();
  const Json ref = Json::parse(ss.str());
  auto model = Qwen2Model::Load(model_path, LoadOptions{});
  if (!model.ok()) {
    fmt::print(stderr, "{}\n", model.status().ToString());
    return 1;
  }
  const ModelConfig& c = (*model)->config();
  constexpr int32_t kBlockSize = 16;
  ThreadPool pool(2);
  Json out = {{"prompts", Json::array()}, {"eos_token_ids", c.eos_token_ids}};
  for (const Json& prompt : ref.at("prompts")) {
    std::vector<int32_t> seq = prompt.at("ids").get<std::vector<int32_t>>();
    const int64_t num_ids = static_cast<int64_t>(seq.size());
    for (const Json& id : prompt.at("greedy_16")) seq.push_back(id.get<int32_t>());
    const int64_t n = static_cast<int64_t>(seq.size());
    const int64_t num_blocks = (n + kBlockSize - 1) / kBlockSize;
    // llama.cpp's context keeps K/V in f16; so does this cache unless told otherwise.
    auto cache = KvCache::Create(c, kBlockSize, kv_dtype,
                                 num_blocks * KvCache::BlockBytes(c, kBlockSize, kv_dtype));
    if (!cache.ok()) {
      fmt::print(stderr, "{}\n", cache.status().ToString());
      return 1;
    }
    // The whole sequence in one pass, laid out as the engine does, logits for every token.
    Sequence sequence;
    sequence.token_ids = seq;
    sequence.block_table.blocks.resize(num_blocks);
    std::iota(sequence.block_table.blocks.begin(), sequence.block_table.blocks.end(), 0);
    SchedulerOutput step;
    step.scheduled.push_back({&sequence, static_cast<int32_t>(n), true});
    step.num_tokens = static_cast<int32_t>(n);
    ForwardBatch batch = BuildForwardBatch(step, kBlockSize);
    // Logits for the recorded rows only (a long prompt's every row over a 151,936-token
    // vocabulary would take gigabytes): row k - 1 per position, row num_ids - 1 + i per greedy
    // step i; ascending and once each, as the batch wants them.
    const Json& greedy_top = prompt.at("greedy_16_top");
    std::vector<int32_t> wanted;
    for (const Json& pos : prompt.at("positions"))
      wanted.push_back(static_cast<int32_t>(pos.at("k").get<int64_t>() - 1));
    for (size_t i = 0; i < greedy_top.size(); ++i)
      wanted.push_back(static_cast<int32_t>(num_ids + static_cast<int64_t>(i) - 1));
    batch.logit_rows = wanted;
    std::sort(batch.logit_rows.begin(), batch.logit_rows.end());
    batch.logit_rows.erase(std::unique(batch.logit_rows.begin(), batch.logit_rows.end()),
                           batch.logit_rows.end());
    std::vector<float> logits(batch.logit_rows.size() * c.vocab_size);
    auto logits_of = [&](int32_t row) {
      const auto at = std::lower_bound(batch.logit_rows.begin(), batch.logit_rows.end(), row);
      return &logits[(at - batch.logit_rows.begin()) * c.vocab_size];
    };
    const Status s = (*model)->Forward(batch, cache->layers(), logits.data(), &pool);
    if (!s.ok()) {
      fmt::print(stderr, "{}\n", s.ToString());
      return 1;
    }
    Json p = {{"positions", Json::array()}, {"greedy", Json::array()}};
    size_t w = 0;
    for (const Json& pos : prompt.at("positions")) {
      Json row = Row(logits_of(wanted[w++]), c.vocab_size, pos.at("top"));
      row["k"] = pos.at("k");
      p["positions"].push_back(row);
    }
    for (const Json& top : greedy_top)
      p["greedy"].push_back(Row(logits_of(wanted[w++]), c.vocab_size, top));
    out["prompts"].push_back(p);
  }
  std::ofstream(out_path) << out.dump();
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) {
  const std::string kv = argc == 5 ? argv[4] : "f16";
  if ((argc != 4 && argc != 5) || (kv != "f16" && kv != "int8")) {
    std::fprintf(stderr, "usage: %s MODEL.gguf REFERENCE.json OUT.json [f16|int8]\n", argv[0]);
    return 2;
  }
  try {
    return tinyserve::Run(argv[1], argv[2], argv[3],
                          kv == "int8" ? tinyserve::DType::kI8 : tinyserve::DType::kF16);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bad reference: %s\n", e.what());
    return 2;
  }
}
