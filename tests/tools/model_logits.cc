// tool_model_logits: runs Qwen2Model over a scripted series of forward calls and writes the
// logits of every token of every call as .npy files, for the NumPy oracle
// (tests/reference/test_qwen2_numpy.py).
//
// Usage: tool_model_logits SPEC.json OUT_DIR
// SPEC: {"model": "dir | file.gguf | dummy:tiny", "dtype": "", "seed": 0, "quantization": "",
//        "block_size": 4, "num_blocks": 64, "shuffle_seed": 1, "threads": 2,
//        "kv_dtype": "f32" (or "kv_dtypes": ["i8", "f16"]: one run per cache type into
//        OUT_DIR/<type>/),
//        "steps": [[{"seq": 0, "tokens": [1, 2]}, {"seq": 1, "tokens": [3]}], ...]}
// Each step is one Forward call holding the listed sequences' new tokens (a sequence continues
// where its previous step ended). Blocks are handed out from a shuffled free list, so each
// sequence's blocks are scattered in the cache. OUT_DIR/step_<i>.npy: float32
// [tokens in step i, vocab], rows in batch order.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "model/qwen2.h"

namespace tinyserve {
namespace {

bool WriteNpy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
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

// Runs the spec's steps with a fresh cache of kv_dtype, writing OUT_DIR/step_<i>.npy.
int RunSteps(Qwen2Model& model, const nlohmann::json& spec, DType kv_dtype,
             const std::string& out_dir);

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
  // "kv_dtypes": ["i8", "f16"] runs the steps once per cache type (one model load) into
  // OUT_DIR/<type>/; otherwise "kv_dtype" (default f32) into OUT_DIR.
  const bool several = spec.contains("kv_dtypes");
  const std::vector<std::string> names =
      several ? spec.at("kv_dtypes").get<std::vector<std::string>>()
              : std::vector<std::string>{spec.value("kv_dtype", "f32")};
  for (const std::string& name : names) {
    const std::optional<DType> kv_dtype = DTypeFromName(name);
    if (!kv_dtype || !(*kv_dtype == DType::kF32 || *kv_dtype == DType::kF16 ||
                       *kv_dtype == DType::kBF16 || *kv_dtype == DType::kI8)) {
      fmt::print(stderr, "kv_dtype must be f32, f16, bf16 or i8\n");
      return 2;
    }
    const std::string dir = several ? out_dir + "/" + name : out_dir;
    std::filesystem::create_directories(dir);
    if (int rc = RunSteps(**model, spec, *kv_dtype, dir); rc != 0) return rc;
  }
  return 0;
}

int RunSteps(Qwen2Model& model, const nlohmann::json& spec, DType kv_dtype,
             const std::string& out_dir) {
  const ModelConfig& c = model.config();
  const int32_t block_size = spec.value("block_size", 4);
  const int64_t num_blocks = spec.value("num_blocks", 64);
  auto cache = KvCache::Create(c, block_size, kv_dtype,
                               num_blocks * KvCache::BlockBytes(c, block_size, kv_dtype));
  if (!cache.ok()) {
    fmt::print(stderr, "{}\n", cache.status().ToString());
    return 1;
  }
  std::vector<int32_t> free_blocks(num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(spec.value("shuffle_seed", 1)));
  // The engine's batch layout (BuildForwardBatch) over sequences built by hand.
  std::map<int, Sequence> seqs;
  ThreadPool pool(spec.value("threads", 2));
  int step_idx = 0;
  for (const nlohmann::json& step : spec.at("steps")) {
    SchedulerOutput out;
    for (const nlohmann::json& item : step) {
      Sequence& seq = seqs[item.at("seq").get<int>()];
      const std::vector<int32_t> tokens = item.at("tokens").get<std::vector<int32_t>>();
      seq.num_computed_tokens = seq.num_tokens();
      seq.token_ids.insert(seq.token_ids.end(), tokens.begin(), tokens.end());
      std::vector<int32_t>& table = seq.block_table.blocks;
      while (static_cast<int64_t>(table.size()) * block_size < seq.num_tokens()) {
        if (free_blocks.empty()) {
          fmt::print(stderr, "out of KV blocks\n");
          return 1;
        }
        table.push_back(free_blocks.back());
        free_blocks.pop_back();
      }
      const int32_t n = static_cast<int32_t>(tokens.size());
      out.scheduled.push_back({&seq, n, true});
      out.num_tokens += n;
    }
    ForwardBatch batch = BuildForwardBatch(out, block_size);
    const int64_t rows = batch.num_tokens();
    batch.logit_rows.resize(rows);  // logits for every token
    std::iota(batch.logit_rows.begin(), batch.logit_rows.end(), 0);
    std::vector<float> logits(rows * c.vocab_size);
    Status s = model.Forward(batch, cache->layers(), logits.data(), &pool);
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
