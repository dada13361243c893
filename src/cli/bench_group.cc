// The `bench` group of verbs, and `bench compare` (which needs nothing but the group).
#include <fmt/format.h>

#include "bench/compare.h"
#include "cli/commands.h"

namespace tinyserve::cli {

CLI::App* BenchGroup(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "bench"; })) {
    return sub;
  }
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: serve (capacity under load), ...");
  bench->require_subcommand(1);
  return bench;
}

void AddBenchCompareCommand(CLI::App& app, int* exit_code) {
  struct Flags {
    std::vector<std::string> run_dirs, labels;
    std::string output_dir;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = BenchGroup(app)->add_subcommand(
      "compare",
      "Overlay several `bench serve` runs (e.g. tinyserve, llama.cpp, vLLM) in one "
      "report.html and report.md");
  cmd->add_option("run_dirs", flags->run_dirs, "Output directories of `bench serve` runs")
      ->required();
  cmd->add_option("--output-dir", flags->output_dir, "Where the comparison goes")->required();
  cmd->add_option("--label", flags->labels,
                  "Name of each run, in order (repeat it or give a list; default: directory "
                  "names)")
      ->delimiter(',');
  cmd->callback([flags, exit_code] {
    Status st = bench::WriteComparison(flags->run_dirs, flags->labels, flags->output_dir);
    if (!st.ok()) {
      fmt::print(stderr, "tinyserve bench compare: {}\n", st.ToString());
    } else {
      fmt::print("comparison of {} runs: {}/report.html (and report.md)\n", flags->run_dirs.size(),
                 flags->output_dir);
    }
    *exit_code = st.ok() ? 0 : 1;
  });
}

}  // namespace tinyserve::cli
