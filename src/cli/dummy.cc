// `tinyserve dummy`: writes a complete dummy model (seeded random weights, the Qwen2.5 tokenizer)
// as a GGUF file or a safetensors directory.
#include "model/dummy.h"

#include <fmt/format.h>

#include "cli/commands.h"
#include "util/paths.h"

namespace tinyserve::cli {

void AddDummyCommand(CLI::App& app, int* exit_code) {
  struct Options {
    std::string preset = "qwen2.5-0.5b";
    std::string dtype = "bf16";
    std::string format = "gguf";
    uint64_t seed = 0;
    int threads = 2;
    int64_t num_layers = 0;
    std::string tokenizer_dir;
    std::string out;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("dummy", "Write a dummy model with seeded random weights");
  cmd->add_option("--preset", opts->preset,
                  "qwen2.5-0.5b | qwen2.5-1.5b | qwen2.5-3b | qwen2.5-7b | qwen2-0.5b | tiny")
      ->capture_default_str();
  cmd->add_option("--num-layers", opts->num_layers, "keep only the first N layers (0: all)");
  cmd->add_option("--dtype", opts->dtype, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m")
      ->capture_default_str();
  cmd->add_option("--format", opts->format, "gguf | safetensors")->capture_default_str();
  cmd->add_option("--seed", opts->seed, "seed of the random weights")->capture_default_str();
  cmd->add_option("--threads", opts->threads, "threads that generate weights")
      ->capture_default_str();
  cmd->add_option("--tokenizer-dir", opts->tokenizer_dir,
                  "directory of the npm Qwen tokenizer files (default: the setup cache)");
  cmd->add_option("out", opts->out, "a .gguf path or a directory (safetensors)")->required();
  cmd->callback([opts, exit_code] {
    auto fail = [&](const Status& s) {
      fmt::print(stderr, "tinyserve dummy: {}\n", s.ToString());
      *exit_code = 1;
    };
    if (opts->format != "gguf" && opts->format != "safetensors")
      return fail(InvalidArgumentError("--format must be gguf or safetensors"));
    auto config = DummyPresetConfig(opts->preset);
    if (!config.ok()) return fail(config.status());
    if (Status s = OverrideDummyLayers(opts->num_layers, &*config); !s.ok()) return fail(s);
    auto dtype = ParseDummyDType(opts->dtype);
    if (!dtype.ok()) return fail(dtype.status());
    if (opts->format == "safetensors" && *dtype != DummyDType::kF32 && *dtype != DummyDType::kF16 &&
        *dtype != DummyDType::kBF16)
      return fail(InvalidArgumentError(
          "safetensors holds float weights only (f32, f16, bf16); use --format gguf for {}",
          opts->dtype));
    auto weights = MakeDummyWeights(*config, *dtype, opts->seed, opts->threads);
    if (!weights.ok()) return fail(weights.status());
    const std::string tok = opts->tokenizer_dir.empty() ? QwenTokenizerDir() : opts->tokenizer_dir;
    Status s = opts->format == "gguf" ? WriteDummyGguf(**weights, tok, opts->out)
                                      : WriteDummySafetensors(**weights, tok, opts->out);
    if (!s.ok()) return fail(s);
    fmt::print("wrote {} ({} {}, seed {}, {})\n", opts->out, opts->preset, opts->dtype, opts->seed,
               opts->format);
    *exit_code = 0;
  });
}

}  // namespace tinyserve::cli
