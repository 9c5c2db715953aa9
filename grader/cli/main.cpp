// effml: the command line of EffML Labs.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "effml/error.h"

namespace effml::cli {
namespace {
std::string g_command_line;
}  // namespace
const std::string& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) {
  g_command_line = "effml";
  for (int i = 1; i < argc; ++i) g_command_line += std::string(" ") + argv[i];
}
}  // namespace effml::cli

int main(int argc, char** argv) {
  CLI::App app{
      "effml: train, inspect and grade the models of EffML Labs.\n"
      "Start with `effml info lenet300`, then `effml train lenet300`.",
      "effml"};
  app.require_subcommand(1);
  app.fallthrough();
  effml::cli::add_train_command(app);
  effml::cli::add_eval_command(app);
  effml::cli::add_info_command(app);
  effml::cli::add_grade_command(app);
  effml::cli::add_fixtures_command(app);
  effml::cli::add_batch_command(app);
  effml::cli::add_release_command(app);
  effml::cli::add_ci_template_command(app);
  effml::cli::set_command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const effml::Error& e) {
    std::fprintf(stderr, "effml: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "effml: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
