// End-to-end model speed on the dummy Qwen2.5-0.5B: prefill of one long prompt, decode at batch 1
// and at batch B (B sequences each adding one token per step over some cached context), for
// several weight types, each figure also as a fraction of its physical bound measured in the
// same run (decode: bytes read per step / read bandwidth; prefill: operations / peak of the unit
// doing them). Prints a markdown table; --profile adds a per-op time breakdown.
//
//   build/release/benchmarks/bench_model [--threads 2] [--dtypes bf16,q8_0,q4_0,q4_k_m]
//       [--model dummy:qwen2.5-0.5b] [--prompt 512] [--batch 16] [--context 256] [--steps 16]
//       [--kv-cache-dtype f16|int8] [--profile] [--compare-fusion]
// --compare-fusion measures each dtype twice, the second time ("<dtype> unfused") with every
// matmul quantizing its f32 input itself instead of the norm / SiLU before it
// (Qwen2Model::set_fused_quantization), back to back on the same roofline.
// A dtype "A+Q" loads weights of type A (dummy models; "stored" for a --model file or
// directory) quantized at load with --quantization Q, e.g. --dtypes bf16,bf16+q8_0,q8_0.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "model/decode_cost.h"
#include "model/qwen2.h"
#include "roofline.h"
#include "util/aligned_buffer.h"

namespace tinyserve {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  int threads = 2;
  std::string model = "dummy:qwen2.5-0.5b";
  std::vector<std::string> dtypes = {"bf16", "q8_0", "q4_0", "q4_k_m"};
  int prompt = 512;
  int batch = 16;
  int context = 256;
  int steps = 16;
  DType kv_dtype = DType::kF16;
  bool profile = false;
  bool compare_fusion = false;
};

struct Row {
  std::string dtype;
  double weight_mb = 0;
  double prefill_tps = 0, prefill_bound = 0;
  double decode1_tps = 0, decode1_bound = 0;
  double decodeb_tps = 0, decodeb_bound = 0;
  const char* prefill_unit = "";
};

// A "Name: N kB" field of /proc/self/status in MB: VmRSS (all resident pages, including clean
// pages of mapped weight files the OS may drop) or RssAnon (memory the process allocated).
double StatusMb(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  double kb = 0;
  const std::string format = std::string(field) + ": %lf kB";
  while (std::fgets(line, sizeof(line), f))
    if (std::sscanf(line, format.c_str(), &kb) == 1) break;
  std::fclose(f);
  return kb / 1e3;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7919 + salt * 104729) % 151000;
  return t;
}

void PrintProfile(const char* phase, const Qwen2Profile& p, double wall) {
  struct Item {
    const char* name;
    double s;
  };
  const Item items[] = {{"embed+rope tables", p.embed},
                        {"rmsnorm(+residual)", p.norm},
                        {"qkv matmul", p.qkv},
                        {"rope+kv store", p.rope},
                        {"attention", p.attention},
                        {"o_proj matmul", p.o_proj},
                        {"gate_up matmul", p.gate_up},
                        {"silu*mul", p.silu},
                        {"down matmul", p.down},
                        {"residual add", p.residual},
                        {"lm_head (norm+matmul)", p.lm_head}};
  fmt::print("  {} ({} calls, {:.1f} ms per call):", phase, p.calls, wall * 1e3 / p.calls);
  for (const Item& it : items)
    if (it.s > 0) fmt::print(" {} {:.1f}%,", it.name, 100 * it.s / wall);
  fmt::print("\n");
}

constexpr std::string_view kUnfused = " unfused";

int Run(const Args& a) {
  ThreadPool pool(a.threads);
  fmt::print("measuring the machine ({} threads)...\n", a.threads);
  const bench::Roofline roof = bench::MeasureRoofline(&pool);
  fmt::print("{}\n\n", bench::Describe(roof));
  // Decode is bound by the read bandwidth, which moves within minutes on a shared VM: each
  // decode measurement is bracketed by two reads of this buffer (16x a 32 MiB last-level
  // cache), and its bound uses the higher of the two, the memory the run could have had.
  bench::ReadBandwidthProbe probe(&pool, uint64_t{512} << 20);
  std::vector<Row> rows;
  std::vector<std::string> runs;
  for (const std::string& dtype : a.dtypes) {
    runs.push_back(dtype);
    if (a.compare_fusion) runs.push_back(dtype + std::string(kUnfused));
  }
  for (const std::string& run : runs) {
    const bool unfused = run.ends_with(kUnfused);
    const std::string dtype = unfused ? run.substr(0, run.size() - kUnfused.size()) : run;
    LoadOptions load;
    // "bf16+q8_0": dummy bf16 weights quantized at load (--quantization q8_0); "+q8_0" for a
    // --model file or directory.
    const size_t plus = dtype.find('+');
    load.dtype = dtype.substr(0, plus);
    if (plus != std::string::npos) load.quantization = dtype.substr(plus + 1);
    if (load.dtype == "stored") load.dtype.clear();
    const double rss_before = StatusMb("VmRSS"), anon_before = StatusMb("RssAnon");
    const auto load_start = Clock::now();
    auto loaded = Qwen2Model::Load(a.model, load);
    if (!loaded.ok()) {
      fmt::print(stderr, "{}: {}\n", dtype, loaded.status().ToString());
      return 1;
    }
    Qwen2Model& model = **loaded;
    model.set_fused_quantization(!unfused);
    const ModelConfig& c = model.config();
    fmt::print("{}: loaded in {:.1f} s, resident memory +{:.0f} MB (+{:.0f} MB allocated)\n", dtype,
               Seconds(load_start), StatusMb("VmRSS") - rss_before,
               StatusMb("RssAnon") - anon_before);
    Row row;
    row.dtype = run;
    const double weight_bytes = static_cast<double>(model.weights().MatrixBytes());
    row.weight_mb = weight_bytes / 1e6;
    const DType weight_dtype = model.weights().layers[0].down.source_dtype();
    const bool quantized = IsQuantized(weight_dtype);
    // Each figure is a fraction of the best unit for its work (bf16 weights: the bf16 dot
    // product where the CPU has one, even though today's kernel widens them to f32 FMAs).
    const bench::Work work = quantized                      ? bench::Work::kInt8
                             : weight_dtype == DType::kBF16 ? bench::Work::kBf16
                                                            : bench::Work::kF32;
    const double peak_ops = bench::BestPeak(roof, work) * 1e9;
    row.prefill_unit = bench::BestUnit(roof, work);
    const DecodeCost cost = DecodeCostOf(c, weight_bytes, a.kv_dtype);
    const double layer_macs = cost.macs_per_token - double(c.vocab_size) * c.hidden_size;
    const double head_macs = double(c.vocab_size) * c.hidden_size;

    constexpr int32_t kBlockSize = 16;
    const int blocks_per_seq =
        (std::max(a.prompt, a.context + a.steps) + kBlockSize - 1) / kBlockSize;
    const int64_t num_blocks = int64_t{blocks_per_seq} * a.batch;
    auto cache = KvCache::Create(c, kBlockSize, a.kv_dtype,
                                 num_blocks * KvCache::BlockBytes(c, kBlockSize, a.kv_dtype));
    if (!cache.ok()) return 1;
    // 64-byte aligned as the engine's (ModelRunner's AlignedBuffer): a batch's logits of 8 MiB
    // or more are then streamed past the caches (kernels/matmul_internal.h), as in a real step.
    AlignedBuffer<float> logits(int64_t{a.batch} * c.vocab_size);
    auto table = [&](int seq) {
      std::vector<int32_t> t(blocks_per_seq);
      for (int i = 0; i < blocks_per_seq; ++i) t[i] = seq * blocks_per_seq + i;
      return t;
    };

    // Sequence `seq` computing `tokens` at positions pos.. (earlier positions cached), laid
    // out by the engine's BuildForwardBatch.
    auto one_step = [&](std::vector<Sequence>& seqs, SchedulerOutput* out, int seq,
                        const std::vector<int32_t>& tokens, int pos) {
      Sequence& s = seqs[seq];
      s.token_ids.assign(pos, 0);
      s.token_ids.insert(s.token_ids.end(), tokens.begin(), tokens.end());
      s.num_computed_tokens = pos;
      s.block_table.blocks = table(seq);
      out->scheduled.push_back({&s, static_cast<int32_t>(tokens.size()), true});
      out->num_tokens += static_cast<int32_t>(tokens.size());
    };
    // Prefill: one prompt, logits for its last token. Best of two runs.
    {
      std::vector<Sequence> seqs(1);
      SchedulerOutput out;
      one_step(seqs, &out, 0, Tokens(a.prompt, 1), 0);
      const ForwardBatch batch = BuildForwardBatch(out, kBlockSize);
      double best = 1e30;
      model.ResetProfile();
      model.set_profiling(a.profile);
      for (int rep = 0; rep < 2; ++rep) {
        const auto t0 = Clock::now();
        if (!model.Forward(batch, cache->layers(), logits.data(), &pool).ok()) return 1;
        best = std::min(best, Seconds(t0));
      }
      if (a.profile) PrintProfile("prefill", model.profile(), best * 2);
      row.prefill_tps = a.prompt / best;
      const double attn_macs =
          2.0 * c.num_layers * c.num_heads * c.head_dim * (double(a.prompt) * (a.prompt + 1) / 2);
      const double ops = 2.0 * (a.prompt * layer_macs + head_macs + attn_macs);
      row.prefill_bound = (ops / peak_ops) / best;  // fraction of the bound
    }
    // Decode: `batch_size` sequences with `context` cached tokens each, one token per step.
    // The cache content does not change the cost, so the context is not prefilled.
    auto decode = [&](int batch_size, double* tps, double* fraction) -> bool {
      const double read_before = probe.Measure();
      model.ResetProfile();
      model.set_profiling(a.profile);
      double total = 0;
      for (int step = -2; step < a.steps; ++step) {  // two warm-up steps
        const int pos = a.context + std::max(step, 0);
        std::vector<Sequence> seqs(batch_size);
        SchedulerOutput out;
        for (int s = 0; s < batch_size; ++s) {
          one_step(seqs, &out, s, {Tokens(1, s + step + 3)[0]}, pos);
        }
        const ForwardBatch batch = BuildForwardBatch(out, kBlockSize);
        if (step == 0) model.ResetProfile();
        const auto t0 = Clock::now();
        if (!model.Forward(batch, cache->layers(), logits.data(), &pool).ok()) return false;
        if (step >= 0) total += Seconds(t0);
      }
      if (a.profile)
        PrintProfile(batch_size == 1 ? "decode b=1" : "decode b=B", model.profile(), total);
      const double read_after = probe.Measure();
      bench::Roofline around = roof;
      around.read_gb_per_s = std::max(read_before, read_after);
      fmt::print("  decode b={}: read {:.1f} GB/s before, {:.1f} after (the bound uses {:.1f})\n",
                 batch_size, read_before, read_after, around.read_gb_per_s);
      const double step_s = total / a.steps;
      *tps = batch_size / step_s;
      const double ctx = double(batch_size) * (a.context + 1);
      const bench::StepBound bound =
          bench::DecodeStepBound(around, cost.Bytes(ctx), cost.Ops(batch_size, ctx), work);
      *fraction = bound.seconds() / step_s;
      return true;
    };
    if (!decode(1, &row.decode1_tps, &row.decode1_bound)) return 1;
    if (!decode(a.batch, &row.decodeb_tps, &row.decodeb_bound)) return 1;
    model.set_profiling(false);
    rows.push_back(row);
  }
  fmt::print(
      "\n| weights | matrix MB | prefill {} tok/s | of bound | decode b=1 tok/s | of bound "
      "| decode b={} tok/s | of bound |\n",
      a.prompt, a.batch);
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    fmt::print("| {} | {:.0f} | {:.1f} | {:.0f}% ({}) | {:.2f} | {:.0f}% | {:.1f} | {:.0f}% |\n",
               r.dtype, r.weight_mb, r.prefill_tps, 100 * r.prefill_bound, r.prefill_unit,
               r.decode1_tps, 100 * r.decode1_bound, r.decodeb_tps, 100 * r.decodeb_bound);
  }
  fmt::print(
      "\nthreads {}, decode context {} tokens, {} KV cache; bounds: decode = max((weights + "
      "KV bytes) read per step / read bandwidth measured around that decode, ops / peak), "
      "prefill = ops / peak of the unit.\n",
      a.threads, a.context, DTypeName(a.kv_dtype));
  return 0;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) {
  tinyserve::Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--threads") {
      a.threads = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--dtypes") {
      a.dtypes.clear();
      std::string list = next();
      for (size_t at = 0; at <= list.size();) {
        size_t end = list.find(',', at);
        if (end == std::string::npos) end = list.size();
        if (end > at) a.dtypes.push_back(list.substr(at, end - at));
        at = end + 1;
      }
    } else if (arg == "--model") {
      a.model = next();
    } else if (arg == "--prompt") {
      a.prompt = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--batch") {
      a.batch = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--context") {
      a.context = std::max(0, std::atoi(next().c_str()));
    } else if (arg == "--steps") {
      a.steps = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--kv-cache-dtype") {
      const std::string t = next();
      if (t == "int8" || t == "i8") {
        a.kv_dtype = tinyserve::DType::kI8;
      } else if (t != "f16") {
        std::fprintf(stderr, "--kv-cache-dtype: f16 or int8\n");
        return 2;
      }
    } else if (arg == "--profile") {
      a.profile = true;
    } else if (arg == "--compare-fusion") {
      a.compare_fusion = true;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  return tinyserve::Run(a);
}
