// `effml grade`: grade one lab for the stub, the reference or a submission folder.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "effml/error.h"
#include "effml/grader/config.h"
#include "effml/grader/grade.h"
#include "effml/grader/report.h"

namespace effml::cli {

namespace {

struct GradeArgs {
  std::string lab;
  std::string impl = "stub";
  std::string submission;
  std::string out;
  uint64_t seed = 0;
  std::vector<std::string> tasks;
  int threads = 0;
  bool json = false;
  bool no_color = false;
};

// Grading that completed exits 0 whatever the score; 2 means the grader could not run.
constexpr int kGraderFailed = 2;

int run_grade(const GradeArgs& args, bool seed_given) {
  grader::GradeOptions options;
  options.lab = args.lab;
  if (!args.submission.empty()) {
    options.impl = grader::ImplKind::Submission;
    options.submission_dir = args.submission;
  } else {
    options.impl = args.impl == "reference" ? grader::ImplKind::Reference : grader::ImplKind::Stub;
  }
  options.out_dir = args.out.empty() ? "out/grade/" + args.lab : args.out;
  if (seed_given) options.seed = args.seed;
  options.only_tasks = args.tasks;
  options.threads = args.threads;
  options.progress = [](const std::string& line) {
    std::fprintf(stderr, "effml grade: %s\n", line.c_str());
  };

  const grader::GraderConfig config =
      grader::GraderConfig::load(grader::GraderConfig::default_path());
  const grader::GradeResult result = grader::grade(config, options);
  grader::write_reports(result, options.out_dir);
  if (args.json) {
    std::fputs(grader::results_json_text(result).c_str(), stdout);
  } else {
    const bool color = !args.no_color && grader::color_wanted(STDOUT_FILENO);
    std::fputs(grader::format_table(result, color).c_str(), stdout);
  }
  std::fprintf(stderr, "effml grade: wrote %s/results.json and %s/junit.xml\n",
               options.out_dir.c_str(), options.out_dir.c_str());
  return 0;
}

}  // namespace

void add_grade_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "grade",
      "Grade a lab: build its runner from the lab's files (or --impl reference, or "
      "--submission DIR), run every task in the sandbox, and write results.json (Gradescope) and "
      "junit.xml. Exits 0 once grading completes, whatever the score; 2 when the grader cannot "
      "run.");
  auto args = std::make_shared<GradeArgs>();
  cmd->add_option("lab", args->lab, "The lab: lab0 or its folder name lab0_tensor")->required();
  auto* impl = cmd->add_option("--impl", args->impl,
                               "Grade the lab folder's own files (stub) or reference/<lab> "
                               "(reference; instructor repository only)")
                   ->check(CLI::IsMember({"stub", "reference"}))
                   ->capture_default_str();
  cmd->add_option("--submission", args->submission,
                  "Grade the files of this folder (only those the lab's manifest declares)")
      ->excludes(impl);
  cmd->add_option("--out,-o", args->out,
                  "Folder for results.json and junit.xml (default "
                  "out/grade/LAB)");
  auto* seed = cmd->add_option("--seed", args->seed,
                               "Base of the secret seeds of the random cases (instructor mode; "
                               "default: a fresh random one)");
  cmd->add_option("--task", args->tasks, "Grade only this task (repeatable: --task a --task b)")
      ->allow_extra_args(false);
  cmd->add_option("--threads", args->threads,
                  "OMP_NUM_THREADS of the runners (default: every core)");
  cmd->add_flag("--json", args->json, "Print results.json on stdout instead of the table");
  cmd->add_flag("--no-color", args->no_color, "No colours in the table (also: NO_COLOR=1)");
  cmd->callback([args, seed] {
    int code = 0;
    try {
      code = run_grade(*args, seed->count() > 0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "effml grade: error: %s\n", e.what());
      code = kGraderFailed;
    }
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace effml::cli
