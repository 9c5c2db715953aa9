/// \file report.h
/// \brief The grader's outputs: Gradescope `results.json`, JUnit XML, a terminal table and a
/// one-line summary.
///
/// **results.json** follows the Gradescope autograder specification: top-level `score`,
/// `execution_time` (whole seconds), `output`, `output_format` and `test_output_format` ("text"),
/// `stdout_visibility`, `extra_data`, and `tests[]` with `name`, `number`, `score`, `max_score`,
/// `status` ("passed" or "failed"), `output`, `visibility`, `tags` and `extra_data`. Our own
/// figures travel in the `extra_data` fields, which Gradescope stores and ignores: per task the
/// task's identifier, kind and measurements (accuracy, largest difference, runner time); at the
/// top the lab, mode, implementation, seed, build outcome and the counts. A manual task whose
/// answers were collected is a "passed" test with score 0 of its points, tag "manual" and
/// `extra_data.pending_manual_grading` true, since Gradescope has no pending state.
///
/// **junit.xml**: one `<testsuite>` per lab, one `<testcase>` per task (classname the lab,
/// name the task), `<failure message=...>` with the full output for a failed task, `<skipped>`
/// for a task pending manual grading, `<system-out>` with the output otherwise.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "effml/grader/grade.h"

namespace effml::grader {

/// The Gradescope results of one lab.
nlohmann::json to_results_json(const GradeResult& result);

/// The JSON text of to_results_json(), indented; invalid UTF-8 in outputs becomes U+FFFD.
std::string results_json_text(const GradeResult& result);

/// A JUnit XML document with one testsuite per result.
std::string to_junit_xml(const std::vector<GradeResult>& results);

/// "lab0: 80/100 points, 6 passed, 2 failed" (and ", 1 pending manual grading" when there are
/// pending tasks).
std::string summary_line(const GradeResult& result);

/// A table with one row per task (name, points, status, the first line of the output), the
/// failed tasks' full messages below it (indented, capped), and the summary line. With `color`,
/// statuses are green (passed), red (failed) or yellow (pending) with ANSI escapes.
std::string format_table(const GradeResult& result, bool color);

/// True when output to `fd` should be coloured: it is a terminal and `NO_COLOR` is not set.
bool color_wanted(int fd);

/// `text` with every invalid UTF-8 sequence replaced by U+FFFD and every control character
/// other than tab and newline removed (what XML 1.0 and terminals accept).
std::string clean_text(const std::string& text);

/// Writes `results.json` and `junit.xml` into `out_dir` (created if needed).
/// \throws effml::Error naming the file that cannot be written
void write_reports(const GradeResult& result, const std::string& out_dir);

}  // namespace effml::grader
