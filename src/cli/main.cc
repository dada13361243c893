// tinyserve: one binary, vLLM-like verbs (serve, bench, generate, dummy, tokenize, version).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "util/malloc_tuning.h"

// An exception escaping a verb is a bug (errors are Status); std::terminate, which prints it, is
// the right end for it.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  tinyserve::ConfigureMalloc();    // before any thread: large request bodies must go back to the OS
  CLI::App app{"tinyserve: an inference server for small LLMs on CPUs"};
  app.require_subcommand(1);
  int exit_code = 0;
  tinyserve::cli::AddVersionCommand(app, &exit_code);
  tinyserve::cli::AddTokenizeCommand(app, &exit_code);
  tinyserve::cli::AddBenchServeCommand(app, &exit_code);
  tinyserve::cli::AddBenchThroughputCommand(app, &exit_code);
  tinyserve::cli::AddDummyCommand(app, &exit_code);
  tinyserve::cli::AddGenerateCommand(app, &exit_code);
  tinyserve::cli::AddServeCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
