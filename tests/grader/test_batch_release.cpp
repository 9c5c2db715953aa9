// The instructor's commands, run as a user runs them (the effml executable of this build):
// `effml fixtures` (reproducible, equal to the lab's committed fixtures), `effml batch` (a class
// with a correct, a stub, a broken and an empty submission; a timeout), `effml release` (no
// instructor file or solution line in it; it builds; its stubs grade to 0 without error) and
// `effml ci-template` (valid YAML and shell; the Gradescope script grades a copy of the
// reference to full marks in a fake /autograder tree).
//
// Needs the `effml` target built (the whole build builds it). The release case configures and
// builds a second tree: about 4 to 6 minutes on 2 cores.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "effml/grader/batch.h"
#include "effml/grader/files.h"
#include "effml/grader/fixtures.h"
#include "effml/grader/manifest.h"
#include "effml/grader/release.h"
#include "effml/safetensors.h"

namespace {

namespace g = effml::grader;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

const std::string kSource = EFFML_SOURCE_DIR;
const std::string kEffml = std::string(EFFML_BINARY_DIR) + "/effml";

struct TempDir {
  std::string path = g::make_temp_dir("/tmp", "effml-batch-release-");
  ~TempDir() { g::remove_tree(path); }
};

// Runs a shell command; returns its exit code, its output (stdout and stderr) in `output`.
int run(const std::string& command, std::string& output, const std::string& log) {
  const int status = std::system((command + " >" + log + " 2>&1").c_str());
  output = g::is_plain_file(log) ? g::read_file(log) : "";
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void require_effml() {
  INFO("the effml executable " << kEffml << " is built by the effml target");
  REQUIRE(g::is_plain_file(kEffml));
}

// A submission folder with the reference's (or the stub's) student files.
void make_submission(const std::string& dir, const std::string& from,
                     const std::vector<std::string>& files) {
  g::make_dirs(dir);
  for (const auto& f : files) g::copy_file(from + "/" + f, dir + "/" + f);
}

g::Manifest lab0_manifest(bool with_hidden) {
  g::LabPaths paths = g::find_lab(kSource, "lab0");
  if (!with_hidden) paths.reference_dir.clear();
  return g::load_manifest(paths);
}

std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.push_back(cell);
      cell.clear();
    } else {
      cell += c;
    }
  }
  cells.push_back(cell);
  return cells;
}

// Non-trivial lines (30 characters or more, not comments) of the reference's solution blocks,
// between the lines `// BEGIN SOLUTION` and `// END SOLUTION`, trimmed; without the lines that
// the public tree shows on purpose (the core's code, the lab's handout, header and stub), such
// as a generic loop header.
std::set<std::string> solution_lines(const std::string& reference_file,
                                     const std::vector<std::string>& public_files) {
  std::string shown;
  for (const auto& f : public_files) shown += g::read_file(f) + "\n";
  std::set<std::string> lines;
  bool inside = false;
  for (std::string line : g::split_lines(g::read_file(reference_file))) {
    const std::size_t first = line.find_first_not_of(" \t");
    line = first == std::string::npos ? "" : g::trim_right(line.substr(first));
    if (line == "// BEGIN SOLUTION") {
      inside = true;
    } else if (line == "// END SOLUTION") {
      inside = false;
    } else if (inside && line.size() >= 30 && line.rfind("//", 0) != 0 &&
               shown.find(line) == std::string::npos) {
      lines.insert(line);
    }
  }
  return lines;
}

// The files whose lines are public on purpose: core/ and the lab's handout, headers and stub.
std::vector<std::string> public_sources() {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(kSource + "/core")) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  for (const char* f : {"README.md", "lab0.h", "lab0.cpp", "student_model.h"}) {
    const std::string path = kSource + "/labs/lab0_tensor/" + f;
    if (g::is_plain_file(path)) files.push_back(path);
  }
  return files;
}

}  // namespace

TEST_CASE("effml fixtures: same seed, same bytes, equal to the lab's fixtures", "[grader][fixtures]") {
  require_effml();
  TempDir tmp;
  std::string out;
  REQUIRE(run(kEffml + " fixtures lab0 --out " + tmp.path + "/a", out, tmp.path + "/a.log") == 0);
  REQUIRE(run(kEffml + " fixtures lab0 --out " + tmp.path + "/b", out, tmp.path + "/b.log") == 0);
  const g::Manifest manifest = lab0_manifest(false);
  int files = 0;
  for (const auto& task : manifest.tasks) {
    if (task.kind != g::TaskKind::Exact) continue;
    for (int k = 0; k < 3; ++k) {
      const std::string name = g::fixture_file_name(task.name, k);
      INFO(name);
      REQUIRE(g::is_plain_file(tmp.path + "/a/" + name));
      CHECK(g::read_file(tmp.path + "/a/" + name) == g::read_file(tmp.path + "/b/" + name));
      const effml::SafetensorsFile f = effml::load_safetensors(tmp.path + "/a/" + name);
      CHECK(f.metadata.at("lab") == "lab0_tensor");
      CHECK(f.metadata.at("task") == task.name);
      CHECK(f.metadata.at("seed") == std::to_string(1 + k));
      CHECK(f.metadata.count("date") == 0);
      // The lab's committed fixtures come from the same reference and seeds: same tensors.
      const std::string committed = kSource + "/labs/lab0_tensor/fixtures/" + name;
      if (g::is_plain_file(committed)) {
        const effml::SafetensorsFile c = effml::load_safetensors(committed);
        REQUIRE(c.tensors.size() == f.tensors.size());
        for (std::size_t i = 0; i < c.tensors.size(); ++i) {
          const auto& [cname, ct] = c.tensors[i];
          const effml::Tensor& ft = f.at(cname);
          REQUIRE(ct.shape() == ft.shape());
          for (int64_t e = 0; e < ct.numel(); ++e) REQUIRE(ct[e] == ft[e]);
        }
      }
      ++files;
    }
  }
  CHECK(files == 18);  // 6 visible exact tasks x 3 seeds
}

TEST_CASE("effml batch: every submission gets a row, a bad one does not stop the batch",
          "[grader][batch]") {
  require_effml();
  TempDir tmp;
  const g::Manifest manifest = lab0_manifest(true);
  const std::string subs = tmp.path + "/subs";
  make_submission(subs + "/alice", kSource + "/reference/lab0_tensor", manifest.student_files);
  make_submission(subs + "/bob", kSource + "/labs/lab0_tensor", manifest.student_files);
  make_submission(subs + "/carol", kSource + "/reference/lab0_tensor", manifest.student_files);
  {
    std::ofstream broken(subs + "/carol/" + manifest.student_files[0], std::ios::app);
    broken << "\nthis line does not compile\n";
  }
  g::make_dirs(subs + "/dave");  // submitted nothing
  g::make_dirs(subs + "/.git");  // not a student

  // The exact tasks only: training is the main job's, and takes minutes per submission.
  std::string tasks;
  double exact_points = 0;
  for (const auto& t : manifest.tasks) {
    if (t.kind == g::TaskKind::Exact && !t.hidden) {
      tasks += " --task " + t.name;
      exact_points += t.points;
    }
  }
  std::string out;
  const int code = run(kEffml + " batch " + subs + " --jobs 2 --lab lab0 --out " + tmp.path +
                           "/out --seed 7" + tasks,
                       out, tmp.path + "/batch.log");
  INFO(out);
  CHECK(code == 0);
  CHECK_THAT(out, Contains("[4/4]"));
  const std::vector<std::string> lines =
      g::split_lines(g::read_file(tmp.path + "/out/gradebook.csv"));
  REQUIRE(lines.size() == 5);
  const std::vector<std::string> header = csv_cells(lines[0]);
  REQUIRE(header.size() == 3 + manifest.tasks.size() + 2);
  CHECK(header[0] == "student");
  CHECK(header[3] == manifest.tasks[0].name);
  CHECK(header[header.size() - 2] == "status");
  const std::vector<std::string> names = {"alice", "bob", "carol", "dave"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::vector<std::string> row = csv_cells(lines[i + 1]);
    INFO(lines[i + 1]);
    REQUIRE(row.size() == header.size());
    CHECK(row[0] == names[i]);
    CHECK(row[row.size() - 2] == "graded");
    CHECK(g::is_plain_file(tmp.path + "/out/" + names[i] + "/results.json"));
    CHECK(g::is_plain_file(tmp.path + "/out/" + names[i] + "/junit.xml"));
    const double score = std::stod(row[1]);
    CHECK(score == (names[i] == "alice" ? exact_points : 0.0));
  }
  const auto carol = nlohmann::json::parse(g::read_file(tmp.path + "/out/carol/results.json"));
  CHECK_THAT(carol["tests"][0]["output"].get<std::string>(), Contains("does not compile"));

  // A grading that outlives --timeout is stopped and reported; the batch still finishes.
  const int timed = run(kEffml + " batch " + subs + " --jobs 2 --lab lab0 --timeout 0.05 --out " +
                            tmp.path + "/out2" + tasks,
                        out, tmp.path + "/batch2.log");
  CHECK(timed == 1);
  const std::string book = g::read_file(tmp.path + "/out2/gradebook.csv");
  CHECK_THAT(book, Contains("alice,,,"));
  CHECK_THAT(book, Contains("was stopped"));
}

TEST_CASE("effml release: no instructor file, builds, stubs grade to 0", "[grader][release][slow]") {
  require_effml();
  TempDir tmp;
  const std::string rel = tmp.path + "/release";
  std::string out;
  int code = run(kEffml + " release --out " + rel, out, tmp.path + "/release.log");
  INFO(out);
  REQUIRE(code == 0);

  // Nothing of reference/ and nothing hidden.
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(rel); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string path = fs::relative(it->path(), rel).generic_string();
    INFO(path);
    CHECK(path.find("reference") == std::string::npos);
    CHECK(path.find("hidden") == std::string::npos);
    if (it->is_regular_file()) files.push_back(path);
  }
  CHECK(std::find(files.begin(), files.end(), "labs/lab0_tensor/lab0.cpp") != files.end());
  CHECK(std::find(files.begin(), files.end(), "labs/lab0_tensor/README.md") != files.end());
  CHECK(std::find(files.begin(), files.end(), "labs/lab0_tensor/fixtures/linear_forward.safetensors") !=
        files.end());

  // No solution line in any released file; the stub's NotImplemented is there.
  const std::set<std::string> secrets =
      solution_lines(kSource + "/reference/lab0_tensor/lab0.cpp", public_sources());
  REQUIRE(secrets.size() >= 20);  // 56 such lines when written
  for (const auto& path : files) {
    if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors") continue;
    const std::string text = g::read_file(rel + "/" + path);
    for (const auto& line : secrets) {
      INFO(path << " holds the solution line: " << line);
      CHECK(text.find(line) == std::string::npos);
    }
  }
  const std::string stub = g::read_file(rel + "/labs/lab0_tensor/lab0.cpp");
  CHECK_THAT(stub, Contains("throw effml::NotImplemented(\"Task 1: linear_forward\")"));
  CHECK(stub == g::read_file(kSource + "/labs/lab0_tensor/lab0.cpp"));

  // It builds (the effml command and the lab's tests) ... Unoptimised (-O0, no debug info):
  // this checks that the release configures and compiles, which needs no optimiser, and the
  // compile takes 66 s instead of 107 s at -O3 (measured alone on 2 cores).
  code = run("cmake -S " + rel + " -B " + rel +
                 "/build -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0",
             out, tmp.path + "/configure.log");
  REQUIRE(code == 0);
  code = run("make -C " + rel + "/build -j2 effml lab0_tensor_tests", out, tmp.path + "/make.log");
  INFO(out.substr(out.size() > 4000 ? out.size() - 4000 : 0));
  REQUIRE(code == 0);

  // ... and its stubs grade to 0 without a grader error, in student mode, with its fixtures.
  code = run("cd " + rel + " && build/effml grade lab0 --no-color --out " + rel + "/out/grade",
             out, tmp.path + "/grade.log");
  REQUIRE(code == 0);
  REQUIRE(g::is_plain_file(rel + "/out/grade/results.json"));
  const auto results = nlohmann::json::parse(g::read_file(rel + "/out/grade/results.json"));
  CHECK(results["score"].get<double>() == 0);
  CHECK(results["extra_data"]["mode"] == "student");
  CHECK(results["extra_data"]["warnings"].empty());  // every fixture is there
  CHECK(results["tests"].size() == lab0_manifest(false).tasks.size());
}

TEST_CASE("effml ci-template: valid files, and run_autograder grades the reference to full marks",
          "[grader][ci]") {
  require_effml();
  TempDir tmp;
  const std::string ci = tmp.path + "/ci";
  std::string out;
  REQUIRE(run(kEffml + " ci-template --lab lab0 --out " + ci, out, tmp.path + "/ci.log") == 0);
  const std::string yml = ci + "/.github/workflows/grade.yml";
  REQUIRE(g::is_plain_file(yml));
  CHECK_THAT(g::read_file(yml), Contains("labs/lab0_tensor"));
  CHECK_THAT(g::read_file(yml), !Contains("@LAB"));

  // YAML parses, and each `run:` block is valid bash.
  const std::string check_yaml =
      "/usr/bin/python3 -c 'import sys, yaml\n"
      "w = yaml.safe_load(open(sys.argv[1]))\n"
      "steps = w[\"jobs\"][\"grade\"][\"steps\"]\n"
      "assert any(\"upload-artifact\" in s.get(\"uses\", \"\") for s in steps)\n"
      "for i, s in enumerate(steps):\n"
      "    if \"run\" in s: open(sys.argv[2] + \"/step%d.sh\" % i, \"w\").write(s[\"run\"])\n' " +
      yml + " " + tmp.path;
  REQUIRE(run(check_yaml, out, tmp.path + "/yaml.log") == 0);
  int steps = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) {
    if (e.path().filename().string().rfind("step", 0) != 0) continue;
    ++steps;
    INFO(e.path().string());
    CHECK(run("bash -n " + e.path().string(), out, tmp.path + "/n.log") == 0);
  }
  CHECK(steps >= 3);
  for (const char* script : {"setup.sh", "run_autograder"}) {
    const std::string path = ci + "/gradescope/" + script;
    INFO(path);
    REQUIRE(g::is_plain_file(path));
    CHECK(::access(path.c_str(), X_OK) == 0);
    CHECK(run("bash -n " + path, out, tmp.path + "/n.log") == 0);
  }

  // A fake /autograder: the submission is a whole repository-shaped upload holding a copy of the
  // reference; the image's build is this one.
  const std::string root = tmp.path + "/autograder";
  const g::Manifest manifest = lab0_manifest(true);
  make_submission(root + "/submission/labs/lab0_tensor", kSource + "/reference/lab0_tensor",
                  manifest.student_files);
  g::make_dirs(root + "/source");
  const int code = run("AUTOGRADER_ROOT=" + root + " EFFML_REPO=" + kSource +
                           " EFFML_BUILD_DIR=" + EFFML_BINARY_DIR + " " + ci +
                           "/gradescope/run_autograder",
                       out, tmp.path + "/run_autograder.log");
  INFO(out);
  CHECK(code == 0);
  REQUIRE(g::is_plain_file(root + "/results/results.json"));
  const auto results = nlohmann::json::parse(g::read_file(root + "/results/results.json"));
  CHECK(results["score"].get<double>() == manifest.total_points());
  CHECK(results["tests"].size() == manifest.tasks.size());

  // With no build, results.json still appears and says what is wrong.
  g::remove_tree(root + "/results");
  CHECK(run("AUTOGRADER_ROOT=" + root + " EFFML_REPO=" + kSource + " EFFML_BUILD_DIR=" +
                tmp.path + "/nowhere " + ci + "/gradescope/run_autograder",
            out, tmp.path + "/run_autograder2.log") == 0);
  const auto failed = nlohmann::json::parse(g::read_file(root + "/results/results.json"));
  CHECK(failed["score"].get<double>() == 0);
  CHECK_THAT(failed["output"].get<std::string>(), Contains("setup.sh"));
}
