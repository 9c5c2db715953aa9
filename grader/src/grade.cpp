// Grading one lab: build, run every task in the sandbox, score with trusted code (see grade.h).
#include "effml/grader/grade.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
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
#include "effml/deep_compression.h"
#include "effml/models.h"
#include "effml/quantized.h"
#include "effml/safetensors.h"
#include "effml/train.h"

namespace effml::grader {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string percent(double fraction) { return fixed(100.0 * fraction, 2) + "%"; }

// Everything one grade() call shares; nothing here outlives it.
struct Grading {
  Grading(const GraderConfig& c, const GradeOptions& o, const Manifest& m, LabPaths p)
      : config(c), options(o), manifest(m), paths(std::move(p)) {}

  const GraderConfig& config;
  const GradeOptions& options;
  const Manifest& manifest;
  LabPaths paths;
  std::string repo;
  std::string cache;
  std::string work;          // <out>/work
  std::string ref_area;      // <work>/ref: reference build, inputs, expected outputs
  std::string student_area;  // <work>/student: the graded build and runs
  std::string ref_runner;
  std::string student_runner;
  bool instructor = false;
  uint64_t seed = 0;
  int threads = 1;
  std::unique_ptr<Dataset> test_set;      // loaded on first use
  std::unique_ptr<Dataset> test_set_raw;  // loaded on first use

  // A model task's baseline, loaded and measured once per grading; its accuracy (10,000 test
  // images) only when a returned model needs comparing, so a failing runner costs nothing more.
  struct Baseline {
    std::unique_ptr<Sequential> model;
    std::optional<double> accuracy_;
    ModelFigures figures;
    std::map<int, double> ptq_accuracy_;  // by bits
    // Test accuracy of the baseline with every 2+-dim weight quantized per channel at `bits`.
    double ptq_accuracy(Grading& g, int bits, const std::string& model_name) {
      auto it = ptq_accuracy_.find(bits);
      if (it != ptq_accuracy_.end()) return it->second;
      auto copy = make_model(model_name, 0);
      if (model_name == "vgg") copy = make_vgg(vgg_config(*model));
      const auto src = model->named_parameters();
      const auto dst = copy->named_parameters();
      for (std::size_t i = 0; i < src.size(); ++i) {
        const Tensor& v = src[i].param->value;
        dst[i].param->value.copy_(v.dim() >= 2 ? fake_quantize_per_channel(v, bits) : v);
      }
      const auto bsrc = model->named_buffers();
      const auto bdst = copy->named_buffers();
      for (std::size_t i = 0; i < bsrc.size(); ++i) bdst[i].tensor->copy_(*bsrc[i].tensor);
      return ptq_accuracy_[bits] = evaluate(*copy, g.fashion_mnist_test()).accuracy;
    }
    double accuracy(Grading& g) {
      if (!accuracy_) accuracy_ = evaluate(*model, g.fashion_mnist_test()).accuracy;
      return *accuracy_;
    }
  };
  std::map<std::string, Baseline> baselines;  // by file name

  void say(const std::string& line) const {
    if (options.progress) options.progress(manifest.short_name + ": " + line);
  }

  // Runs a runner in `workdir`. Trusted runs (the reference) may see everything; graded runs
  // do not see reference/, the build cache or the reference's area.
  SandboxResult run(const std::string& runner, const std::vector<std::string>& args,
                    const std::string& workdir, const RunLimits& limits, bool trusted) const {
    SandboxOptions o;
    o.argv = {runner};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.workdir = workdir;
    o.use_bwrap = options.use_bwrap;
    const std::string data = default_fashion_mnist_dir();
    // EFFML_LAB_DIR: where a runner finds the lab's data files (a model task's baseline);
    // always the lab folder of this tree, never a submission's.
    o.env = {{"OMP_NUM_THREADS", std::to_string(threads)},
             {"EFFML_FASHION_MNIST_DIR", data},
             {"EFFML_LAB_DIR", absolute_path(paths.lab_dir)}};
    if (is_dir(data)) o.readonly_paths.push_back(data);
    // Bound read-only: a tree under /tmp is otherwise hidden by the sandbox's private /tmp.
    o.readonly_paths.push_back(absolute_path(paths.lab_dir));
    if (trusted) {
      o.run_as_uid = static_cast<uint32_t>(::geteuid());
      o.run_as_gid = static_cast<uint32_t>(::getegid());
    } else {
      o.hidden_paths = {repo + "/reference", cache, ref_area};
      o.run_as_uid = options.run_as_uid;
      o.run_as_gid = options.run_as_gid;
    }
    SandboxLimits l;
    l.wall_seconds = limits.wall_seconds;
    l.cpu_seconds = limits.cpu_seconds;
    l.memory_bytes = limits.memory_mb << 20;
    l.output_bytes = limits.output_kb << 10;
    l.file_bytes = limits.file_mb << 20;
    l.processes = limits.processes;
    SandboxResult r = run_sandboxed(o, l);
    if (r.kind == ExitKind::StartFailed) {
      throw Error("cannot start " + runner + " in the sandbox: " + r.start_error);
    }
    return r;
  }

  const Dataset& fashion_mnist_test() {
    if (!test_set) test_set = std::make_unique<Dataset>(load_fashion_mnist("test"));
    return *test_set;
  }

  // The test images scaled to [0, 1], not normalised: what integer-only models read.
  const Dataset& fashion_mnist_test_raw() {
    if (!test_set_raw) {
      test_set_raw = std::make_unique<Dataset>(
          load_fashion_mnist("test", default_fashion_mnist_dir(), false));
    }
    return *test_set_raw;
  }

  // The lab's trusted checkpoint `file` loaded into `model_name`, with its accuracy.
  Baseline& baseline(const std::string& file, const std::string& model_name) {
    auto it = baselines.find(file);
    if (it != baselines.end()) return it->second;
    Baseline b;
    b.model = make_model(model_name, 0);
    load_checkpoint(paths.lab_dir + "/" + file, *b.model);  // an error here is the grader's
    b.figures = measure_figures(*b.model);
    return baselines.emplace(file, std::move(b)).first->second;
  }
};

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

// Runs a task whose runner writes a checkpoint (`run TASK none model.safetensors`) and loads
// it into `model`; on failure, fails `r` with the reason and returns false.
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

std::string points_text(double v) { return fixed(100.0 * v, 2) + " points"; }

// The accuracy checks a model task sets (max_accuracy_drop, max_accuracy_change), each passed to
// `check` with its line; `drop` is the baseline's accuracy minus the model's.
void check_accuracy(const Task& task, const std::string& accuracy_line, double drop,
                    const std::function<void(bool, const std::string&)>& check) {
  if (task.max_accuracy_drop) {
    check(drop <= *task.max_accuracy_drop + 1e-12,
          accuracy_line + ": a loss of " + points_text(drop) + " (limit " +
              points_text(*task.max_accuracy_drop) + ").");
  }
  if (task.max_accuracy_change) {
    check(std::abs(drop) <= *task.max_accuracy_change + 1e-12,
          accuracy_line + ": a change of " + points_text(std::abs(drop)) + " (limit " +
              points_text(*task.max_accuracy_change) + ").");
  }
}

// The report of a model task: failed checks first, then passed ones, then `details`.
void finish_model_task(TaskResult& r, const std::vector<std::string>& failed,
                       const std::vector<std::string>& passed, const std::string& details) {
  std::string text;
  for (const auto& line : failed) text += (text.empty() ? "" : "\n") + ("FAILED: " + line);
  for (const auto& line : passed) text += (text.empty() ? "" : "\n") + line;
  text += "\n" + details;
  if (failed.empty()) {
    pass(r, text);
  } else {
    fail(r, text);
  }
}

// A model task of format quantized_vgg: the runner's integer-only VGG, run by the grader's own
// int8 kernels (effml/quantized.h) on the test images, against the fp32 baseline.
void grade_quantized_vgg(Grading& g, const Task& task, TaskResult& r) {
  Grading::Baseline& base = g.baseline(task.baseline, task.model);
  const std::vector<int64_t> base_cfg = vgg_config(*base.model);
  const std::string path = run_file_task(g, task, r, "model.safetensors");
  if (path.empty()) return;
  QuantizedVgg q;
  try {
    q = load_quantized_vgg(path);
  } catch (const Error& e) {
    fail(r, "The integer-only model cannot be loaded: " + without_path(e, path, "model.safetensors"));
    return;
  }
  if (q.cfg != base_cfg) {
    fail(r, "The integer-only model's widths differ from the baseline VGG's: quantize the "
            "baseline itself.");
    return;
  }
  const Dataset& raw = g.fashion_mnist_test_raw();
  const double accuracy = quantized_accuracy(q, raw.images, raw.labels);
  const double base_accuracy = base.accuracy(g);
  const double drop = base_accuracy - accuracy;
  r.extra["accuracy"] = accuracy;
  r.extra["baseline_accuracy"] = base_accuracy;
  r.extra["size_bytes"] = q.parameter_bytes();
  r.extra["baseline_size_bytes"] = base.figures.dense_bytes;
  std::string zero_points;
  for (const QuantizedLayer& l : q.convs) {
    zero_points += (zero_points.empty() ? "" : ", ") + l.name + " " +
                   std::to_string(l.output_zero_point);
  }
  const std::string accuracy_line = "Integer-only test accuracy " + percent(accuracy) +
                                    ", fp32 model " + percent(base_accuracy);
  std::vector<std::string> passed, failed;
  auto check = [&](bool ok, const std::string& line) { (ok ? passed : failed).push_back(line); };
  check_accuracy(task, accuracy_line, drop, check);
  finish_model_task(r, failed, passed,
                    "Measured by the grader's int8 kernels on the " + std::to_string(raw.size()) +
                        " Fashion-MNIST test images (pixels p read as p - 128). Parameters " +
                        with_commas(q.parameter_bytes()) +
                        " bytes (int8 weights, int32 biases and multipliers) against " +
                        fixed(base.figures.dense_bytes, 0) +
                        " for the fp32 model. Output zero points of the conv blocks: " +
                        zero_points + ".");
}

// A model task of format deep_compression: the grader decodes every weight of the runner's file
// (effml/deep_compression.h) into `model`, and measures the file's real size and the decoded
// model's accuracy.
void grade_deep_compression(Grading& g, const Task& task, TaskResult& r) {
  Grading::Baseline& base = g.baseline(task.baseline, task.model);
  const std::string path = run_file_task(g, task, r, "model.efdc");
  if (path.empty()) return;
  auto model = make_model(task.model, 0);
  DeepCompressedSize size;
  try {
    size = deep_compressed_size(path);
    load_deep_compressed_into(path, *model);
  } catch (const Error& e) {
    fail(r, "The Deep Compression file cannot be decoded into " + task.model + ": " +
                without_path(e, path, "model.efdc"));
    return;
  }
  const ModelFigures f = measure_figures(*model);
  const EvalResult eval = evaluate(*model, g.fashion_mnist_test());
  const double base_accuracy = base.accuracy(g);
  const double drop = base_accuracy - eval.accuracy;
  const double fraction = static_cast<double>(size.total) / base.figures.dense_bytes;
  r.extra["accuracy"] = eval.accuracy;
  r.extra["baseline_accuracy"] = base_accuracy;
  r.extra["size_bytes"] = size.total;
  r.extra["baseline_size_bytes"] = base.figures.dense_bytes;
  r.extra["size_fraction"] = fraction;
  r.extra["compression_ratio"] = 1.0 / fraction;
  r.extra["size_parts"] = {{"gap_stream", size.gap_stream}, {"symbol_stream", size.symbol_stream},
                           {"codebooks", size.codebooks}, {"code_tables", size.code_tables},
                           {"raw", size.raw}, {"header", size.header}};
  std::vector<std::string> passed, failed;
  auto check = [&](bool ok, const std::string& line) { (ok ? passed : failed).push_back(line); };
  const std::string size_line =
      "File " + with_commas(static_cast<int64_t>(size.total)) + " bytes = " + percent(fraction) +
      " of the dense model's " + fixed(base.figures.dense_bytes, 0) + " (" +
      fixed(1.0 / fraction, 1) + "x smaller): gap streams " + with_commas(size.gap_stream) +
      ", symbol streams " + with_commas(size.symbol_stream) + ", codebooks " +
      with_commas(size.codebooks) + ", code tables " + with_commas(size.code_tables) +
      ", raw tensors " + with_commas(size.raw) + ", header " + with_commas(size.header);
  if (task.max_size_fraction) {
    check(fraction <= *task.max_size_fraction,
          size_line + " (limit " + percent(*task.max_size_fraction) + ", " +
              fixed(1.0 / *task.max_size_fraction, 1) + "x).");
  } else {
    passed.push_back(size_line + ".");
  }
  const std::string accuracy_line = "Decoded model's test accuracy " + percent(eval.accuracy) +
                                    ", dense model " + percent(base_accuracy);
  check_accuracy(task, accuracy_line, drop, check);
  if (!task.max_accuracy_drop && !task.max_accuracy_change) {
    passed.push_back(accuracy_line + " (reported, not checked).");
  }
  std::string layer_text;
  int64_t most = 0;
  for (const LayerSparsity& l : f.layers) {
    layer_text += "\n  " + l.name + ": " + std::to_string(l.nonzeros) + " of " +
                  std::to_string(l.numel) + " non-zero (" + percent(1.0 - l.sparsity()) +
                  "), " + std::to_string(l.distinct) + " distinct values";
    most = std::max(most, l.distinct);
  }
  if (task.max_distinct_values) {
    check(most <= *task.max_distinct_values,
          "At most " + std::to_string(most) + " distinct values per weight, 0 included (limit " +
              std::to_string(*task.max_distinct_values) + ").");
  }
  finish_model_task(r, failed, passed,
                    "Decoded and measured by the grader on the " + std::to_string(eval.count) +
                        " Fashion-MNIST test images; weights:" + layer_text);
}

// A model task: the grader measures the returned checkpoint against the lab's baseline and
// applies the checks the manifest sets (see manifest.h). Every check is reported, passed or not.
void grade_model(Grading& g, const Task& task, TaskResult& r) {
  if (task.format == ModelFormat::QuantizedVgg) {
    grade_quantized_vgg(g, task, r);
    return;
  }
  if (task.format == ModelFormat::DeepCompression) {
    grade_deep_compression(g, task, r);
    return;
  }
  Grading::Baseline& base = g.baseline(task.baseline, task.model);
  std::vector<int64_t> base_cfg;
  if (task.model == "vgg") base_cfg = vgg_config(*base.model);
  std::unique_ptr<Sequential> model;
  if (!run_checkpoint_task(g, task, r, task.model, model, task.model == "vgg" ? &base_cfg : nullptr))
    return;
  const ModelFigures f = measure_figures(*model);
  const EvalResult eval = evaluate(*model, g.fashion_mnist_test());
  r.extra["accuracy"] = eval.accuracy;
  const double base_accuracy = base.accuracy(g);
  r.extra["baseline_accuracy"] = base_accuracy;
  r.extra["parameters"] = f.parameters;
  r.extra["nonzeros"] = f.nonzeros;
  r.extra["size_bytes"] = f.sparse_bytes;
  r.extra["baseline_size_bytes"] = base.figures.dense_bytes;
  r.extra["macs"] = f.macs;
  r.extra["baseline_macs"] = base.figures.macs;
  nlohmann::json layers = nlohmann::json::array();
  std::string layer_text;
  for (const LayerSparsity& l : f.layers) {
    layers.push_back({{"name", l.name}, {"numel", l.numel}, {"nonzeros", l.nonzeros},
                      {"distinct_values", l.distinct}, {"sparsity", l.sparsity()}});
    layer_text += "\n  " + l.name + ": sparsity " + percent(l.sparsity()) + " (" +
                  std::to_string(l.nonzeros) + " of " + std::to_string(l.numel) + " kept)";
  }
  r.extra["layers"] = layers;

  std::vector<std::string> passed, failed;
  auto check = [&](bool ok, const std::string& line) { (ok ? passed : failed).push_back(line); };
  const double size_fraction = f.sparse_bytes / base.figures.dense_bytes;
  r.extra["size_fraction"] = size_fraction;
  if (task.max_size_fraction) {
    check(size_fraction <= *task.max_size_fraction,
          "Size " + fixed(f.sparse_bytes, 0) + " bytes = " + percent(size_fraction) +
              " of the dense model's " + fixed(base.figures.dense_bytes, 0) +
              " (limit " + percent(*task.max_size_fraction) +
              "; pruned weights stored as a bitmask plus the non-zero values).");
  }
  const double drop = base_accuracy - eval.accuracy;
  const std::string accuracy_line = "Test accuracy " + percent(eval.accuracy) + ", dense model " +
                                    percent(base_accuracy);
  check_accuracy(task, accuracy_line, drop, check);
  if (task.channels_sorted) {
    const std::string order = check_channel_order(*model);
    check(order.empty(), order.empty() ? "Channels sorted by importance." : "Channels: " + order + ".");
  }
  if (task.channel_ratio) {
    const std::vector<int64_t> want = vgg_pruned_config(base_cfg, *task.channel_ratio);
    const std::vector<int64_t> got = vgg_config(*model);
    auto text = [](const std::vector<int64_t>& cfg) {
      std::string t;
      for (int64_t c : cfg) t += (t.empty() ? "" : ",") + (c == 0 ? std::string("M") : std::to_string(c));
      return "{" + t + "}";
    };
    const int64_t formula = vgg_macs_formula(want);
    r.extra["macs_formula"] = formula;
    check(got == want, "Widths " + text(got) + (got == want ? " as expected" : ", expected " + text(want)) +
                           " at prune ratio " + fixed(*task.channel_ratio, 2) + ".");
    check(f.macs == formula, "MACs per image " + with_commas(f.macs) + " (formula: " +
                                 with_commas(formula) + "; dense model " +
                                 with_commas(base.figures.macs) + ", " +
                                 fixed(static_cast<double>(base.figures.macs) / f.macs, 2) + "x more).");
  }
  if (task.min_speedup) {
    const LatencyPair lat = measure_latency_pair(*base.model, *model);
    const double speedup = lat.baseline_ms / lat.model_ms;
    r.extra["latency_ms"] = lat.model_ms;
    r.extra["baseline_latency_ms"] = lat.baseline_ms;
    r.extra["speedup"] = speedup;
    check(speedup >= *task.min_speedup,
          "Batch-1 latency " + fixed(lat.model_ms, 3) + " ms against the dense model's " +
              fixed(lat.baseline_ms, 3) + " ms, measured in turn in this run (1 thread): " +
              fixed(speedup, 2) + "x faster (at least " + fixed(*task.min_speedup, 2) + "x).");
  }
  if (task.max_distinct_values) {
    std::string worst;
    int64_t most = 0;
    for (const LayerSparsity& l : f.layers) {
      if (l.distinct > most) {
        most = l.distinct;
        worst = l.name;
      }
    }
    check(most <= *task.max_distinct_values,
          "At most " + std::to_string(most) + " distinct values per weight (" + worst +
              "; limit " + std::to_string(*task.max_distinct_values) + ").");
  }
  if (task.ptq_bits) {
    const int bits = *task.ptq_bits;
    int64_t most = 0;
    std::string worst;
    for (const auto& p : model->named_parameters()) {
      if (p.param->value.dim() < 2) continue;
      const int64_t levels = max_levels_per_channel(p.param->value);
      if (levels > most) {
        most = levels;
        worst = p.name;
      }
    }
    const int64_t limit = int64_t{1} << bits;
    r.extra["max_levels_per_channel"] = most;
    check(most <= limit, "At most " + std::to_string(most) + " distinct values per output channel (" +
                             worst + "; limit " + std::to_string(limit) + " at " +
                             std::to_string(bits) + " bits).");
    const double ptq = base.ptq_accuracy(g, bits, task.model);
    r.extra["ptq_accuracy"] = ptq;
    check(eval.accuracy > ptq,
          "Test accuracy " + percent(eval.accuracy) + " against " + percent(ptq) +
              " for the dense model quantized after training (" + std::to_string(bits) +
              " bits per output channel, symmetric, measured by the grader): " +
              (eval.accuracy > ptq ? "better by " : "not better: ") +
              points_text(eval.accuracy - ptq) + ".");
  }
  if (!task.max_accuracy_drop && !task.max_accuracy_change) {
    passed.push_back(accuracy_line + " (reported, not checked).");
  }
  finish_model_task(r, failed, passed,
                    "Measured by the grader on the " + std::to_string(eval.count) +
                        " Fashion-MNIST test images; weights:" + layer_text);
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

}  // namespace

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
