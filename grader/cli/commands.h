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
/// `effml batch DIR`: grades a folder of submissions (grader/cli/cmd_batch.cpp).
void add_batch_command(CLI::App& app);
/// `effml release --out DIR`: writes the student repository (grader/cli/cmd_release.cpp).
void add_release_command(CLI::App& app);
/// `effml ci-template --out DIR`: writes the CI templates (grader/cli/cmd_ci.cpp).
void add_ci_template_command(CLI::App& app);

/// The whole command line as typed, recorded in checkpoints' metadata.
const std::string& command_line();
/// Records argv as the command line (called once by main).
void set_command_line(int argc, char** argv);

}  // namespace effml::cli
