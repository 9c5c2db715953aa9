// Grading the real Lab 0 in the repository: the reference scores every point of its exact tasks
// (the training task is left to the main job, where it runs for minutes), the stub scores 0
// without a grader error, and a submission that does not compile fails every task with the
// compiler's message and still gets its results.json.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/report.h"
#include "lab_grading.h"

namespace {

namespace g = effml::grader;
using Catch::Matchers::Contains;

// The real Lab 0 of this repository, graded with this build.
struct Lab0 : effml::testing::LabGrading {
  Lab0() : LabGrading("lab0") {}
};

}  // namespace

TEST_CASE("lab0: the reference scores every point of the exact tasks", "[grader][lab0]") {
  Lab0 lab;
  auto options = lab.options(g::ImplKind::Reference, "reference");
  double points = 0;
  for (const auto& t : lab.manifest.tasks) {
    if (t.kind == g::TaskKind::Exact) {
      options.only_tasks.push_back(t.name);
      points += t.points;
    }
  }
  REQUIRE_FALSE(options.only_tasks.empty());
  const g::GradeResult r = g::grade(lab.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.mode == "instructor");
  CHECK(r.build_ok);
  CHECK(r.count(g::TaskStatus::Failed) == 0);
  CHECK(r.score() == points);
}

TEST_CASE("lab0: the stub scores 0 without a grader error", "[grader][lab0]") {
  Lab0 lab;
  const auto options = lab.options(g::ImplKind::Stub, "stub");
  const g::GradeResult r = g::grade(lab.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  CHECK(r.score() == 0);
  CHECK(r.tasks.size() == lab.manifest.tasks.size());
  for (const auto& t : r.tasks) {
    if (t.kind == g::TaskKind::Exact) CHECK_THAT(t.output, Contains("not implemented yet"));
  }
}

TEST_CASE("lab0: a submission that does not compile fails every task with the message",
          "[grader][lab0]") {
  Lab0 lab;
  const std::string dir = lab.out + "/submission";
  g::make_dirs(dir);
  std::string source = g::read_file(std::string(EFFML_SOURCE_DIR) + "/labs/lab0_tensor/lab0.cpp");
  source += "\nstatic int broken = undefined_name;\n";
  std::ofstream(dir + "/lab0.cpp") << source;
  auto options = lab.options(g::ImplKind::Submission, "broken");
  options.submission_dir = dir;
  const g::GradeResult r = g::grade(lab.config, options);
  g::write_reports(r, options.out_dir);
  CHECK_FALSE(r.build_ok);
  CHECK_THAT(r.build_message, Contains("error: 'undefined_name' was not declared"));
  for (const auto& t : r.tasks) {
    if (t.kind == g::TaskKind::Manual) continue;
    CHECK(t.status == g::TaskStatus::Failed);
    CHECK_THAT(t.output, Contains("'undefined_name' was not declared"));
  }
  const auto j = nlohmann::json::parse(g::read_file(options.out_dir + "/results.json"));
  CHECK(j["score"].get<double>() == 0);
  CHECK(j["tests"].size() == r.tasks.size());
}
