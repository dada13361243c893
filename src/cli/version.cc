#include <fmt/format.h>

#include "cli/commands.h"

namespace tinyserve::cli {

void AddVersionCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the tinyserve version");
  cmd->callback([exit_code] {
    fmt::print("tinyserve {}\n", TINYSERVE_VERSION);
    *exit_code = 0;
  });
}

}  // namespace tinyserve::cli
