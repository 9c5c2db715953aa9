// Grading the real Lab 2 (linear and k-means quantization, and the k-means model tasks) in the
// repository: the reference scores every point, hidden tasks included, with fresh secret
// inputs; the stub scores 0 without a grader error, each task saying which function is not
// written yet.
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
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

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// The model tasks' baseline is a copy of Lab 1's dense VGG (a lab's baseline must be a file of
// its own folder); the README and the calibration refer to it as the same model.
TEST_CASE("lab2: the dense VGG is Lab 1's, byte for byte", "[grader][lab2]") {
  const std::string labs = std::string(EFFML_SOURCE_DIR) + "/labs/";
  const std::string lab1 = file_bytes(labs + "lab1_pruning/vgg_dense.safetensors");
  const std::string lab2 = file_bytes(labs + "lab2_quantization/vgg_dense.safetensors");
  CHECK(lab1.size() > 0);
  CHECK(lab2.size() == lab1.size());
  CHECK(lab2 == lab1);
}
