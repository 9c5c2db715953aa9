/// \file fixtures.h
/// \brief A lab's public fixtures, generated from its reference: what `effml grade` compares
/// with in student mode (no `reference/`).
///
/// For every visible exact task of `labs/LAB/manifest.json` and every case k = 0 .. cases-1,
/// the reference runner (labs/LAB/runner.cpp + reference/LAB/*.cpp, built like any runner) is
/// run as `runner gen TASK SEED inputs` with SEED = seed + k, then `runner run TASK inputs
/// outputs`. The two files are merged into one safetensors file: inputs named `input.X`,
/// outputs `expected.Y`, and the metadata `format` ("effml-lab-fixture"), `version`, `lab`,
/// `task`, `seed` and `generator` (no date, so the same reference and seed give the same
/// bytes). Case 0 is `TASK.safetensors`; case k >= 1 is `TASK.(k-1).safetensors`, the names
/// grade() reads. Runs use one OpenMP thread, so a parallel reduction cannot change the bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "effml/grader/config.h"

namespace effml::grader {

/// What to generate and where.
struct FixtureOptions {
  std::string lab;        ///< "lab0" or "lab0_tensor"
  std::string repo_root;  ///< "" for the config's source folder; must hold reference/LAB
  /// Folder that receives the files; "" for REPO/labs/LAB/fixtures. Its old `*.safetensors`
  /// files are removed first, so a renamed task leaves no stale fixture.
  std::string out_dir;
  std::string cache_dir;  ///< runner cache; "" for `BUILD/grader-cache`
  uint64_t seed = 1;      ///< public seed of case 0; case k uses seed + k
  int cases = 3;          ///< fixtures per task (at least 1)
  bool use_bwrap = true;  ///< see SandboxOptions::use_bwrap
  /// Called with one line per step; may be empty.
  std::function<void(const std::string&)> progress;
};

/// Writes the fixtures of `options.lab` as described in the file comment and returns the paths
/// written, in manifest order.
/// \throws effml::Error when the lab has no reference, the reference does not build, or a
///         reference run fails (naming the task and the seed)
std::vector<std::string> write_fixtures(const GraderConfig& config, const FixtureOptions& options);

/// The file name of case `k` of `task`: "TASK.safetensors" for k = 0, else
/// "TASK.(k-1).safetensors".
std::string fixture_file_name(const std::string& task, int k);

}  // namespace effml::grader
