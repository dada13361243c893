// tool_model_logits: runs Qwen2Model over a scripted series of forward calls and writes the
// logits of every token of every call as .npy files, for the NumPy oracle
// (tests/reference/test_qwen2_numpy.py).
//
// Usage: tool_model_logits SPEC.json OUT_DIR
// SPEC: {"model": "dir | file.gguf | dummy:tiny", "dtype": "", "seed": 0, "quantization": "",
//        "block_size": 4,
//        "num_blocks": 64, "shuffle_seed": 1, "threads": 2,
//        "steps": [[{"seq": 0, "tokens": [1, 2]}, {"seq": 1, "tokens": [3]}], ...]}
// Each step is one Forward call holding the listed sequences' new tokens (a sequence continues
// where its previous step ended). Blocks are handed out from a shuffled free list, so each
// sequence's blocks are scattered in the cache. OUT_DIR/step_<i>.npy: float32
// [tokens in step i, vocab], rows in batch order.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/qwen2.h"
#include "model/simple_kv_cache.h"

namespace tinyserve {
namespace {

bool WriteNpy(const std::string& path, const std::vector<float>& data, int64_t rows,
              int64_t cols) {
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
                                   rows, cols);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()),
            static_cast<std::streamsize>(data.size() * sizeof(float)));
  return static_cast<bool>(out);
}

int Run(const std::string& spec_path, const std::string& out_dir) {
  std::ifstream in(spec_path);
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json spec = nlohmann::json::parse(ss.str());
  LoadOptions load;
  load.dtype = spec.value("dtype", "");
  load.seed = spec.value("seed", 0);
  load.quantization = spec.value("quantization", "");
  auto model = Qwen2Model::Load(spec.at("model").get<std::string>(), load);
  if (!model.ok()) {
    fmt::print(stderr, "{}\n", model.status().ToString());
    return 1;
  }
  const ModelConfig& c = (*model)->config();
  const int32_t block_size = spec.value("block_size", 4);
  const int64_t num_blocks = spec.value("num_blocks", 64);
  SimpleKvCache cache(c, num_blocks, block_size, DType::kF32);
  std::vector<int32_t> free_blocks(num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(),
               std::mt19937(spec.value("shuffle_seed", 1)));
  std::map<int, std::vector<int32_t>> tables;
  std::map<int, int32_t> lengths;
  ThreadPool pool(spec.value("threads", 2));
  int step_idx = 0;
  for (const nlohmann::json& step : spec.at("steps")) {
    BatchBuilder builder(block_size);
    int64_t rows = 0;
    for (const nlohmann::json& seq : step) {
      const int id = seq.at("seq").get<int>();
      const std::vector<int32_t> tokens = seq.at("tokens").get<std::vector<int32_t>>();
      const int32_t start = lengths[id];
      std::vector<int32_t>& table = tables[id];
      while (static_cast<int64_t>(table.size()) * block_size < start + int64_t(tokens.size())) {
        if (free_blocks.empty()) {
          fmt::print(stderr, "out of KV blocks\n");
          return 1;
        }
        table.push_back(free_blocks.back());
        free_blocks.pop_back();
      }
      builder.AddSequence(tokens, start, table, /*all_logits=*/true);
      lengths[id] = start + static_cast<int32_t>(tokens.size());
      rows += static_cast<int64_t>(tokens.size());
    }
    std::vector<float> logits(rows * c.vocab_size);
    Status s = (*model)->Forward(builder.Finish(), cache.layers(), logits.data(), &pool);
    if (!s.ok()) {
      fmt::print(stderr, "step {}: {}\n", step_idx, s.ToString());
      return 1;
    }
    if (!WriteNpy(fmt::format("{}/step_{}.npy", out_dir, step_idx), logits, rows, c.vocab_size)) {
      fmt::print(stderr, "cannot write {}\n", out_dir);
      return 1;
    }
    ++step_idx;
  }
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SPEC.json OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    return tinyserve::Run(argv[1], argv[2]);
  } catch (const std::exception& e) {  // malformed spec JSON: a test bug, reported plainly
    std::fprintf(stderr, "bad spec: %s\n", e.what());
    return 2;
  }
}
