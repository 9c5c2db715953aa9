// `effml fixtures LAB`: regenerate a lab's public fixtures from its reference.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "effml/grader/config.h"
#include "effml/grader/fixtures.h"

namespace effml::cli {

void add_fixtures_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fixtures",
      "Regenerate labs/<lab>/fixtures/*.safetensors from the reference runner (instructor "
      "repository only): for every visible exact task, inputs from a fixed public seed and the "
      "reference's outputs, stored as input.* and expected.*. Same seed, same bytes.");
  struct Args {
    std::string lab;
    uint64_t seed = 1;
    int cases = 3;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("lab", args->lab, "The lab: lab0 or its folder name lab0_tensor")->required();
  cmd->add_option("--seed", args->seed, "Public seed of the first case; case k uses seed + k")
      ->capture_default_str();
  cmd->add_option("--cases", args->cases, "Fixtures per task")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--out,-o", args->out, "Write here instead of labs/<lab>/fixtures");
  cmd->callback([args] {
    grader::FixtureOptions options;
    options.lab = args->lab;
    options.seed = args->seed;
    options.cases = args->cases;
    options.out_dir = args->out;
    options.progress = [](const std::string& line) {
      std::fprintf(stderr, "effml fixtures: %s\n", line.c_str());
    };
    const auto config = grader::GraderConfig::load(grader::GraderConfig::default_path());
    const auto files = grader::write_fixtures(config, options);
    std::fprintf(stderr, "effml fixtures: wrote %zu files\n", files.size());
  });
}

}  // namespace effml::cli
