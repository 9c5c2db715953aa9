/// \file batch.h
/// \brief Grading a class: one `effml grade` child process per submission, N at a time, and a
/// gradebook.
///
/// `SUBMISSIONS/STUDENT/` holds one student's files (the folder name is the student's id;
/// names starting with `.` are skipped). Each is graded by a child process
/// `effml grade LAB --submission SUBMISSIONS/STUDENT --out OUT/STUDENT --threads 1
/// --no-color` with `OMP_NUM_THREADS=1` (so N workers use N cores), its stdout and stderr in
/// `OUT/STUDENT/grade.log`, in its own process group, killed after
/// BatchOptions::timeout_seconds. A child is a separate process so that nothing a submission
/// does, and no failure of the grader on one submission, can stop the batch: such a student
/// gets status "error" and the reason in the gradebook, and the others are graded.
///
/// `OUT/gradebook.csv` (RFC 4180 quoting) has the columns `student, score, max_score`, one
/// column per task of the lab (hidden tasks included; the task's score), then `status`
/// ("graded" or "error") and `error` (empty when graded). It is rewritten after every
/// submission, so an interrupted batch leaves the grades it has (the others "pending").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace effml::grader {

/// What to grade and how.
struct BatchOptions {
  std::string submissions_dir;  ///< one folder per student
  std::string out_dir;          ///< OUT/STUDENT/results.json, junit.xml, grade.log; gradebook
  std::string lab;              ///< "lab0" or "lab0_tensor"
  std::string effml;            ///< the effml executable the children run
  int jobs = 1;                 ///< parallel workers (child processes at once)
  double timeout_seconds = 3600;  ///< wall-clock limit of one submission's grading
  std::optional<uint64_t> seed;   ///< passed as `--seed` (same secret cases for everyone)
  std::vector<std::string> only_tasks;  ///< passed as `--task` (all tasks when empty)
  /// Called from the worker threads (serialised) once per finished submission, with e.g.
  /// "[7/20] alice 100/100" or "[8/20] bob error: ...".
  std::function<void(const std::string&)> progress;
};

/// One row of the gradebook.
struct BatchRow {
  std::string student;                    ///< folder name
  double score = 0;                       ///< points earned
  double max_score = 0;                   ///< points of every graded task
  std::vector<std::optional<double>> task_scores;  ///< per BatchResult::tasks; empty if absent
  std::string status = "error";           ///< "graded", "error" ("pending" while running)
  std::string error;                      ///< why the grader failed on this submission
  double seconds = 0;                     ///< wall time of the child
};

/// The outcome of a batch.
struct BatchResult {
  std::vector<std::string> tasks;  ///< task names, the gradebook's columns
  std::vector<BatchRow> rows;      ///< one per student, sorted by name
  double seconds = 0;              ///< wall time of the whole batch
  std::string gradebook;           ///< path of gradebook.csv

  /// Rows with status "error".
  int errors() const;
};

/// The student folders of `submissions_dir`, sorted.
/// \throws effml::Error when the folder does not exist
std::vector<std::string> list_submissions(const std::string& submissions_dir);

/// Grades every submission as described in the file comment; `tasks` are the gradebook's task
/// columns (the lab's task names, hidden ones included).
/// \throws effml::Error for the batch's own problems: no submissions folder, an unknown lab,
///         an effml executable that does not exist, a folder that cannot be written
BatchResult run_batch(const BatchOptions& options, const std::vector<std::string>& tasks);

/// The gradebook CSV text of `result`.
std::string gradebook_csv(const BatchResult& result);

/// `field` quoted for CSV when it holds a comma, a quote, a newline or starts with a space.
std::string csv_field(const std::string& field);

}  // namespace effml::grader
