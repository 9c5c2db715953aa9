// `effml batch DIR --jobs N`: grade a folder of submissions in parallel, write a gradebook.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "effml/error.h"
#include "effml/grader/batch.h"
#include "effml/grader/config.h"
#include "effml/grader/manifest.h"

namespace effml::cli {

namespace {

// The running executable, which the children run too (same build, same grader_config.json).
std::string self_path() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  EFFML_CHECK(!ec, "batch: cannot find the effml executable (/proc/self/exe): " << ec.message());
  return p.string();
}

// The only lab when --lab is not given and the repository has exactly one.
std::string default_lab(const std::string& repo) {
  std::vector<std::string> labs;
  if (std::filesystem::is_directory(repo + "/labs")) {
    for (const auto& e : std::filesystem::directory_iterator(repo + "/labs")) {
      if (std::filesystem::exists(e.path() / "manifest.json")) {
        labs.push_back(e.path().filename().string());
      }
    }
  }
  EFFML_CHECK(labs.size() == 1, "batch: say which lab to grade with --lab (the repository has "
                                    << labs.size() << " labs)");
  return labs[0];
}

}  // namespace

void add_batch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "batch",
      "Grade a class: DIR holds one folder per student (the folder name is the student's id). "
      "Each is graded by a child `effml grade LAB --submission DIR/<student>` (hidden tests when "
      "reference/ is present), N at a time, one OpenMP thread each. Writes "
      "OUT/<student>/results.json, junit.xml and grade.log, and OUT/gradebook.csv. Exits 0 when "
      "every submission was graded, 1 when the grader failed on some (the gradebook says why).");
  struct Args {
    std::string dir;
    int jobs = 1;
    std::string out = "out/batch";
    std::string lab;
    double timeout = 3600;
    uint64_t seed = 0;
    std::vector<std::string> tasks;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("dir", args->dir, "Folder of submissions, one folder per student")->required();
  cmd->add_option("--jobs,-j", args->jobs, "Submissions graded at once (one core each)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--out,-o", args->out, "Output folder")->capture_default_str();
  cmd->add_option("--lab", args->lab, "The lab (default: the repository's only lab)");
  cmd->add_option("--timeout", args->timeout, "Wall-clock limit of one submission, in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* seed = cmd->add_option("--seed", args->seed,
                               "Base of the secret seeds, the same for every student (default: a "
                               "fresh one per submission)");
  cmd->add_option("--task", args->tasks,
                  "Grade only this task (repeatable: --task a --task b); the gradebook keeps "
                  "every task's column")
      ->allow_extra_args(false);
  cmd->callback([args, seed] {
    const auto config = grader::GraderConfig::load(grader::GraderConfig::default_path());
    grader::BatchOptions options;
    options.submissions_dir = args->dir;
    options.out_dir = args->out;
    options.lab = args->lab.empty() ? default_lab(config.source_dir) : args->lab;
    options.jobs = args->jobs;
    options.timeout_seconds = args->timeout;
    if (seed->count() > 0) options.seed = args->seed;
    options.only_tasks = args->tasks;
    options.effml = self_path();
    options.progress = [](const std::string& line) {
      std::fprintf(stderr, "effml batch: %s\n", line.c_str());
    };
    // The columns: every task the children will grade (hidden ones when reference/ is here).
    const grader::Manifest manifest =
        grader::load_manifest(grader::find_lab(config.source_dir, options.lab));
    std::vector<std::string> tasks;
    for (const auto& t : manifest.tasks) tasks.push_back(t.name);
    const auto students = grader::list_submissions(options.submissions_dir);
    std::fprintf(stderr, "effml batch: grading %zu submissions of %s with %d worker(s)\n",
                 students.size(), manifest.short_name.c_str(), options.jobs);
    const grader::BatchResult r = grader::run_batch(options, tasks);
    std::fprintf(stderr, "effml batch: %zu graded, %d grader error(s) in %.1f s; wrote %s\n",
                 r.rows.size() - static_cast<std::size_t>(r.errors()), r.errors(), r.seconds,
                 r.gradebook.c_str());
    if (r.errors() > 0) throw CLI::RuntimeError(1);
  });
}

}  // namespace effml::cli
