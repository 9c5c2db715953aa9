/// \file lab_grading.h
/// \brief Grading a real lab of the repository from a test: the build's grader configuration,
/// the lab's merged manifest, a temporary output folder removed afterwards, and options for one
/// grading run (shared cache in the build folder, so the runners build once per test binary;
/// one thread per runner).
#pragma once

#include <string>

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
};

}  // namespace effml::testing
