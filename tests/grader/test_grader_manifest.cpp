// Tests of manifest parsing: a valid manifest with defaults, the hidden-manifest merge, and
// errors that name the file, the task and the field.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "effml/error.h"
#include "effml/grader/files.h"
#include "effml/grader/manifest.h"

namespace {

using Catch::Matchers::Contains;
using effml::grader::find_lab;
using effml::grader::merge_hidden_manifest;
using effml::grader::parse_manifest;
using effml::grader::TaskKind;

const char* kFile = "labs/lab0_tensor/manifest.json";

// A valid manifest with `tasks` spliced in.
std::string manifest_with(const std::string& tasks, const std::string& extra = "") {
  return R"({"lab": "lab0_tensor", "short_name": "lab0", "title": "Lab 0",
             "student_files": ["lab0.cpp"], "public_headers": ["lab0.h"],
             "runner": "runner.cpp", "limits": {"wall_seconds": 30, "memory_mb": 1024})" +
         extra + R"(, "tasks": [)" + tasks + "]}";
}

const std::string kExact =
    R"({"name": "linear_forward", "title": "Task 1", "points": 10, "kind": "exact",
        "seeds": 3, "tags": ["task1"], "tolerance": {"float32": {"rtol": 1e-3, "atol": 1e-6}}})";
const std::string kAccuracy =
    R"({"name": "train_lenet300", "title": "Task 7", "points": 20, "kind": "accuracy",
        "model": "lenet300", "threshold": 0.86, "limits": {"wall_seconds": 300}})";

std::string error_of(const std::string& text) {
  try {
    parse_manifest(text, kFile);
  } catch (const effml::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("a valid manifest is parsed with defaults and limit overrides", "[grader][manifest]") {
  const auto m = parse_manifest(manifest_with(kExact + "," + kAccuracy), kFile);
  CHECK(m.lab == "lab0_tensor");
  CHECK(m.short_name == "lab0");
  REQUIRE(m.tasks.size() == 2);
  const auto& exact = m.tasks[0];
  CHECK(exact.kind == TaskKind::Exact);
  CHECK(exact.seeds == 3);
  CHECK(exact.visibility == "visible");
  CHECK(exact.tolerance.float32.rtol == 1e-3);
  CHECK(exact.tolerance.int32.atol == 0);
  CHECK(exact.limits.wall_seconds == 30);
  CHECK(exact.limits.memory_mb == 1024);
  CHECK(exact.limits.cpu_seconds == 60);  // the built-in default
  const auto& acc = m.tasks[1];
  CHECK(acc.kind == TaskKind::Accuracy);
  CHECK(acc.threshold == 0.86);
  CHECK(acc.limits.wall_seconds == 300);  // task override
  CHECK(acc.limits.memory_mb == 1024);    // inherited from the lab
  CHECK(m.total_points() == 30);
  CHECK(m.find_task("train_lenet300") == &m.tasks[1]);
  CHECK(m.find_task("nope") == nullptr);
}

TEST_CASE("manifest errors name the file, the task and the field", "[grader][manifest]") {
  CHECK_THAT(error_of("{not json"), Contains("labs/lab0_tensor/manifest.json: not valid JSON"));

  std::string bad = kAccuracy;
  bad.replace(bad.find("0.86"), 4, "\"high\"");
  CHECK(error_of(manifest_with(bad)) ==
        "labs/lab0_tensor/manifest.json: tasks[0] (\"train_lenet300\"): \"threshold\" must be a "
        "number in (0, 1] (a fraction: 0.86 means 86%), got \"high\"");

  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "exact",
                                        "treshold": 1})")),
             Contains("tasks[0] (\"x\"): unknown field \"treshold\" (known fields: "));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "fast"})")),
             Contains("\"kind\" must be one of exact, accuracy, manual, model, speed; got \"fast\""));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "accuracy",
                                        "model": "resnet", "threshold": 0.5})")),
             Contains("\"model\": unknown model \"resnet\" (known: lenet300"));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "kind": "exact"})")),
             Contains("tasks[0] (\"x\"): missing field \"points\""));
  CHECK_THAT(error_of(manifest_with(kExact + "," + kExact)),
             Contains("tasks[1]: the task name \"linear_forward\" is used twice"));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "exact",
                                        "hidden": true})")),
             Contains("a hidden task belongs in reference/<lab>/manifest.hidden.json"));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "exact",
                                        "visibility": "sometimes"})")),
             Contains("\"visibility\" must be visible, hidden, after_due_date or after_published"));
  CHECK_THAT(error_of(manifest_with(R"({"name": "x", "title": "X", "points": 1, "kind": "exact",
                                        "threshold": 0.5})")),
             Contains("\"threshold\" does not apply to a task of kind \"exact\""));
  CHECK_THAT(error_of(manifest_with(kExact, R"(, "runner": "../runner.cpp")")),
             Contains("must be a plain file name in the lab folder"));
  CHECK_THAT(error_of(manifest_with("")), Contains("\"tasks\" must be a non-empty array"));
  CHECK_THAT(error_of(manifest_with(kExact, R"(, "public_headers": ["lab0.cpp"])")),
             Contains("'lab0.cpp' is both a student file and a public header"));
  CHECK_THAT(error_of(manifest_with(kExact, R"(, "runner": "lab0.cpp")")),
             Contains("the runner 'lab0.cpp' cannot be a student file"));
  CHECK_THAT(error_of(manifest_with(kExact, R"(, "limits": {"wall_seconds": -1})")),
             Contains("\"wall_seconds\" must be a number in (0, 86400] (seconds), got -1"));
}

TEST_CASE("a hidden manifest adds hidden tasks, after_due_date by default", "[grader][manifest]") {
  auto m = parse_manifest(manifest_with(kExact), kFile);
  merge_hidden_manifest(m, R"({"tasks": [{"name": "linear_forward_large", "title": "H",
                                          "points": 5, "kind": "exact", "hidden": true}]})",
                        "reference/lab0_tensor/manifest.hidden.json");
  REQUIRE(m.tasks.size() == 2);
  CHECK(m.tasks[1].hidden);
  CHECK(m.tasks[1].visibility == "after_due_date");
  CHECK(m.hidden_path == "reference/lab0_tensor/manifest.hidden.json");

  auto again = parse_manifest(manifest_with(kExact), kFile);
  CHECK_THROWS_WITH(merge_hidden_manifest(again,
                                          R"({"tasks": [{"name": "y", "title": "H", "points": 5,
                                                         "kind": "exact"}]})",
                                          "reference/lab0_tensor/manifest.hidden.json"),
                    Contains("tasks of manifest.hidden.json must say \"hidden\": true"));
  CHECK_THROWS_WITH(merge_hidden_manifest(again,
                                          R"({"tasks": [{"name": "linear_forward", "title": "H",
                                                         "points": 5, "kind": "exact",
                                                         "hidden": true}]})",
                                          "reference/lab0_tensor/manifest.hidden.json"),
                    Contains("\"linear_forward\" is used twice (once in the public manifest)"));
}

TEST_CASE("find_lab accepts the short name and lists the labs otherwise", "[grader][manifest]") {
  namespace fs = std::filesystem;
  const std::string root = effml::grader::make_temp_dir("/tmp", "effml-manifest-test-");
  fs::create_directories(root + "/labs/lab3_nas");
  std::ofstream(root + "/labs/lab3_nas/manifest.json") << "{}";
  fs::create_directories(root + "/reference/lab3_nas");
  const auto by_short = find_lab(root, "lab3");
  CHECK(by_short.name == "lab3_nas");
  CHECK(by_short.lab_dir == root + "/labs/lab3_nas");
  CHECK(by_short.reference_dir == root + "/reference/lab3_nas");
  CHECK(find_lab(root, "lab3_nas").name == "lab3_nas");
  CHECK_THROWS_WITH(find_lab(root, "lab9"), Contains("unknown lab 'lab9'; the labs in " + root +
                                                     "/labs are: lab3 (lab3_nas)"));
  effml::grader::remove_tree(root);
}
