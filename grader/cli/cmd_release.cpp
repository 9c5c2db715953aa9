// `effml release --out DIR`: write the student repository.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "effml/grader/config.h"
#include "effml/grader/release.h"

namespace effml::cli {

void add_release_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "release",
      "Write the student repository into --out: the files git lists (or a walk that skips build "
      "folders) without reference/, hidden files and tests/grader/, with every lab's public "
      "fixtures regenerated from its reference. The instructor tree is not changed.");
  struct Args {
    std::string out;
    bool force = false;
    bool no_fixtures = false;
    uint64_t seed = 1;
    bool list = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--out,-o", args->out, "The release folder (must not exist, or be empty)")
      ->required();
  cmd->add_flag("--force", args->force, "Replace the release folder when it is not empty");
  cmd->add_flag("--no-fixtures", args->no_fixtures,
                "Copy the fixtures as they are instead of regenerating them");
  cmd->add_option("--fixture-seed", args->seed, "Public seed of the regenerated fixtures")
      ->capture_default_str();
  cmd->add_flag("--list", args->list, "Print the released and the left-out paths on stdout");
  cmd->callback([args] {
    grader::ReleaseOptions options;
    options.out_dir = args->out;
    options.force = args->force;
    options.fixtures = !args->no_fixtures;
    options.fixture_seed = args->seed;
    options.progress = [](const std::string& line) {
      std::fprintf(stderr, "effml release: %s\n", line.c_str());
    };
    const auto config = grader::GraderConfig::load(grader::GraderConfig::default_path());
    const grader::ReleaseResult r = grader::make_release(config, options);
    if (args->list) {
      for (const auto& f : r.files) std::printf("+ %s\n", f.c_str());
      for (const auto& f : r.excluded) std::printf("- %s\n", f.c_str());
    }
  });
}

}  // namespace effml::cli
