// The subcommands of `effml`. Each add_* function registers one subcommand and its callback.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace effml::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_info_command(CLI::App& app);
/// `effml grade LAB`: grades a lab (grader/cli/cmd_grade.cpp).
void add_grade_command(CLI::App& app);
/// `effml fixtures LAB`: regenerates a lab's public fixtures (grader/cli/cmd_fixtures.cpp).
void add_fixtures_command(CLI::App& app);

/// The whole command line as typed, recorded in checkpoints' metadata.
const std::string& command_line();
/// Records argv as the command line (called once by main).
void set_command_line(int argc, char** argv);

}  // namespace effml::cli
