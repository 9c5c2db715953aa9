// Grading the real Lab 2 (its linear-quantization part) in the repository: the reference scores
// every point, hidden tasks included, with fresh secret inputs; the stub scores 0 without a
// grader error, each task saying which function is not written yet.
#include <catch2/catch.hpp>
#include <string>

#include "effml/grader/grade.h"
#include "effml/grader/report.h"
#include "lab_grading.h"

namespace g = effml::grader;
using Catch::Matchers::Contains;

TEST_CASE("lab2: the reference scores every point", "[grader][lab2]") {
  effml::testing::LabGrading lab("lab2");
  const g::GradeResult r =
      g::grade(lab.config, lab.options(g::ImplKind::Reference, "reference"));
  INFO(g::format_table(r, false));
  CHECK(r.mode == "instructor");
  CHECK(r.build_ok);
  CHECK(r.tasks.size() == lab.manifest.tasks.size());
  CHECK(r.count(g::TaskStatus::Failed) == 0);
  CHECK(r.score() == lab.manifest.total_points());
}

TEST_CASE("lab2: the stub scores 0 without a grader error", "[grader][lab2]") {
  effml::testing::LabGrading lab("lab2");
  const g::GradeResult r = g::grade(lab.config, lab.options(g::ImplKind::Stub, "stub"));
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  CHECK(r.score() == 0);
  CHECK(r.tasks.size() == lab.manifest.tasks.size());
  for (const auto& t : r.tasks) CHECK_THAT(t.output, Contains("not implemented yet"));
}
