/// \file release.h
/// \brief The student release: the instructor repository without what students must not see.
///
/// The files taken are those git knows (`git ls-files --cached --others --exclude-standard`:
/// tracked files plus new files that `.gitignore` does not exclude) when the repository is a git
/// work tree, else every file found by a walk that skips `.git`, build folders (`build*`,
/// `out`) and caches. Left out (is_instructor_only()):
/// - `reference/` (solutions, hidden tests, hidden manifests, hidden data);
/// - any path with a component containing "hidden" (hidden manifests, tests or data anywhere);
/// - `tests/grader/` (the platform's own grader tests, which grade the reference).
///
/// Then, for every lab that has a reference, the release's `labs/LAB/fixtures/` is regenerated
/// from the reference (write_fixtures()); the instructor tree is not modified.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "effml/grader/config.h"

namespace effml::grader {

/// What to release and where.
struct ReleaseOptions {
  std::string repo_root;        ///< "" for the config's source folder
  std::string out_dir;          ///< the release folder: must not exist or be empty (see force)
  bool force = false;           ///< replace a non-empty out_dir (it must not be the repository)
  bool fixtures = true;         ///< regenerate the labs' public fixtures from the references
  uint64_t fixture_seed = 1;    ///< see FixtureOptions::seed
  std::string cache_dir;        ///< runner cache; "" for `BUILD/grader-cache`
  bool use_bwrap = true;        ///< see SandboxOptions::use_bwrap
  /// Called with one line per step; may be empty.
  std::function<void(const std::string&)> progress;
};

/// What a release contains.
struct ReleaseResult {
  std::vector<std::string> files;     ///< paths copied, relative to the repository
  std::vector<std::string> excluded;  ///< paths left out, relative to the repository
  std::vector<std::string> fixtures;  ///< fixture files written into the release (absolute)
  std::string listing;                ///< "git" or "walk": how the files were listed
};

/// True when `relative_path` (relative to the repository root, `/`-separated) stays out of the
/// student release (see the file comment).
bool is_instructor_only(const std::string& relative_path);

/// The repository's files, relative to `repo_root`, sorted; `how` receives "git" or "walk".
/// Files listed by git that no longer exist on disk are skipped.
std::vector<std::string> list_repository_files(const std::string& repo_root, std::string* how);

/// Writes the student release of the repository into `options.out_dir`.
/// \throws effml::Error when out_dir is the repository or inside a folder that would be
///         released, is not empty without `force`, or a fixture cannot be generated
ReleaseResult make_release(const GraderConfig& config, const ReleaseOptions& options);

}  // namespace effml::grader
