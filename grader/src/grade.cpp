// Grading one lab: build, run every task in the sandbox, score with trusted code (see grade.h).
#include "effml/grader/grade.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "effml/data.h"
#include "effml/metrics.h"
#include "effml/error.h"
#include "effml/grader/build.h"
#include "effml/grader/compare.h"
#include "effml/grader/files.h"
#include "effml/grader/model_checks.h"
#include "effml/grader/sandbox.h"
#include "effml/models.h"
#include "effml/safetensors.h"
#include "effml/train.h"
#include "grading.h"

namespace effml::grader {

namespace detail {


// What the student reads when their runner did not finish normally.
std::string describe_failed_run(const SandboxResult& r) {
  for (const std::string& line : split_lines(r.output)) {
    if (line.find("not implemented yet") != std::string::npos) return trim_right(line);
  }
  std::string message = "The runner " + r.reason() + ".";
  const std::string out = trim_right(r.output);
  if (!out.empty()) message += " Its output:\n" + first_lines(out, 20);
  return message;
}

// What is wrong with the JSON header of a safetensors file the child wrote, before the core's
// loader parses it in the grader's process; "" when nothing is (or when the loader will say it).
// The JSON library reads and writes nested values recursively, so a header of a few megabytes of
// '[' would overflow the grader's stack. A safetensors header nests 3 levels ({name: {"shape":
// [...]}}), and a lab's outputs or checkpoint need a header of a few kilobytes.
std::string unsafe_header(const std::string& path) {
  constexpr uint64_t kMaxHeaderBytes = uint64_t{16} << 20;
  constexpr int kMaxDepth = 8;
  std::ifstream in(path, std::ios::binary);
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8)) return "";
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  if (len > kMaxHeaderBytes) {
    return "its header is " + std::to_string(len) + " bytes long; at most 16 MiB is accepted";
  }
  std::string header(static_cast<std::size_t>(len), '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(len))) return "";
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : header) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) {
        return "its JSON header nests more than " + std::to_string(kMaxDepth) +
               " levels deep (a safetensors header nests 3)";
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return "";
}

// Reads a file the child wrote; "" and `out` filled when it is a valid safetensors file.
std::string load_child_output(const std::string& path, const std::string& shown,
                              SafetensorsFile& out) {
  if (!is_plain_file(path)) {
    return "The runner finished but did not write " + shown + ".";
  }
  const std::string unsafe = unsafe_header(path);
  if (!unsafe.empty()) return "The runner wrote an invalid " + shown + ": " + unsafe + ".";
  try {
    out = load_safetensors(path);
  } catch (const Error& e) {
    return "The runner wrote an invalid " + shown + ": " + first_lines(e.what(), 10);
  }
  return "";
}

TaskResult start_result(const Task& task) {
  TaskResult r;
  r.name = task.name;
  r.title = task.title;
  r.kind = task.kind;
  r.max_score = task.points;
  r.visibility = task.visibility;
  r.tags = task.tags;
  r.hidden = task.hidden;
  r.extra["kind"] = task_kind_name(task.kind);
  return r;
}

void pass(TaskResult& r, const std::string& output) {
  r.status = TaskStatus::Passed;
  r.score = r.max_score;
  r.output = output;
}

void fail(TaskResult& r, const std::string& output) {
  r.status = TaskStatus::Failed;
  r.score = 0;
  r.output = output;
}

// One case of an exact task: inputs, expected outputs, where the graded run happens.
struct ExactCase {
  std::string label;   // "case 2 of 3 (seed 123)" or "fixture linear_forward.safetensors"
  std::string inputs;  // path of the inputs file to copy into the run folder
  NamedTensors expected;
};

// Instructor mode: the reference writes inputs and expected outputs for a fresh seed.
ExactCase reference_case(Grading& g, const Task& task, int index) {
  const uint64_t seed =
      fnv1a64(task.name + "#" + std::to_string(index), g.seed) & 0x7fffffffffffffffULL;
  const std::string dir = g.ref_area + "/" + task.name + "." + std::to_string(index);
  make_dirs(dir);
  const SandboxResult gen =
      g.run(g.ref_runner, {"gen", task.name, std::to_string(seed), "inputs.safetensors"}, dir,
            task.limits, true);
  if (gen.kind != ExitKind::Ok) {
    throw Error("the reference runner could not generate inputs for " + task.name + " (seed " +
                std::to_string(seed) + "): it " + gen.reason() + "\n" +
                first_lines(gen.output, 20));
  }
  const SandboxResult run =
      g.run(g.ref_runner, {"run", task.name, "inputs.safetensors", "expected.safetensors"}, dir,
            task.limits, true);
  if (run.kind != ExitKind::Ok) {
    throw Error("the reference runner failed on " + task.name + " (seed " + std::to_string(seed) +
                "): it " + run.reason() + "\n" + first_lines(run.output, 20));
  }
  ExactCase c;
  c.label = "case " + std::to_string(index + 1) + " of " + std::to_string(task.seeds) + " (seed " +
            std::to_string(seed) + ")";
  c.inputs = dir + "/inputs.safetensors";
  c.expected = load_safetensors(dir + "/expected.safetensors").tensors;
  return c;
}

// Student mode: the cases are the lab's fixture files. Empty when there are none.
std::vector<ExactCase> fixture_cases(Grading& g, const Task& task) {
  std::vector<std::string> files;
  const std::string base = g.paths.lab_dir + "/fixtures/" + task.name;
  if (is_plain_file(base + ".safetensors")) files.push_back(base + ".safetensors");
  for (int k = 0; is_plain_file(base + "." + std::to_string(k) + ".safetensors"); ++k) {
    files.push_back(base + "." + std::to_string(k) + ".safetensors");
  }
  std::vector<ExactCase> cases;
  for (std::size_t k = 0; k < files.size(); ++k) {
    const SafetensorsFile f = load_safetensors(files[k]);
    ExactCase c;
    c.label = "fixture " + files[k].substr(files[k].find_last_of('/') + 1);
    NamedTensors inputs;
    for (const auto& [name, t] : f.tensors) {
      if (name.rfind("input.", 0) == 0) inputs.emplace_back(name.substr(6), t);
      if (name.rfind("expected.", 0) == 0) c.expected.emplace_back(name.substr(9), t);
    }
    EFFML_CHECK(!c.expected.empty(), files[k] << ": no tensor named expected.*");
    const std::string dir = g.work + "/fixtures/" + task.name + "." + std::to_string(k);
    make_dirs(dir);
    std::vector<std::pair<std::string, const Tensor*>> refs;
    for (const auto& [name, t] : inputs) refs.emplace_back(name, &t);
    c.inputs = dir + "/inputs.safetensors";
    save_safetensors(c.inputs, refs);
    cases.push_back(std::move(c));
  }
  return cases;
}

void grade_exact(Grading& g, const Task& task, TaskResult& r, std::vector<std::string>& warnings) {
  std::vector<ExactCase> fixtures;
  if (!g.instructor) {
    fixtures = fixture_cases(g, task);
    if (fixtures.empty()) {
      warnings.push_back(task.name + ": no fixture " + g.paths.lab_dir + "/fixtures/" + task.name +
                         ".safetensors (the release generates them with `effml fixtures " +
                         g.manifest.short_name + "`)");
      fail(r,
           "This task cannot be checked here: its fixture file is missing from the lab "
           "folder. Tell the course staff.");
      return;
    }
  }
  const int cases = g.instructor ? task.seeds : static_cast<int>(fixtures.size());
  double runner_seconds = 0, max_diff = 0;
  for (int i = 0; i < cases; ++i) {
    const ExactCase c =
        g.instructor ? reference_case(g, task, i) : fixtures[static_cast<std::size_t>(i)];
    const std::string dir = g.student_area + "/" + task.name + "." + std::to_string(i);
    remove_tree(dir);
    make_dirs(dir);
    copy_file(c.inputs, dir + "/inputs.safetensors");  // a copy: the run folder is handed over
    const SandboxResult run =
        g.run(g.student_runner, {"run", task.name, "inputs.safetensors", "outputs.safetensors"},
              dir, task.limits, false);
    runner_seconds += run.wall_seconds;
    r.extra["runner_seconds"] = runner_seconds;
    if (run.kind != ExitKind::Ok) {
      fail(r, c.label + ": " + describe_failed_run(run));
      r.extra["exit"] = exit_kind_name(run.kind);
      return;
    }
    SafetensorsFile got;
    const std::string bad =
        load_child_output(dir + "/outputs.safetensors", "outputs.safetensors", got);
    if (!bad.empty()) {
      fail(r, c.label + ": " + bad);
      return;
    }
    const Comparison cmp = compare_outputs(c.expected, got.tensors, task.tolerance);
    max_diff = std::max(max_diff, cmp.max_abs_diff);
    r.extra["max_abs_diff"] = max_diff;
    if (!cmp.ok) {
      r.extra["mismatches"] = cmp.mismatches;
      fail(r, c.label + ": " + cmp.message);
      return;
    }
  }
  r.extra["cases"] = cases;
  std::string how = g.instructor
                        ? std::to_string(cases) + (cases == 1 ? " random case" : " random cases")
                        : std::to_string(cases) + (cases == 1 ? " fixture" : " fixtures");
  char diff[64];
  std::snprintf(diff, sizeof diff, "%.3g", max_diff);
  pass(r, "All outputs match (" + how + "; largest difference " + diff + ").");
}

// Runs a task whose runner writes one file (`run TASK none FILE`) in a fresh folder; returns its
// path, or "" after failing `r` with the reason.
std::string run_file_task(Grading& g, const Task& task, TaskResult& r, const std::string& file) {
  const std::string dir = g.student_area + "/" + task.name;
  remove_tree(dir);
  make_dirs(dir);
  const SandboxResult run = g.run(g.student_runner, {"run", task.name, "none", file}, dir,
                                  task.limits, false);
  r.extra["runner_seconds"] = run.wall_seconds;
  if (!task.calibration.empty()) r.extra["calibration"] = task.calibration;
  if (run.kind != ExitKind::Ok) {
    r.extra["exit"] = exit_kind_name(run.kind);
    fail(r, describe_failed_run(run));
    return "";
  }
  const std::string path = dir + "/" + file;
  if (!is_plain_file(path)) {
    fail(r, "The runner finished but did not write " + file + ".");
    return "";
  }
  return path;
}

// An effml::Error's message about `path`, with the path (meaningless to a student) shortened
// to the file's name.
std::string without_path(const Error& e, const std::string& path, const std::string& file) {
  std::string why = e.what();
  if (why.rfind(path, 0) == 0) why = file + why.substr(path.size());
  return why;
}

// Runs a task whose runner writes a checkpoint (`run TASK none model.safetensors`) and loads
// it into `model`; on failure, fails `r` with the reason and returns false.
bool run_checkpoint_task(Grading& g, const Task& task, TaskResult& r, const std::string& model_name,
                         std::unique_ptr<Sequential>& model, const std::vector<int64_t>* vgg_like) {
  const std::string path = run_file_task(g, task, r, "model.safetensors");
  if (path.empty()) return false;
  const std::string unsafe = unsafe_header(path);
  if (!unsafe.empty()) {
    fail(r, "The checkpoint cannot be loaded into " + model_name + ": " + unsafe + ".");
    return false;
  }
  try {
    model = vgg_like ? make_vgg(vgg_widths_from(path, *vgg_like)) : make_model(model_name, 0);
    load_checkpoint(path, *model);
  } catch (const Error& e) {
    fail(r, "The checkpoint cannot be loaded into " + model_name + ": " +
                without_path(e, path, "model.safetensors"));
    return false;
  }
  return true;
}

void grade_accuracy(Grading& g, const Task& task, TaskResult& r) {
  r.extra["threshold"] = task.threshold;
  std::unique_ptr<Sequential> model;
  if (!run_checkpoint_task(g, task, r, task.model, model, nullptr)) return;
  const Dataset& test = g.fashion_mnist_test();
  const EvalResult eval = evaluate(*model, test);
  r.extra["accuracy"] = eval.accuracy;
  r.extra["test_images"] = eval.count;
  const std::string measured = "Test accuracy " + percent(eval.accuracy) + " (threshold " +
                               percent(task.threshold) + "), measured by the grader on the " +
                               std::to_string(eval.count) + " Fashion-MNIST test images.";
  if (eval.accuracy >= task.threshold) {
    pass(r, measured);
  } else {
    fail(r, measured);
  }
}


void grade_manual(Grading& g, const Task& task, const std::string& impl_dir, TaskResult& r) {
  r.tags.push_back("manual");
  r.extra["pending_manual_grading"] = true;
  const std::string path = impl_dir + "/" + task.answers_file;
  const std::string points =
      fixed(task.points, task.points == static_cast<int>(task.points) ? 0 : 1);
  if (!is_plain_file(path) || trim_right(read_file(path)).empty()) {
    fail(r, "Manually graded (" + points + " points): no " + task.answers_file +
                " with your answers was found, so there is nothing to grade.");
    return;
  }
  const std::string answers = read_file(path);
  const std::string handout = g.paths.lab_dir + "/" + task.answers_file;
  if (impl_dir != g.paths.lab_dir && is_plain_file(handout) && read_file(handout) == answers) {
    fail(r, "Manually graded (" + points + " points): " + task.answers_file +
                " is unchanged from the handout; write your answers in it.");
    return;
  }
  const std::string kept = absolute_path(g.options.out_dir) + "/answers";
  make_dirs(kept);
  write_file(kept + "/" + task.answers_file, answers);
  r.status = TaskStatus::Pending;
  r.score = 0;
  r.extra["answers_path"] = kept + "/" + task.answers_file;
  r.output = "Manually graded (" + points + " points): your answers were collected (" +
             std::to_string(split_lines(answers).size()) +
             " lines); the points are added once they have been read.";
}

uint64_t fresh_seed() {
  std::random_device rd;
  return ((static_cast<uint64_t>(rd()) << 32) ^ rd()) & 0x7fffffffffffffffULL;
}

}  // namespace detail

using namespace detail;

const char* task_status_name(TaskStatus status) {
  switch (status) {
    case TaskStatus::Passed:
      return "passed";
    case TaskStatus::Failed:
      return "failed";
    case TaskStatus::Pending:
      return "pending";
  }
  return "unknown";
}

double GradeResult::score() const {
  double s = 0;
  for (const auto& t : tasks) s += t.score;
  return s;
}

double GradeResult::max_score() const {
  double s = 0;
  for (const auto& t : tasks) s += t.max_score;
  return s;
}

double GradeResult::autograded_max_score() const {
  double s = 0;
  for (const auto& t : tasks) {
    if (t.kind != TaskKind::Manual) s += t.max_score;
  }
  return s;
}

int GradeResult::count(TaskStatus status) const {
  int n = 0;
  for (const auto& t : tasks) n += t.status == status ? 1 : 0;
  return n;
}

GradeResult grade(const GraderConfig& config, const GradeOptions& options) {
  const auto start = Clock::now();
  EFFML_CHECK(!options.out_dir.empty(), "grade: no output folder given");
  const std::string repo =
      absolute_path(options.repo_root.empty() ? config.source_dir : options.repo_root);
  const LabPaths paths = find_lab(repo, options.lab);
  const Manifest manifest = load_manifest(paths);

  GradeResult result;
  result.lab = manifest.lab;
  result.short_name = manifest.short_name;
  result.title = manifest.title;
  result.mode = paths.reference_dir.empty() ? "student" : "instructor";
  switch (options.impl) {
    case ImplKind::Stub:
      result.impl = "stub";
      result.impl_dir = paths.lab_dir;
      break;
    case ImplKind::Reference:
      result.impl = "reference";
      if (paths.reference_dir.empty()) {
        throw Error("--impl reference: there is no " + repo + "/reference/" + paths.name +
                    " (the reference solutions are only in the instructor's repository)");
      }
      result.impl_dir = paths.reference_dir;
      break;
    case ImplKind::Submission:
      result.impl = "submission";
      result.impl_dir = absolute_path(options.submission_dir);
      if (!is_dir(result.impl_dir)) {
        throw Error("the submission folder " + options.submission_dir + " does not exist");
      }
      break;
  }
  for (const auto& name : options.only_tasks) {
    if (manifest.find_task(name) == nullptr) {
      std::string list;
      for (const auto& t : manifest.tasks) list += (list.empty() ? "" : ", ") + t.name;
      throw Error("lab " + manifest.short_name + " has no task '" + name + "'; its tasks: " + list);
    }
  }

  Grading g(config, options, manifest, paths);
  g.repo = repo;
  g.cache = absolute_path(options.cache_dir.empty() ? config.binary_dir + "/grader-cache"
                                                    : options.cache_dir);
  g.work = absolute_path(options.out_dir) + "/work";
  g.ref_area = g.work + "/ref";
  g.student_area = g.work + "/student";
  g.instructor = !paths.reference_dir.empty();
  g.threads = options.threads > 0
                  ? options.threads
                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The work folder is replaced on every run; a folder of that name that the grader did not
  // make is left alone (the output folder could be anything the user named).
  const std::string marker = g.work + "/.effml-grade-work";
  if (is_dir(g.work) && !is_plain_file(marker)) {
    throw Error(g.work + " exists and was not made by effml grade; choose another output folder");
  }
  remove_tree(g.work);
  make_dirs(g.work);
  write_file(marker, "Scratch space of effml grade, replaced on every run.\n");
  make_dirs(g.ref_area);
  make_dirs(g.student_area);
  ::chmod(g.ref_area.c_str(), 0700);  // without bubblewrap, permissions are what hides it
  result.bwrap = options.use_bwrap && bwrap_available();
  if (g.instructor) {
    g.seed = options.seed ? *options.seed : fresh_seed();
    result.seed = g.seed;
  }

  // The reference's runner (instructor mode): trusted, must build.
  if (g.instructor) {
    g.say("building the reference runner (it writes the inputs and the expected outputs)");
    BuildRequest req;
    req.lab_dir = paths.lab_dir;
    req.impl_dir = paths.reference_dir;
    req.scratch_dir = g.ref_area + "/build";
    req.cache_dir = g.cache;
    req.use_bwrap = options.use_bwrap;
    req.run_as_uid = static_cast<uint32_t>(::geteuid());
    req.run_as_gid = static_cast<uint32_t>(::getegid());
    req.trusted = true;
    const BuildResult ref = build_runner(config, manifest, req);
    if (!ref.ok)
      throw Error("the reference of " + manifest.lab + " does not build:\n" + ref.message);
    g.ref_runner = g.ref_area + "/runner";
    link_or_copy(ref.runner_path, g.ref_runner);
    g.say("reference runner built in " + fixed(ref.seconds, 1) + " s" +
          (ref.cached ? " (cached)" : ""));
  }

  // The graded runner: sees neither reference/ nor the cache nor the reference's area.
  g.say("building the runner to grade (" + result.impl + ": " + result.impl_dir + ")");
  BuildRequest req;
  req.lab_dir = paths.lab_dir;
  req.impl_dir = result.impl_dir;
  req.scratch_dir = g.student_area + "/build";
  req.cache_dir = g.cache;
  req.hidden_paths = {repo + "/reference", g.cache, g.ref_area};
  req.use_bwrap = options.use_bwrap;
  req.run_as_uid = options.run_as_uid;
  req.run_as_gid = options.run_as_gid;
  // Without a reference (student mode) the graded files are the only implementation there is.
  req.trusted = !g.instructor;
  const BuildResult built = build_runner(config, manifest, req);
  result.build_ok = built.ok;
  result.build_message = built.message;
  result.build_cached = built.cached;
  result.build_seconds = built.seconds;
  if (built.ok) {
    g.student_runner = g.student_area + "/runner";
    link_or_copy(built.runner_path, g.student_runner);
    g.say(std::string("built in ") + fixed(built.seconds, 1) + " s" +
          (built.cached ? " (cached)" : ""));
  } else {
    g.say("the build failed; every task fails with its message");
  }

  std::vector<const Task*> tasks;
  for (const Task& t : manifest.tasks) {
    bool wanted = options.only_tasks.empty();
    for (const auto& name : options.only_tasks) wanted = wanted || name == t.name;
    if (wanted) tasks.push_back(&t);
  }
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const Task& task = *tasks[i];
    const auto task_start = Clock::now();
    TaskResult r = start_result(task);
    if (task.kind == TaskKind::Manual) {
      grade_manual(g, task, result.impl_dir, r);
    } else if (!built.ok) {
      fail(r, "The build failed, so this task could not run:\n" + built.message);
    } else if (task.kind == TaskKind::Exact) {
      grade_exact(g, task, r, result.warnings);
    } else if (task.kind == TaskKind::Accuracy) {
      grade_accuracy(g, task, r);
    } else if (task.kind == TaskKind::Model) {
      grade_model(g, task, r);
    } else {
      fail(r, "Speed tasks are not graded by this version of the grader.");
    }
    r.seconds = since(task_start);
    g.say("[" + std::to_string(i + 1) + "/" + std::to_string(tasks.size()) + "] " + task.name +
          ": " + task_status_name(r.status) + " (" + fixed(r.seconds, 2) + " s)");
    result.tasks.push_back(std::move(r));
  }
  result.seconds = since(start);
  return result;
}

}  // namespace effml::grader
