// Hostile Lab 0 submissions, graded through the grader library.
//
// Each folder tests/grader/submissions/<name>/ holds a lab0.cpp that is the reference solution
// with one hostile change in one function (its first lines say which). Each case grades it as
// `effml grade lab0 --submission DIR` does (grade() with ImplKind::Submission and the lab's
// manifest), restricted with only_tasks to the hostile task and one healthy task, and checks:
// - grade() returns normally (a bad submission is never a grader error);
// - the hostile task fails, with a message that names the reason (signal, time limit, memory,
//   output, NaN, shapes, ...), and gains no point;
// - the healthy task still passes with all its points;
// - the grading process is unchanged (working folder, open files, limits, signal handling) and no
//   process of the run is left;
// - no file outside the grading's output folder changed (the lab, the reference, the submissions,
//   and the places the submission aims at), and results.json is exactly the grader's.
//
// Grading happens in instructor mode (reference/ present, fixed seed) unless a case says
// otherwise. Output folders lie in the build folder, outside /tmp, so that a submission which
// guesses paths from its own run folder aims at real folders (the sandbox's view of /tmp is
// private). GradeOptions has no limit override, so the time-limit cases grade a copy of the lab
// whose manifest has a 4 s wall limit instead of 30 s, and the memory case one with 512 MiB
// instead of 2 GiB (the manifest is otherwise the real one; the 30 s case is hidden, tag [slow]).
// The "uncontained" sections run the same submission without bubblewrap and as root, so that
// nothing stops it, to show that the attack works then and that the contained result means
// something; they run on a copy of the lab when the attack writes.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/report.h"
#include "effml/grader/sandbox.h"
#include "effml/safetensors.h"

namespace {

namespace g = effml::grader;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

const std::string kSource = EFFML_SOURCE_DIR;
const std::string kBinary = EFFML_BINARY_DIR;
// A fixed base seed, so that the random cases are the same on every run.
constexpr uint64_t kSeed = 20261126;

std::string submission_dir(const std::string& name) {
  return kSource + "/tests/grader/submissions/" + name;
}

// Processes and threads whose real user id is `uid` (from /proc/PID/status).
int tasks_of_uid(uid_t uid) {
  int count = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return 0;
  while (const dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string status;
    try {
      status = g::read_file(std::string("/proc/") + e->d_name + "/status");
    } catch (...) {
      continue;  // the process has just ended
    }
    const auto at = status.find("\nUid:");
    if (at != std::string::npos && std::strtoul(status.c_str() + at + 5, nullptr, 10) == uid) {
      ++count;
    }
  }
  ::closedir(proc);
  return count;
}

// A user id of its own for the graded runs of this process (when the grader runs as root), so
// that "no process of the run is left" can be checked by counting, and so that test processes
// running at the same time do not share a process limit.
uint32_t private_uid() {
  for (uint32_t uid = 62000 + static_cast<uint32_t>(::getpid() % 3000);; ++uid) {
    if (tasks_of_uid(uid) == 0) return uid;
  }
}

// What a hostile child could try to change in the grading process.
struct ProcessState {
  std::string cwd;
  std::map<int, std::string> fds;  // open descriptor -> what it refers to
  std::map<int, std::pair<rlim_t, rlim_t>> limits;
  std::map<int, std::string> signals;  // signal -> disposition
  std::string mask;
  std::string ids;
  int threads = 0;

  static ProcessState now() {
    ProcessState s;
    char buf[4096];
    s.cwd = ::getcwd(buf, sizeof buf) != nullptr ? buf : "?";
    for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
      const int fd = std::atoi(e.path().filename().c_str());
      std::error_code ec;
      const std::string target = fs::read_symlink(e.path(), ec).string();
      // The descriptor of the listing itself comes and goes.
      if (target.rfind("/proc/", 0) != 0) s.fds[fd] = target;
    }
    for (int r : {RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CORE}) {
      rlimit l{};
      ::getrlimit(r, &l);
      s.limits[r] = {l.rlim_cur, l.rlim_max};
    }
    for (int sig : {SIGCHLD, SIGPIPE, SIGXFSZ, SIGXCPU, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
      struct sigaction a {};
      ::sigaction(sig, nullptr, &a);
      s.signals[sig] = std::to_string(reinterpret_cast<uintptr_t>(a.sa_handler)) + "/" +
                       std::to_string(a.sa_flags);
    }
    sigset_t mask;
    ::sigprocmask(SIG_BLOCK, nullptr, &mask);
    for (int sig = 1; sig < 32; ++sig) s.mask += sigismember(&mask, sig) ? '1' : '0';
    s.ids = std::to_string(::getuid()) + "," + std::to_string(::geteuid()) + "," +
            std::to_string(::getgid()) + "," + std::to_string(::getegid()) + "," +
            std::to_string(::getpgrp()) + "," + std::to_string(::getsid(0));
    const std::string status = g::read_file("/proc/self/status");
    const auto at = status.find("\nThreads:");
    s.threads = at == std::string::npos ? 0 : std::atoi(status.c_str() + at + 9);
    return s;
  }

  // What differs, one item per line; "" when nothing does.
  std::string differences(const ProcessState& after) const {
    std::string d;
    if (cwd != after.cwd) d += "working folder " + cwd + " -> " + after.cwd + "\n";
    if (fds != after.fds) {
      d += "open descriptors changed:";
      for (const auto& [fd, t] : after.fds) d += " " + std::to_string(fd) + "=" + t;
      d += "\n";
    }
    if (limits != after.limits) d += "resource limits changed\n";
    if (signals != after.signals) d += "signal dispositions changed\n";
    if (mask != after.mask) d += "signal mask " + mask + " -> " + after.mask + "\n";
    if (ids != after.ids) d += "ids " + ids + " -> " + after.ids + "\n";
    if (threads != after.threads) {
      d += "threads " + std::to_string(threads) + " -> " + std::to_string(after.threads) + "\n";
    }
    return d;
  }
};

// Fingerprints of files: every file of some folders, and single paths (which may be absent).
struct FileSnapshot {
  std::map<std::string, std::string> entries;  // path -> "size mode hash", or "absent"

  static std::string fingerprint(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return "absent";
    std::string content;
    if (S_ISREG(st.st_mode)) {
      try {
        content = g::read_file(path);
      } catch (...) {
        content = "<unreadable>";
      }
    }
    return std::to_string(st.st_size) + " " + std::to_string(st.st_mode) + " " +
           std::to_string(st.st_uid) + " " + g::hex64(g::fnv1a64(content));
  }

  void add_tree(const std::string& root) {
    entries[root] = fingerprint(root);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      entries[it->path().string()] = fingerprint(it->path().string());
    }
  }
  void add_file(const std::string& path) { entries[path] = fingerprint(path); }

  // The same paths again, plus any new file in the folders.
  FileSnapshot again(const std::vector<std::string>& trees) const {
    FileSnapshot s;
    for (const auto& t : trees) s.add_tree(t);
    for (const auto& [path, f] : entries) {
      if (s.entries.find(path) == s.entries.end()) s.add_file(path);
    }
    return s;
  }

  std::string differences(const FileSnapshot& after) const {
    std::string d;
    for (const auto& [path, f] : after.entries) {
      auto it = entries.find(path);
      const std::string was = it == entries.end() ? "absent" : it->second;
      if (was != f) d += path + ": " + was + " -> " + f + "\n";
    }
    return d;
  }
};

const g::TaskResult& task_of(const g::GradeResult& r, const std::string& name) {
  for (const auto& t : r.tasks) {
    if (t.name == name) return t;
  }
  FAIL("no task " << name << " in the result");
  throw;  // not reached
}

double points_of(const g::GradeResult& r, const std::string& name) {
  return task_of(r, name).max_score;
}

// A copy of Lab 0 in a repository folder of its own: labs/lab0_tensor, and reference/lab0_tensor
// when `with_reference` (instructor mode; student mode without it). `limits` is merged into the
// manifest's lab-wide limits (null for none).
std::string copy_lab0(const std::string& repo, bool with_reference, const nlohmann::json& limits) {
  g::make_dirs(repo + "/labs");
  fs::copy(kSource + "/labs/lab0_tensor", repo + "/labs/lab0_tensor", fs::copy_options::recursive);
  if (with_reference) {
    g::make_dirs(repo + "/reference");
    fs::copy(kSource + "/reference/lab0_tensor", repo + "/reference/lab0_tensor",
             fs::copy_options::recursive);
  }
  if (!limits.is_null()) {
    const std::string path = repo + "/labs/lab0_tensor/manifest.json";
    nlohmann::json manifest = nlohmann::json::parse(g::read_file(path));
    manifest["limits"].update(limits);
    g::write_file(path, manifest.dump(2) + "\n");
  }
  // The sandboxed runs (another user) must be able to walk down to their run folders.
  for (const auto& e : fs::recursive_directory_iterator(repo)) {
    if (e.is_directory()) ::chmod(e.path().c_str(), 0755);
  }
  ::chmod(repo.c_str(), 0755);
  return repo;
}

// One test's grading area: a folder under the build folder, removed at the end.
struct Hostile {
  g::GraderConfig config;
  std::string root;
  bool root_user = ::geteuid() == 0;
  uint32_t uid = 65534;
  bool bwrap = g::bwrap_available();

  Hostile() {
    config = g::GraderConfig::load(kBinary + "/grader_config.json");
    config.source_dir = kSource;
    root = g::make_temp_dir(kBinary, "hostile-grading-");
    if (root_user) uid = private_uid();
  }
  ~Hostile() { g::remove_tree(root); }

  // Grades submission `name` on `tasks` (the hostile one first). `repo` "" for the repository.
  g::GradeOptions options(const std::string& name, const std::vector<std::string>& tasks,
                          const std::string& out, const std::string& repo = "") const {
    g::GradeOptions o;
    o.lab = "lab0";
    o.impl = g::ImplKind::Submission;
    o.submission_dir = submission_dir(name);
    o.out_dir = out;
    o.repo_root = repo;
    o.cache_dir = kBinary + "/grader-test-cache";
    o.seed = kSeed;
    o.only_tasks = tasks;
    o.threads = 1;
    o.run_as_uid = uid;
    o.run_as_gid = uid;
    return o;
  }
};

// Grades with `options` and checks what every case shares: grade() returns normally, the grading
// process is unchanged, no process of the run is left, no file outside the output folder changed
// (the lab, the reference, the submissions, places for a fake results.json), and results.json is
// the grader's. Returns the result.
g::GradeResult grade_contained(const Hostile& h, const g::GradeOptions& options) {
  const std::string repo = options.repo_root.empty() ? kSource : options.repo_root;
  std::vector<std::string> watched_trees = {repo + "/labs/lab0_tensor",
                                            kSource + "/tests/grader/submissions"};
  if (g::is_dir(repo + "/reference/lab0_tensor")) {
    watched_trees.push_back(repo + "/reference/lab0_tensor");
  }
  FileSnapshot files;
  for (const auto& t : watched_trees) files.add_tree(t);
  char buf[4096];
  const std::string cwd = ::getcwd(buf, sizeof buf) != nullptr ? buf : ".";
  // Where a submission might drop a fake results.json.
  for (const std::string& dir : {cwd, std::string("/tmp"), kBinary, kSource, h.root}) {
    files.add_file(dir + "/results.json");
  }
  const ProcessState process = ProcessState::now();

  g::GradeResult r;
  try {
    r = g::grade(h.config, options);
  } catch (const std::exception& e) {
    FAIL("grade() threw for a hostile submission: " << e.what());
  }
  INFO(g::format_table(r, false));

  CHECK(process.differences(ProcessState::now()) == "");
  if (h.root_user) CHECK(tasks_of_uid(h.uid) == 0);
  int status = 0;
  const pid_t child = ::waitpid(-1, &status, WNOHANG);
  const int error = errno;
  CHECK(child == -1);  // no child of the grader left, not even a zombie
  CHECK(error == ECHILD);
  CHECK(files.differences(files.again(watched_trees)) == "");
  // Before the grader writes its reports, nothing is in the output folder but its work folder.
  CHECK_FALSE(fs::exists(options.out_dir + "/results.json"));
  CHECK_FALSE(fs::exists(options.out_dir + "/work/results.json"));

  g::write_reports(r, options.out_dir);
  const std::string written = g::read_file(options.out_dir + "/results.json");
  CHECK(written == g::results_json_text(r));
  const auto j = nlohmann::json::parse(written);
  CHECK(j["score"].get<double>() == r.score());
  CHECK(j["tests"].size() == r.tasks.size());
  CHECK(r.tasks.size() == options.only_tasks.size());
  return r;
}

// The hostile task failed with no point and a message containing each of `words`; the healthy one
// passed with all its points; the score is the healthy task's.
void check_contained(const g::GradeResult& r, const std::string& hostile,
                     const std::string& healthy, const std::vector<std::string>& words) {
  INFO(g::format_table(r, false));
  CHECK(r.build_ok);
  const g::TaskResult& bad = task_of(r, hostile);
  CHECK(bad.status == g::TaskStatus::Failed);
  CHECK(bad.score == 0);
  for (const auto& w : words) CHECK_THAT(bad.output, Contains(w));
  const g::TaskResult& good = task_of(r, healthy);
  CHECK(good.status == g::TaskStatus::Passed);
  CHECK(good.score == good.max_score);
  CHECK(good.max_score > 0);
  CHECK(r.score() == good.max_score);
}

}  // namespace

// ---- crashes and resource abuse -----------------------------------------------------------------

TEST_CASE("hostile lab0: a segmentation fault fails its task only", "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("segfault", {"relu_backward", "linear_forward"}, h.root + "/out"));
  check_contained(r, "relu_backward", "linear_forward", {"SIGSEGV", "segmentation fault"});
  CHECK(task_of(r, "relu_backward").extra.value("exit", "") == "signal");
}

TEST_CASE("hostile lab0: an abort fails its task only, with the assertion shown",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("abort", {"sgd_momentum_step", "relu_backward"}, h.root + "/out"));
  check_contained(r, "sgd_momentum_step", "relu_backward",
                  {"SIGABRT", "velocity must start at zero"});
}

TEST_CASE("hostile lab0: an infinite loop is killed at the time limit", "[grader][hostile][slow]") {
  Hostile h;
  // The real manifest with its 30 s lab-wide wall limit lowered to 4 s.
  const std::string repo = copy_lab0(h.root + "/repo", true, {{"wall_seconds", 4}});
  const auto r = grade_contained(
      h, h.options("infinite_loop", {"linear_forward", "relu_backward"}, h.root + "/out", repo));
  check_contained(r, "linear_forward", "relu_backward", {"time limit", "4 s"});
  const auto& bad = task_of(r, "linear_forward");
  CHECK(bad.extra.value("exit", "") == "timeout");
  // Measured 4.03 s on 2 cores under a load average of 10 to 17: the deadline, then the kill.
  CHECK(bad.extra.value("runner_seconds", 0.0) < 10.0);
}

// The same with the manifest's own 30 s limit (hidden: run with `[slow]`).
TEST_CASE("hostile lab0: an infinite loop is killed at the manifest's own time limit",
          "[grader][hostile][.slow]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("infinite_loop", {"linear_forward", "relu_backward"}, h.root + "/out"));
  check_contained(r, "linear_forward", "relu_backward", {"time limit", "30 s"});
  CHECK(task_of(r, "linear_forward").extra.value("runner_seconds", 0.0) < 40.0);
}

TEST_CASE("hostile lab0: a fork bomb is killed at the time limit and leaves no process",
          "[grader][hostile][slow]") {
  Hostile h;
  const std::string repo = copy_lab0(h.root + "/repo", true, {{"wall_seconds", 4}});
  const auto r = grade_contained(
      h, h.options("fork_bomb", {"relu_backward", "linear_forward"}, h.root + "/out", repo));
  check_contained(r, "relu_backward", "linear_forward", {"time limit"});
  const auto& bad = task_of(r, "relu_backward");
  CHECK(bad.extra.value("exit", "") == "timeout");
  // Measured 4.25 and 4.47 s on 2 cores under a load average of 10 to 17.
  CHECK(bad.extra.value("runner_seconds", 0.0) < 10.0);
}

TEST_CASE("hostile lab0: a memory bomb runs out of memory and fails its task only",
          "[grader][hostile]") {
  Hostile h;
  // The manifest's 2 GiB lowered to 512 MiB: filling 2 GiB took 8 s on 2 loaded cores.
  const std::string repo = copy_lab0(h.root + "/repo", true, {{"memory_mb", 512}});
  const auto r = grade_contained(
      h, h.options("memory_bomb", {"linear_backward", "relu_backward"}, h.root + "/out", repo));
  check_contained(r, "linear_backward", "relu_backward", {"ran out of memory", "512 MiB"});
  CHECK(task_of(r, "linear_backward").extra.value("exit", "") == "memory_limit");
}

TEST_CASE("hostile lab0: a gigabyte of output is cut off and fails its task only",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("output_flood", {"softmax_cross_entropy_forward", "relu_backward"},
                   h.root + "/out"));
  check_contained(r, "softmax_cross_entropy_forward", "relu_backward", {"of output"});
  const auto& bad = task_of(r, "softmax_cross_entropy_forward");
  CHECK(bad.extra.value("exit", "") == "output_limit");
  // The report keeps a few lines of it, not the flood (20 lines of at most 300 characters).
  CHECK(bad.output.size() < 16 * 1024);
  CHECK(g::read_file(h.root + "/out/results.json").size() < 64 * 1024);
}

// ---- claims of success --------------------------------------------------------------------------

TEST_CASE("hostile lab0: fake results.json files change nothing", "[grader][hostile]") {
  Hostile h;
  const std::string out = h.root + "/out";
  const auto r = grade_contained(
      h, h.options("fake_results", {"softmax_cross_entropy_backward", "relu_backward"}, out));
  check_contained(r, "softmax_cross_entropy_backward", "relu_backward", {"output 'dlogits'"});
  // The run folder is the only place it could write; the grader never reads a results.json.
  const std::string run = out + "/work/student/softmax_cross_entropy_backward.0";
  CHECK(fs::exists(run + "/results.json"));
  CHECK_FALSE(fs::exists(out + "/work/student/results.json"));
  const std::string report = g::read_file(out + "/results.json");
  CHECK_THAT(report, !Contains("\"max_score\": 100.0"));
  CHECK(nlohmann::json::parse(report)["score"].get<double>() == points_of(r, "relu_backward"));
}

TEST_CASE("hostile lab0: printing \"passed\" and \"score: 100\" earns nothing",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("fake_passed", {"linear_forward", "relu_backward"}, h.root + "/out"));
  check_contained(r, "linear_forward", "relu_backward", {"output 'y'", "expected", "got"});
  CHECK_THAT(task_of(r, "linear_forward").output, !Contains("score: 100"));
}

TEST_CASE("hostile lab0: exit(0) before the outputs are written fails with a message",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("early_exit", {"sgd_momentum_step", "relu_backward"}, h.root + "/out"));
  check_contained(r, "sgd_momentum_step", "relu_backward",
                  {"did not write outputs.safetensors"});
}

TEST_CASE("hostile lab0: a forged output file with a deeply nested header fails its task only",
          "[grader][hostile]") {
  Hostile h;
  // The child writes outputs.safetensors itself: its header is 2 MB of nested brackets, which a
  // recursive JSON reader or writer in the grader's process would not survive.
  SECTION("an exact task") {
    const auto r = grade_contained(
        h, h.options("nested_header", {"relu_backward", "linear_forward"}, h.root + "/out"));
    check_contained(r, "relu_backward", "linear_forward", {"invalid outputs.safetensors", "nest"});
    CHECK(task_of(r, "relu_backward").output.size() < 4096);
  }
  SECTION("the accuracy task, whose training calls relu_backward in its first step") {
    const auto r = grade_contained(
        h, h.options("nested_header", {"train_lenet300", "linear_forward"}, h.root + "/out"));
    check_contained(r, "train_lenet300", "linear_forward",
                    {"checkpoint cannot be loaded", "nest"});
  }
}

// ---- wrong outputs ------------------------------------------------------------------------------

TEST_CASE("hostile lab0: a NaN output fails with a message naming NaN", "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("nan_output", {"softmax_cross_entropy_forward", "relu_backward"},
                   h.root + "/out"));
  check_contained(r, "softmax_cross_entropy_forward", "relu_backward", {"output 'loss'", "NaN"});
}

TEST_CASE("hostile lab0: a wrongly shaped output fails with both shapes named",
          "[grader][hostile]") {
  Hostile h;
  const std::string out = h.root + "/out";
  const auto r =
      grade_contained(h, h.options("wrong_shape", {"linear_backward", "relu_backward"}, out));
  // The first case's weight is (O, I): dbias must be (O,), the submission returns (1, O).
  const auto inputs =
      effml::load_safetensors(out + "/work/ref/linear_backward.0/inputs.safetensors");
  const std::string o = std::to_string(inputs.at("weight").size(0));
  check_contained(r, "linear_backward", "relu_backward",
                  {"output 'dbias': expected shape (" + o + ",), got (1, " + o + ")"});
}

// ---- the build ----------------------------------------------------------------------------------

TEST_CASE("hostile lab0: #include of a reference file is rejected with a message",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("include_reference", {"relu_backward", "linear_forward"}, h.root + "/out"));
  INFO(g::format_table(r, false));
  CHECK_FALSE(r.build_ok);
  CHECK_THAT(r.build_message, Contains("#include \"../../reference/lab0_tensor/lab0.cpp\""));
  CHECK_THAT(r.build_message, Contains("is not allowed"));
  for (const auto& t : r.tasks) {
    CHECK(t.status == g::TaskStatus::Failed);
    CHECK_THAT(t.output, Contains("The build failed"));
    CHECK_THAT(t.output, Contains("reference/lab0_tensor/lab0.cpp"));
  }
  CHECK(r.score() == 0);
}

TEST_CASE("hostile lab0: a call to a reference-only function fails the build with a message",
          "[grader][hostile]") {
  Hostile h;
  const auto r = grade_contained(
      h, h.options("reference_symbol", {"linear_forward", "relu_backward"}, h.root + "/out"));
  INFO(g::format_table(r, false));
  CHECK_FALSE(r.build_ok);
  CHECK_THAT(r.build_message, Contains("Symbol check failed"));
  CHECK_THAT(r.build_message, Contains("lab0::reference::linear_forward("));
  for (const auto& t : r.tasks) {
    CHECK(t.status == g::TaskStatus::Failed);
    CHECK_THAT(t.output, Contains("lab0::reference::linear_forward("));
  }
  CHECK(r.score() == 0);
}

// ---- hidden data --------------------------------------------------------------------------------

TEST_CASE("hostile lab0: copying the grader's expected outputs earns nothing",
          "[grader][hostile]") {
  Hostile h;
  const std::vector<std::string> tasks = {"linear_forward", "relu_backward"};
  SECTION("with bubblewrap") {
    if (!h.bwrap) {
      WARN("bubblewrap is not usable here: nothing to check");
      return;
    }
    const std::string out = h.root + "/out";
    const auto r = grade_contained(h, h.options("copy_expected", tasks, out));
    check_contained(r, "linear_forward", "relu_backward", {"output 'y'"});
    // What it went for was there, next to its run folder, during its run.
    CHECK(fs::exists(out + "/work/ref/linear_forward.0/expected.safetensors"));
    CHECK(fs::exists(out + "/work/ref/runner"));
  }
  SECTION("without bubblewrap, as another user") {
    if (!h.root_user) {
      WARN("not root: the runs cannot change user, nothing to check");
      return;
    }
    auto o = h.options("copy_expected", tasks, h.root + "/out");
    o.use_bwrap = false;
    const auto r = grade_contained(h, o);
    check_contained(r, "linear_forward", "relu_backward", {"output 'y'"});
  }
  SECTION("uncontained (as root, without bubblewrap) it would earn the points") {
    if (!h.root_user) {
      WARN("not root: the uncontained run cannot be made");
      return;
    }
    auto o = h.options("copy_expected", tasks, h.root + "/out");
    o.use_bwrap = false;
    o.run_as_uid = 0;
    o.run_as_gid = 0;
    const g::GradeResult r = g::grade(h.config, o);
    INFO(g::format_table(r, false));
    CHECK(task_of(r, "linear_forward").status == g::TaskStatus::Passed);
  }
}

TEST_CASE("hostile lab0: the reference folder cannot be read under bubblewrap",
          "[grader][hostile]") {
  Hostile h;
  const std::vector<std::string> tasks = {"relu_backward", "linear_forward"};
  // The submission searches every folder above its run folder for reference/lab0_tensor; the
  // output folder lies inside a copy of the repository's Lab 0 (instructor mode), so the search
  // passes that copy's root wherever the build folder is.
  const std::string repo = copy_lab0(h.root + "/repo", true, nullptr);
  REQUIRE(fs::exists(repo + "/reference/lab0_tensor/lab0.cpp"));
  SECTION("with bubblewrap") {
    if (!h.bwrap) {
      WARN("bubblewrap is not usable here: nothing to check");
      return;
    }
    const auto r =
        grade_contained(h, h.options("read_reference", tasks, repo + "/out", repo));
    check_contained(r, "relu_backward", "linear_forward", {"output 'dx'"});
  }
  SECTION("uncontained (without bubblewrap) it would earn the points") {
    auto o = h.options("read_reference", tasks, repo + "/out", repo);
    o.use_bwrap = false;
    if (h.root_user) o.run_as_uid = o.run_as_gid = 0;
    const g::GradeResult r = g::grade(h.config, o);
    INFO(g::format_table(r, false));
    CHECK(task_of(r, "relu_backward").status == g::TaskStatus::Passed);
  }
}

TEST_CASE("hostile lab0: running a reference runner from the instructor's build earns nothing",
          "[grader][hostile]") {
  Hostile h;
  // In the instructor's repository the build links tests/lab0_tensor_runner with the reference
  // solution; the submission looks for it in every folder of the repository it is graded in.
  const std::string built = kBinary + "/tests/lab0_tensor_runner";
  if (!fs::exists(built) || h.root.rfind(kSource + "/", 0) != 0) {
    WARN("no " << built << " inside the repository: nothing to check");
    return;
  }
  const std::vector<std::string> tasks = {"linear_forward", "relu_backward"};
  SECTION("with bubblewrap") {
    if (!h.bwrap) {
      WARN("bubblewrap is not usable here: nothing to check");
      return;
    }
    const auto r = grade_contained(h, h.options("run_build_runner", tasks, h.root + "/out"));
    check_contained(r, "linear_forward", "relu_backward", {"output 'y'"});
  }
  SECTION("without bubblewrap, as another user") {
    if (!h.root_user) {
      WARN("not root: the runs cannot change user, nothing to check");
      return;
    }
    auto o = h.options("run_build_runner", tasks, h.root + "/out");
    o.use_bwrap = false;
    const auto r = grade_contained(h, o);
    check_contained(r, "linear_forward", "relu_backward", {"output 'y'"});
  }
}

TEST_CASE("hostile lab0: rewriting the fixtures (student mode) changes nothing",
          "[grader][hostile]") {
  Hostile h;
  // Student mode: a repository without reference/, graded against its fixtures. The output
  // folder lies inside that repository, so the submission finds the fixtures above its run folder.
  const std::string repo = copy_lab0(h.root + "/repo", false, nullptr);
  const std::string fixtures = repo + "/labs/lab0_tensor/fixtures";
  REQUIRE(fs::exists(fixtures + "/relu_backward.safetensors"));
  const std::vector<std::string> tasks = {"relu_backward", "linear_forward"};
  SECTION("contained") {
    const FileSnapshot before = [&] {
      FileSnapshot s;
      s.add_tree(fixtures);
      return s;
    }();
    for (int round = 0; round < 2; ++round) {  // a forged fixture would pay off the second time
      const auto r = grade_contained(h, h.options("tamper_fixtures", tasks,
                                                  repo + "/out" + std::to_string(round), repo));
      CHECK(r.mode == "student");
      check_contained(r, "relu_backward", "linear_forward", {"output 'dx'"});
    }
    CHECK(before.differences(before.again({fixtures})) == "");
  }
  SECTION("uncontained (as root, without bubblewrap) it would earn the points") {
    if (!h.root_user) {
      WARN("not root: the uncontained run cannot be made");
      return;
    }
    auto o = h.options("tamper_fixtures", tasks, repo + "/out", repo);
    o.use_bwrap = false;
    o.run_as_uid = 0;
    o.run_as_gid = 0;
    const g::GradeResult first = g::grade(h.config, o);
    CHECK(task_of(first, "relu_backward").status == g::TaskStatus::Failed);
    o.out_dir = repo + "/out-again";
    const g::GradeResult second = g::grade(h.config, o);
    INFO(g::format_table(second, false));
    CHECK(task_of(second, "relu_backward").status == g::TaskStatus::Passed);
  }
}
