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

}  // namespace tinyserve::cli
