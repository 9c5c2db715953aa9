/// \file grade.h
/// \brief Grades one lab for one implementation: builds its runner, runs every task in the
/// sandbox, and scores the results with trusted code.
///
/// **Modes.** When `reference/LAB` exists the grader is in *instructor* mode: hidden tasks
/// (from `reference/LAB/manifest.hidden.json`) are graded too, and every exact task draws
/// fresh inputs from a secret seed (GradeOptions::seed, else `std::random_device`): the
/// reference runner's `gen` writes the inputs, its `run` the expected outputs, and the graded
/// runner's `run` what is compared with them. Otherwise it is in *student* mode: inputs and
/// expected outputs come from the lab's public fixtures (`fixtures/TASK.safetensors`, tensors
/// named `input.X` and `expected.Y`; further cases as `TASK.K.safetensors`, K = 0, 1, ...).
///
/// **Kinds.** *exact*: all cases must match within the task's tolerances (all or nothing).
/// *accuracy*: the runner writes a checkpoint; the grader loads it into
/// `effml::make_model(task.model)` with the strict loader and measures the accuracy on the
/// 10,000 Fashion-MNIST test images itself; points when accuracy >= threshold. *manual*: the
/// answers file is collected (copied to `OUT/answers/`) and the task is reported with score 0
/// of its points and status TaskStatus::Pending; Gradescope has no pending state, so results.json
/// shows it as a passed test worth 0 so far, tagged "manual" (the points are added by hand).
///
/// **Failures.** A build failure fails every non-manual task with the build's message. A run
/// that crashes, times out, runs out of memory, writes no outputs, or writes malformed or
/// wrongly shaped tensors fails its task only, with the reason. grade() throws effml::Error only
/// when the grader itself cannot work: unknown lab, bad manifest, missing core library, a
/// reference that does not build or run, a sandbox that cannot start.
///
/// grade() keeps no global state: concurrent calls with different `out_dir`s are safe.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "effml/grader/config.h"
#include "effml/grader/manifest.h"

namespace effml::grader {

/// Which implementation is graded.
enum class ImplKind {
  Stub,       ///< the lab folder's own files (a student's working copy, or the stubs)
  Reference,  ///< reference/LAB (instructor repository only)
  Submission  ///< another folder (GradeOptions::submission_dir)
};

/// What to grade and how.
struct GradeOptions {
  std::string lab;                      ///< "lab0" or "lab0_tensor"
  ImplKind impl = ImplKind::Stub;       ///< which implementation to grade
  std::string submission_dir;           ///< for ImplKind::Submission
  std::string out_dir;                  ///< where `work/` and `answers/` go (required)
  std::string repo_root;                ///< "" for the config's source folder
  std::string cache_dir;                ///< "" for `BUILD/grader-cache`
  std::optional<uint64_t> seed;         ///< instructor mode: base of the secret seeds
  std::vector<std::string> only_tasks;  ///< grade only these tasks (all when empty)
  int threads = 0;                      ///< OMP_NUM_THREADS of the runners; 0 for every core
  bool use_bwrap = true;                ///< see SandboxOptions::use_bwrap
  uint32_t run_as_uid = 65534;          ///< see SandboxOptions::run_as_uid (graded runs and builds)
  uint32_t run_as_gid = 65534;          ///< see SandboxOptions::run_as_gid
  /// Called with one line for each step ("building the reference runner", "[3/12]
  /// linear_backward: passed (0.41 s)"); may be empty. Called from the grading thread.
  std::function<void(const std::string&)> progress;
};

/// Outcome of one task.
enum class TaskStatus {
  Passed,  ///< full points
  Failed,  ///< no points; the output says why
  Pending  ///< manual task whose answers were collected; points added by hand
};

/// "passed", "failed", "pending".
const char* task_status_name(TaskStatus status);

/// The result of one task.
struct TaskResult {
  std::string name;                        ///< task name from the manifest
  std::string title;                       ///< task title
  TaskKind kind = TaskKind::Exact;         ///< the task's kind
  double score = 0;                        ///< points earned
  double max_score = 0;                    ///< the task's points
  TaskStatus status = TaskStatus::Failed;  ///< passed, failed or pending
  std::string output;             ///< message for the student: what was checked, measured, or wrong
  std::string visibility;         ///< Gradescope visibility
  std::vector<std::string> tags;  ///< Gradescope tags (the manifest's, plus "manual")
  bool hidden = false;            ///< from the hidden manifest
  double seconds = 0;             ///< wall time spent on the task (runs and checks)
  /// Structured figures, e.g. {"accuracy": 0.8812, "threshold": 0.86} or {"cases": 3,
  /// "max_abs_diff": 1.2e-6, "runner_seconds": 0.12, "sandbox_runs": 9}.
  nlohmann::json extra = nlohmann::json::object();
};

/// The result of grading one lab.
struct GradeResult {
  std::string lab;                    ///< "lab0_tensor"
  std::string short_name;             ///< "lab0"
  std::string title;                  ///< the manifest's title
  std::string mode;                   ///< "instructor" or "student"
  std::string impl;                   ///< "stub", "reference" or "submission"
  std::string impl_dir;               ///< the folder the graded files came from
  std::optional<uint64_t> seed;       ///< the base seed (instructor mode)
  bool build_ok = false;              ///< the runner was built
  std::string build_message;          ///< the build's failure message when !build_ok
  bool build_cached = false;          ///< the runner came from the cache
  double build_seconds = 0;           ///< wall time of the build
  bool bwrap = false;                 ///< the runs were contained by bubblewrap
  std::vector<TaskResult> tasks;      ///< one per graded task, in manifest order
  std::vector<std::string> warnings;  ///< problems of the lab's packaging (e.g. missing fixtures)
  double seconds = 0;                 ///< wall time of the whole grading

  /// Points earned.
  double score() const;
  /// Points of every task, manual ones included.
  double max_score() const;
  /// Points of the automatically graded tasks (manual ones excluded).
  double autograded_max_score() const;
  /// Tasks with that status.
  int count(TaskStatus status) const;
};

/// Grades `options.lab` with the implementation `options.impl`, as described in the file
/// comment. \throws effml::Error when the grader cannot run (never for a bad submission)
GradeResult grade(const GraderConfig& config, const GradeOptions& options);

}  // namespace effml::grader
