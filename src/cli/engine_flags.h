// The engine's command-line flags (vLLM names), shared by the verbs that run an engine
// (serve, bench throughput). Main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/engine.h"
#include "util/status.h"

namespace tinyserve::cli {

struct EngineFlags {
  EngineOptions options;
  std::string kv_cache_memory;  // bytes, or with a K/M/G/KiB/MiB/GiB suffix
  std::string kv_cache_dtype = "f16";
  bool no_prefix_caching = false;
};

// Adds --max-num-seqs, --max-num-batched-tokens, --max-model-len, --block-size,
// --kv-cache-memory, --memory-utilization, --kv-cache-dtype, --no-enable-prefix-caching,
// --max-queue-len and --threads to `cmd`.
void AddEngineFlags(CLI::App* cmd, EngineFlags* flags);
// The options the flags describe. Errors name the flag.
[[nodiscard]] StatusOr<EngineOptions> EngineOptionsFromFlags(const EngineFlags& flags);
// One line listing every budget (printed at start-up).
std::string DescribeEngine(const EngineOptions& options, const EngineLimits& limits);

}  // namespace tinyserve::cli
