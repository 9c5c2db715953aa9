// End-to-end tests of build_runner() and grade() on a small lab written here ("lab9_demo"), so
// they do not depend on any real lab: the reference scores 100%, the stub 0 with a clear
// message, a broken submission fails task by task with the right reasons (wrong value, crash,
// timeout, unloadable checkpoint), a compile error or a forbidden symbol fails every task with
// the message, caching works, and a submission cannot read the reference or the expected
// outputs while it runs.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "effml/grader/build.h"
#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/report.h"
#include "effml/grader/sandbox.h"
#include "effml/rng.h"
#include "effml/safetensors.h"

namespace {

namespace g = effml::grader;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

const char* kHeader = R"(#pragma once
#include <string>
#include "effml/tensor.h"
namespace demo {
effml::Tensor affine(const effml::Tensor& x);  // 2 x + 1
effml::Tensor scale(const effml::Tensor& x);   // 3 x
float total(const effml::Tensor& x);           // sum of x
std::string model_name();                      // "lenet300"
}
)";

const char* kRunner = R"(#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include "demo.h"
#include "effml/error.h"
#include "effml/models.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
using effml::Tensor;
int main(int argc, char** argv) {
  try {
    if (argc != 5) return 2;
    const std::string mode = argv[1], task = argv[2];
    if (mode == "gen") {
      effml::Rng rng(std::strtoull(argv[3], nullptr, 10));
      Tensor x = Tensor::randn({3, 5}, rng);
      effml::save_safetensors(argv[4], {{"x", &x}});
      return 0;
    }
    if (task == "model") {
      auto model = effml::make_model(demo::model_name(), 0);
      effml::save_checkpoint(argv[4], *model);
      return 0;
    }
    const Tensor x = effml::load_safetensors(argv[3]).at("x");
    Tensor y;
    if (task == "affine" || task == "affine_hidden") y = demo::affine(x);
    if (task == "scale") y = demo::scale(x);
    if (task == "total") y = Tensor(effml::Shape{}, std::vector<float>{demo::total(x)});
    effml::save_safetensors(argv[4], {{"y", &y}});
    return 0;
  } catch (const effml::NotImplemented& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
)";

const char* kReference = R"(#include "demo.h"
namespace demo {
effml::Tensor affine(const effml::Tensor& x) { return x * 2.0f + 1.0f; }
effml::Tensor scale(const effml::Tensor& x) { return x * 3.0f; }
float total(const effml::Tensor& x) { return x.sum(); }
std::string model_name() { return "lenet300"; }
}
)";

const char* kStub = R"(#include "demo.h"
#include "effml/error.h"
namespace demo {
effml::Tensor affine(const effml::Tensor&) { throw effml::NotImplemented("Task 1: affine"); }
effml::Tensor scale(const effml::Tensor&) { throw effml::NotImplemented("Task 2: scale"); }
float total(const effml::Tensor&) { throw effml::NotImplemented("Task 3: total"); }
std::string model_name() { throw effml::NotImplemented("Task 4: model"); }
}
)";

// Wrong at one element, a crash, an endless loop, and the wrong model.
const char* kBroken = R"(#include "demo.h"
#include <csignal>
namespace demo {
effml::Tensor affine(const effml::Tensor& x) {
  effml::Tensor y = x * 2.0f + 1.0f;
  y.at({1, 2}) = 42.0f;
  return y;
}
effml::Tensor scale(const effml::Tensor& x) { std::raise(SIGSEGV); return x; }
float total(const effml::Tensor& x) { volatile float s = 0; for (;;) s = s + x[0]; }
std::string model_name() { return "lenet5"; }
}
)";

const char* kManifest = R"({
  "lab": "lab9_demo", "short_name": "lab9", "title": "Lab 9: demo",
  "student_files": ["demo.cpp"], "public_headers": ["demo.h"], "runner": "runner.cpp",
  "limits": {"wall_seconds": 20, "cpu_seconds": 20, "memory_mb": 2048},
  "forbidden_symbols": ["effml::Tensor::matmul"],
  "tasks": [
    {"name": "affine", "title": "Task 1: affine", "points": 10, "kind": "exact", "seeds": 2,
     "tags": ["task1"]},
    {"name": "scale", "title": "Task 2: scale", "points": 10, "kind": "exact", "tags": ["task2"]},
    {"name": "total", "title": "Task 3: total", "points": 10, "kind": "exact",
     "limits": {"wall_seconds": 3, "cpu_seconds": 3}},
    {"name": "model", "title": "Task 4: model", "points": 20, "kind": "accuracy",
     "model": "lenet300", "threshold": 0.05, "calibration": "an untrained model scores ~10%"},
    {"name": "questions", "title": "Questions", "points": 5, "kind": "manual",
     "answers_file": "ANSWERS.md"}
  ]
})";

const char* kHidden = R"({"tasks": [
  {"name": "affine_hidden", "title": "Hidden affine", "points": 5, "kind": "exact", "hidden": true}
]})";

void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A temporary repository with the demo lab, its reference, and a shared runner cache.
struct DemoRepo {
  std::string root;
  g::GraderConfig config;

  DemoRepo() {
    root = g::make_temp_dir("/tmp", "effml-grader-test-");
    g::make_dirs(root + "/labs/lab9_demo");
    g::make_dirs(root + "/reference/lab9_demo");
    put(root + "/labs/lab9_demo/manifest.json", kManifest);
    put(root + "/labs/lab9_demo/demo.h", kHeader);
    put(root + "/labs/lab9_demo/runner.cpp", kRunner);
    put(root + "/labs/lab9_demo/demo.cpp", kStub);
    put(root + "/labs/lab9_demo/ANSWERS.md", "Question 1: ...\n");
    put(root + "/reference/lab9_demo/demo.cpp", kReference);
    put(root + "/reference/lab9_demo/manifest.hidden.json", kHidden);
    put(root + "/reference/lab9_demo/ANSWERS.md", "Question 1: the answer.\n");
    config = g::GraderConfig::load(std::string(EFFML_BINARY_DIR) + "/grader_config.json");
  }
  ~DemoRepo() { g::remove_tree(root); }

  std::string submission(const std::string& name, const std::string& source) const {
    const std::string dir = root + "/submissions/" + name;
    g::make_dirs(dir);
    put(dir + "/demo.cpp", source);
    return dir;
  }

  g::GradeOptions options(g::ImplKind impl, const std::string& dir = "") const {
    g::GradeOptions o;
    o.lab = "lab9";
    o.impl = impl;
    o.submission_dir = dir;
    o.repo_root = root;
    o.out_dir = root + "/out/" + (dir.empty() ? "default" : dir.substr(dir.find_last_of('/') + 1));
    o.cache_dir = std::string(EFFML_BINARY_DIR) + "/grader-test-cache";
    o.seed = 1234;
    o.threads = 1;
    return o;
  }
};

const g::TaskResult& find(const g::GradeResult& r, const std::string& name) {
  for (const auto& t : r.tasks) {
    if (t.name == name) return t;
  }
  FAIL("no task " << name);
  return r.tasks.front();
}

}  // namespace

TEST_CASE("check_source rejects includes that leave the public headers, and asm",
          "[grader][build]") {
  const auto problems = g::check_source("lab0.cpp",
                                        "#include \"lab0.h\"\n"
                                        "#include <vector>\n"
                                        "// #include \"../commented/out.h\"\n"
                                        "#include \"../../reference/lab0_tensor/lab0.cpp\"\n"
                                        "  #  include </etc/passwd>\n"
                                        "#include \"reference/lab0.cpp\"\n"
                                        "#define P \"x.h\"\n#include P\n"
                                        "const char* s = \"asm in a string is fine\";\n"
                                        "void f() { asm(\"nop\"); }\n"
                                        "void g() { __asm__ volatile(\"\"); }  // asm\n");
  REQUIRE(problems.size() == 6);
  CHECK_THAT(problems[0],
             StartsWith("lab0.cpp:4: #include \"../../reference/lab0_tensor/lab0.cpp\" "
                        "is not allowed: an include path may not contain '..'"));
  CHECK_THAT(problems[1],
             StartsWith("lab0.cpp:5: #include </etc/passwd> is not allowed: an include "
                        "path may not be absolute"));
  CHECK_THAT(problems[2], Contains("the reference solutions are not part of a submission's build"));
  CHECK_THAT(problems[3], StartsWith("lab0.cpp:8: #include P is not allowed: name the header in "
                                     "quotes"));
  CHECK(problems[4] == "lab0.cpp:10: inline assembly (asm) is not allowed in a submission");
  CHECK_THAT(problems[5], StartsWith("lab0.cpp:11: inline assembly"));
  CHECK(g::check_source("ok.cpp", kReference).empty());
}

TEST_CASE("grading the demo lab: reference 100%, stub 0, broken task by task", "[grader][grade]") {
  DemoRepo repo;

  SECTION("the reference scores every automatic point, the answers are collected") {
    const g::GradeResult r = g::grade(repo.config, repo.options(g::ImplKind::Reference));
    INFO(g::format_table(r, false));
    CHECK(r.mode == "instructor");
    CHECK(r.build_ok);
    REQUIRE(r.tasks.size() == 6);  // five public tasks and the hidden one
    CHECK(r.score() == r.autograded_max_score());
    CHECK(r.autograded_max_score() == 55);
    CHECK(r.count(g::TaskStatus::Failed) == 0);
    CHECK(find(r, "affine").output == "All outputs match (2 random cases; largest difference 0).");
    CHECK(find(r, "affine_hidden").hidden);
    CHECK(find(r, "affine_hidden").visibility == "after_due_date");
    const auto& model = find(r, "model");
    CHECK(model.status == g::TaskStatus::Passed);
    // An untrained LeNet-300-100 sits near chance: 10% +- a few points.
    CHECK(model.extra["accuracy"].get<double>() > 0.05);
    CHECK(model.extra["accuracy"].get<double>() < 0.2);
    CHECK_THAT(model.output, StartsWith("Test accuracy "));
    const auto& manual = find(r, "questions");
    CHECK(manual.status == g::TaskStatus::Pending);
    CHECK(manual.score == 0);
    CHECK(g::read_file(manual.extra["answers_path"].get<std::string>()) ==
          "Question 1: the answer.\n");
    // Same seed, same inputs: the seeds are reported.
    CHECK(r.seed == 1234u);
  }

  SECTION("the stub scores 0 with 'not implemented' messages and no grader error") {
    const g::GradeResult r = g::grade(repo.config, repo.options(g::ImplKind::Stub));
    INFO(g::format_table(r, false));
    CHECK(r.build_ok);
    CHECK(r.score() == 0);
    CHECK_THAT(find(r, "affine").output, Contains("case 1 of 2 (seed ") &&
                                             Contains("): not implemented yet: Task 1: affine"));
    CHECK(find(r, "model").output == "not implemented yet: Task 4: model");
    CHECK(find(r, "questions").status == g::TaskStatus::Pending);  // the lab's own answers file
  }

  SECTION("a broken submission fails each task with its own reason") {
    const std::string dir = repo.submission("broken", kBroken);
    const g::GradeResult r = g::grade(repo.config, repo.options(g::ImplKind::Submission, dir));
    INFO(g::format_table(r, false));
    CHECK(r.build_ok);
    CHECK(r.score() == 0);
    CHECK_THAT(find(r, "affine").output,
               Contains("output 'y' (shape (3, 5), float32): 1 of 15 elements differs; first at "
                        "[1, 2] (flat index 7): expected "));
    CHECK_THAT(find(r, "affine").output, Contains(", got 42 ("));
    CHECK_THAT(find(r, "scale").output, Contains("The runner crashed with SIGSEGV"));
    CHECK_THAT(find(r, "total").output, Contains("The runner was killed after the 3 s time limit"));
    CHECK_THAT(find(r, "model").output,
               StartsWith("The checkpoint cannot be loaded into lenet300: model.safetensors: "));
    CHECK(find(r, "questions").status == g::TaskStatus::Failed);  // no ANSWERS.md submitted
    CHECK_THAT(find(r, "questions").output, Contains("no ANSWERS.md"));
  }

  SECTION("a compile error fails every task with the compiler's message; reports are written") {
    const std::string dir = repo.submission("typo", std::string(kReference) + "int broken = ;\n");
    const auto options = repo.options(g::ImplKind::Submission, dir);
    const g::GradeResult r = g::grade(repo.config, options);
    g::write_reports(r, options.out_dir);
    CHECK_FALSE(r.build_ok);
    CHECK_THAT(r.build_message, StartsWith("Compilation failed:\n"));
    CHECK_THAT(r.build_message, Contains("demo.cpp:8:14: error: expected primary-expression"));
    for (const auto& t : r.tasks) {
      if (t.kind == effml::grader::TaskKind::Manual) continue;
      CHECK(t.status == g::TaskStatus::Failed);
      CHECK_THAT(t.output, Contains("demo.cpp:8:14: error"));
    }
    const auto j = nlohmann::json::parse(g::read_file(options.out_dir + "/results.json"));
    CHECK(j["score"].get<double>() == 0);
    CHECK(j["extra_data"]["build"]["ok"] == false);
    CHECK_THAT(j["tests"][0]["output"].get<std::string>(), Contains("error: expected"));
  }

  SECTION("undefined and forbidden symbols fail the build with their names") {
    const std::string undefined = repo.submission(
        "undefined", std::string(kReference) +
                         "namespace demo { float secret(); float use() { return secret(); } }\n");
    g::GradeResult r = g::grade(repo.config, repo.options(g::ImplKind::Submission, undefined));
    CHECK_FALSE(r.build_ok);
    CHECK(r.build_message ==
          "Symbol check failed:\ndemo.cpp uses demo::secret(), which is neither defined in your "
          "files nor part of the effml core or the C/C++ runtime");

    const std::string forbidden = repo.submission(
        "forbidden", std::string(kReference) +
                         "namespace demo { effml::Tensor mm(const effml::Tensor& a) { return "
                         "a.matmul(a); } }\n");
    r = g::grade(repo.config, repo.options(g::ImplKind::Submission, forbidden));
    CHECK_FALSE(r.build_ok);
    CHECK_THAT(r.build_message,
               Contains("demo.cpp uses effml::Tensor::matmul(effml::Tensor const&) const, which "
                        "this lab does not allow"));
  }

  SECTION("missing files, and symbolic links, are not taken from a submission") {
    const std::string dir = repo.root + "/submissions/link";
    g::make_dirs(dir);
    REQUIRE(::symlink((repo.root + "/reference/lab9_demo/demo.cpp").c_str(),
                      (dir + "/demo.cpp").c_str()) == 0);
    const g::GradeResult r = g::grade(repo.config, repo.options(g::ImplKind::Submission, dir));
    CHECK_FALSE(r.build_ok);
    CHECK_THAT(r.build_message, StartsWith("The submission has no demo.cpp"));
    CHECK(r.score() == 0);
  }
}

TEST_CASE("a second build of the same files comes from the cache", "[grader][build]") {
  DemoRepo repo;
  g::BuildRequest req;
  req.lab_dir = repo.root + "/labs/lab9_demo";
  req.impl_dir = repo.root + "/reference/lab9_demo";
  req.scratch_dir = repo.root + "/scratch";
  req.cache_dir = repo.root + "/cache";
  const auto manifest = g::load_manifest(g::find_lab(repo.root, "lab9"));
  const g::BuildResult first = g::build_runner(repo.config, manifest, req);
  REQUIRE(first.ok);
  CHECK_FALSE(first.cached);
  const g::BuildResult second = g::build_runner(repo.config, manifest, req);
  REQUIRE(second.ok);
  CHECK(second.cached);
  CHECK(second.runner_path == first.runner_path);
  // Measured: about 0.01 s for a hit against several seconds for a build.
  CHECK(second.seconds < first.seconds);
  // A changed source is a different entry.
  put(repo.root + "/reference/lab9_demo/demo.cpp", std::string(kReference) + "// changed\n");
  const g::BuildResult third = g::build_runner(repo.config, manifest, req);
  REQUIRE(third.ok);
  CHECK_FALSE(third.cached);
  CHECK(third.runner_path != first.runner_path);
  // Only a trusted build leaves the lab runner's object, which every build links, in the cache.
  auto cached_objects = [&] {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(req.cache_dir)) {
      n += g::is_plain_file(entry.path().string() + "/runner.o") ? 1 : 0;
    }
    return n;
  };
  CHECK(cached_objects() == 0);
  req.trusted = true;
  put(repo.root + "/reference/lab9_demo/demo.cpp", std::string(kReference) + "// trusted\n");
  REQUIRE(g::build_runner(repo.config, manifest, req).ok);
  CHECK(cached_objects() == 1);
  // The cache is private to the grader.
  struct stat st {};
  REQUIRE(::stat(req.cache_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0077) == 0);
}

TEST_CASE("a submission cannot read the reference or the expected outputs while it runs",
          "[grader][grade]") {
  if (!g::bwrap_available()) {
    WARN("bubblewrap is not available here: only file permissions protect reference/");
    return;
  }
  DemoRepo repo;
  auto options = repo.options(g::ImplKind::Submission, repo.root + "/submissions/snoop");
  options.only_tasks = {"affine"};
  // Correct results, unless the program can read a file it must not see: then it throws.
  const std::string snoop = std::string(R"(#include "demo.h"
#include <fstream>
#include <stdexcept>
namespace {
void must_not_read(const char* path) {
  std::ifstream in(path);
  char c;
  if (in.get(c)) throw std::runtime_error(std::string("could read ") + path);
}
}
namespace demo {
effml::Tensor affine(const effml::Tensor& x) {
  must_not_read(")") + repo.root +
                            R"(/reference/lab9_demo/demo.cpp");
  must_not_read(")" + options.out_dir +
                            R"(/work/ref/affine.0/expected.safetensors");
  return x * 2.0f + 1.0f;
}
effml::Tensor scale(const effml::Tensor& x) { return x * 3.0f; }
float total(const effml::Tensor& x) { return x.sum(); }
std::string model_name() { return "lenet300"; }
}
)";
  repo.submission("snoop", snoop);
  const g::GradeResult r = g::grade(repo.config, options);
  INFO(g::format_table(r, false));
  REQUIRE(r.build_ok);
  CHECK(r.bwrap);
  CHECK(find(r, "affine").status == g::TaskStatus::Passed);

  // The probe itself works: without bubblewrap the world-readable reference/ is visible (only
  // the grader's own 0700 folders stay closed), and the task fails saying so.
  options.use_bwrap = false;
  const g::GradeResult open = g::grade(repo.config, options);
  CHECK(find(open, "affine").status == g::TaskStatus::Failed);
  CHECK_THAT(find(open, "affine").output, Contains("could read " + repo.root + "/reference/"));
}

TEST_CASE("student mode: without reference/, the public fixtures are the cases",
          "[grader][grade]") {
  DemoRepo repo;
  g::remove_tree(repo.root + "/reference");
  const std::string fixtures = repo.root + "/labs/lab9_demo/fixtures";
  g::make_dirs(fixtures);
  effml::Rng rng(5);
  // affine: two cases (affine.safetensors, affine.0.safetensors); scale: one; total: none.
  for (const std::string file : {"affine", "affine.0", "scale"}) {
    const effml::Tensor x = effml::Tensor::randn({2, 4}, rng);
    const effml::Tensor y = file == "scale" ? x * 3.0f : x * 2.0f + 1.0f;
    effml::save_safetensors(fixtures + "/" + file + ".safetensors",
                            {{"input.x", &x}, {"expected.y", &y}});
  }
  auto options = repo.options(g::ImplKind::Submission, repo.submission("good", kReference));
  options.only_tasks = {"affine", "scale", "total"};
  const g::GradeResult r = g::grade(repo.config, options);
  INFO(g::format_table(r, false));
  CHECK(r.mode == "student");
  CHECK_FALSE(r.seed.has_value());
  REQUIRE(r.tasks.size() == 3);  // no hidden task without reference/
  CHECK(find(r, "affine").output == "All outputs match (2 fixtures; largest difference 0).");
  CHECK(find(r, "scale").status == g::TaskStatus::Passed);
  CHECK(find(r, "total").status == g::TaskStatus::Failed);
  CHECK_THAT(find(r, "total").output, Contains("its fixture file is missing"));
  REQUIRE(r.warnings.size() == 1);
  CHECK_THAT(r.warnings[0], Contains("effml fixtures lab9"));

  options = repo.options(g::ImplKind::Submission, repo.submission("broken", kBroken));
  options.only_tasks = {"affine"};
  const g::GradeResult b = g::grade(repo.config, options);
  CHECK_THAT(find(b, "affine").output,
             StartsWith("fixture affine.safetensors: output 'y' (shape (2, 4), float32): 1 of 8 "
                        "elements differs; first at [1, 2] (flat index 6)"));
}
