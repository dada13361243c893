// One function per verb: each adds its subcommand (flags and the callback that runs it) to the
// app. main.cc calls them all. A callback returns the process exit code through `*exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace tinyserve::cli {

void AddVersionCommand(CLI::App& app, int* exit_code);
void AddTokenizeCommand(CLI::App& app, int* exit_code);
// Finds or creates the `bench` subcommand group (bench serve, ...).
CLI::App* BenchGroup(CLI::App& app);
void AddBenchServeCommand(CLI::App& app, int* exit_code);
// `bench compare`; AddBenchServeCommand adds it (so main.cc lists bench verbs once).
void AddBenchCompareCommand(CLI::App& app, int* exit_code);
void AddBenchThroughputCommand(CLI::App& app, int* exit_code);
void AddDummyCommand(CLI::App& app, int* exit_code);
void AddGenerateCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);

}  // namespace tinyserve::cli
