/// \file lab_grading.h
/// \brief Grading a real lab of the repository from a test: the build's grader configuration,
/// the lab's merged manifest, a temporary output folder removed afterwards, and options for one
/// grading run (shared cache in the build folder, so the runners build once per test binary;
/// one thread per runner).
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/manifest.h"

namespace effml::testing {

/// One lab of this repository (EFFML_SOURCE_DIR), graded with this build (EFFML_BINARY_DIR).
struct LabGrading {
  grader::GraderConfig config;  ///< from <build>/grader_config.json
  grader::Manifest manifest;    ///< the lab's manifest, hidden tasks merged in
  std::string lab;              ///< short name, e.g. "lab1"
  std::string out;              ///< a fresh folder under /tmp, removed by the destructor

  /// \param short_name "lab0", "lab1", ...
  explicit LabGrading(const std::string& short_name) : lab(short_name) {
    config = grader::GraderConfig::load(std::string(EFFML_BINARY_DIR) + "/grader_config.json");
    config.source_dir = EFFML_SOURCE_DIR;
    manifest = grader::load_manifest(grader::find_lab(EFFML_SOURCE_DIR, short_name));
    out = grader::make_temp_dir("/tmp", "effml-" + short_name + "-grade-");
  }
  ~LabGrading() { grader::remove_tree(out); }
  LabGrading(const LabGrading&) = delete;
  LabGrading& operator=(const LabGrading&) = delete;

  /// Options grading `impl` with results in out/<name>.
  grader::GradeOptions options(grader::ImplKind impl, const std::string& name) const {
    grader::GradeOptions o;
    o.lab = lab;
    o.impl = impl;
    o.out_dir = out + "/" + name;
    o.cache_dir = std::string(EFFML_BINARY_DIR) + "/grader-test-cache";
    // One OpenMP thread per runner: ctest runs tests side by side, and two-thread runners then
    // spin-wait for each other's cores (a fine-tuning task took 6 minutes instead of 1).
    o.threads = 1;
    return o;
  }

  /// A submission folder out/<name> holding the reference's student file (the manifest's first,
  /// e.g. lab2.cpp) with `from` replaced by `to`; `from` must occur exactly once.
  std::string mutated_submission(const std::string& name, const std::string& from,
                                 const std::string& to) const {
    const std::string file = manifest.student_files.at(0);
    std::string source = grader::read_file(std::string(EFFML_SOURCE_DIR) + "/reference/" +
                                           manifest.lab + "/" + file);
    const auto at = source.find(from);
    INFO("the reference's " << file << " should contain: " << from);
    REQUIRE(at != std::string::npos);
    REQUIRE(source.find(from, at + 1) == std::string::npos);
    source.replace(at, from.size(), to);
    const std::string dir = out + "/" + name;
    grader::make_dirs(dir);
    grader::write_file(dir + "/" + file, source);
    return dir;
  }

  /// Grades the submission in `dir` on `tasks` only, the exact tasks' inputs from `seed`.
  grader::GradeResult grade_submission(const std::string& dir, uint64_t seed,
                                       const std::vector<std::string>& tasks) const {
    grader::GradeOptions o =
        options(grader::ImplKind::Submission, dir.substr(dir.rfind('/') + 1) + "_grade");
    o.submission_dir = dir;
    o.seed = seed;
    o.only_tasks = tasks;
    return grader::grade(config, o);
  }
};

/// The result of the task called `name`; fails the test when there is none.
inline const grader::TaskResult& task_named(const grader::GradeResult& r, const std::string& name) {
  for (const auto& t : r.tasks) {
    if (t.name == name) return t;
  }
  FAIL("no task " << name << " in the results");
  static const grader::TaskResult none;
  return none;
}

/// A figure the grader recorded for a task, or NaN when it is absent (a failed run records
/// none), so that a check on it fails instead of throwing.
inline double figure(const grader::TaskResult& t, const std::string& key) {
  const auto it = t.extra.find(key);
  return it != t.extra.end() && it->is_number() ? it->get<double>()
                                                : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace effml::testing
