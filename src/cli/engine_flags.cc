#include "cli/engine_flags.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>

namespace tinyserve::cli {
namespace {

StatusOr<int64_t> ParseBytes(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  std::string unit(end);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "k" || unit == "kb")
    scale = 1e3;
  else if (unit == "m" || unit == "mb")
    scale = 1e6;
  else if (unit == "g" || unit == "gb")
    scale = 1e9;
  else if (unit == "kib")
    scale = 1024.0;
  else if (unit == "mib")
    scale = 1024.0 * 1024;
  else if (unit == "gib")
    scale = 1024.0 * 1024 * 1024;
  if (end == text.c_str() || scale == 0 || !(value > 0) || value * scale > 9e18) {
    return InvalidArgumentError("--kv-cache-memory: \"{}\" is not a size (e.g. 2GiB, 500M)", text);
  }
  return static_cast<int64_t>(value * scale);
}

}  // namespace

void AddEngineFlags(CLI::App* cmd, EngineFlags* f) {
  EngineOptions& o = f->options;
  cmd->add_option("--max-num-seqs", o.max_num_seqs, "Most sequences in one step")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", o.max_num_batched_tokens,
                  "Most tokens in one step (decode tokens first, then prefill chunks)")
      ->capture_default_str();
  cmd->add_option("--max-model-len", o.max_model_len,
                  "Longest prompt + output in tokens (0: the model's maximum)")
      ->capture_default_str();
  cmd->add_option("--block-size", o.block_size, "Tokens per KV-cache block")->capture_default_str();
  cmd->add_option("--kv-cache-memory", f->kv_cache_memory,
                  "KV cache size in bytes (suffixes K, M, G, KiB, MiB, GiB); default 2GiB");
  cmd->add_option("--memory-utilization", o.memory_utilization,
                  "KV cache size as a fraction of MemAvailable (when --kv-cache-memory is unset)");
  cmd->add_option("--kv-cache-dtype", f->kv_cache_dtype,
                  "f16, bf16, f32 or int8 (int8 with a scale per token and KV head; also "
                  "spelled i8, or q8_0 as llama.cpp's --cache-type-k)")
      ->capture_default_str();
  cmd->add_flag("--no-enable-prefix-caching", f->no_prefix_caching,
                "Turn off automatic prefix caching");
  cmd->add_option("--max-queue-len", o.max_queue_len,
                  "Requests waiting for admission beyond which new ones are refused at once")
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "Compute threads (0: all cores)")->capture_default_str();
  cmd->add_option("--max-step-ms", o.max_step_ms,
                  "Steps with running decodes stay within this many ms: prefill chunks are sized "
                  "from the measured prefill speed (0: only --max-num-batched-tokens)")
      ->capture_default_str();
}

StatusOr<EngineOptions> EngineOptionsFromFlags(const EngineFlags& f) {
  EngineOptions o = f.options;
  if (!f.kv_cache_memory.empty()) {
    TS_ASSIGN_OR_RETURN(o.kv_cache_memory_bytes, ParseBytes(f.kv_cache_memory));
  }
  if (f.kv_cache_dtype == "f16" || f.kv_cache_dtype == "float16" || f.kv_cache_dtype == "auto") {
    o.kv_cache_dtype = DType::kF16;
  } else if (f.kv_cache_dtype == "bf16" || f.kv_cache_dtype == "bfloat16") {
    o.kv_cache_dtype = DType::kBF16;
  } else if (f.kv_cache_dtype == "f32" || f.kv_cache_dtype == "float32") {
    o.kv_cache_dtype = DType::kF32;
  } else if (f.kv_cache_dtype == "int8" || f.kv_cache_dtype == "i8" || f.kv_cache_dtype == "q8_0") {
    o.kv_cache_dtype = DType::kI8;
  } else if (f.kv_cache_dtype.starts_with("fp8")) {
    // vLLM's spellings (fp8, fp8_e4m3, fp8_e5m2): these CPUs have no fp8 arithmetic, and int8
    // takes the same byte per value.
    return InvalidArgumentError(
        "--kv-cache-dtype {} is not supported on CPU; int8 stores the same one byte per value "
        "(with a scale per token and KV head)",
        f.kv_cache_dtype);
  } else {
    return InvalidArgumentError("--kv-cache-dtype must be f16, bf16, f32 or int8, got \"{}\"",
                                f.kv_cache_dtype);
  }
  o.enable_prefix_caching = !f.no_prefix_caching;
  return o;
}

std::string DescribeEngine(const EngineOptions& o, const EngineLimits& l) {
  return fmt::format(
      "engine: max_num_seqs={} max_num_batched_tokens={} max_model_len={} block_size={} "
      "kv_cache={} blocks ({:.1f} MiB, {}) prefix_caching={} max_queue_len={} threads={} "
      "max_step_ms={}",
      o.max_num_seqs, o.max_num_batched_tokens, l.max_model_len, o.block_size, l.num_kv_blocks,
      l.kv_cache_bytes / 1048576.0, DTypeName(o.kv_cache_dtype),
      o.enable_prefix_caching ? "on" : "off", o.max_queue_len, l.threads, o.max_step_ms);
}

}  // namespace tinyserve::cli
