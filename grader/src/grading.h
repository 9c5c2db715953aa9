// Internal to the grader's sources: the state one grade() call shares and the helpers that the
// files grading each kind of task use (grade.cpp: exact, accuracy and manual tasks, and grade();
// grade_model.cpp: model tasks). Not part of the grader's API.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/grader/config.h"
#include "effml/grader/files.h"
#include "effml/grader/grade.h"
#include "effml/grader/manifest.h"
#include "effml/grader/model_checks.h"
#include "effml/grader/sandbox.h"
#include "effml/models.h"
#include "effml/quantized.h"
#include "effml/safetensors.h"
#include "effml/train.h"

namespace effml::grader::detail {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

inline std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

inline std::string percent(double fraction) { return fixed(100.0 * fraction, 2) + "%"; }

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
      // A VGG baseline may have other widths than make_model's.
      auto copy = model_name == "vgg" ? make_vgg(vgg_config(*model)) : make_model(model_name, 0);
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
std::string describe_failed_run(const SandboxResult& r);
// Why a checkpoint's header is unsafe to load ("" when it is fine).
std::string unsafe_header(const std::string& path);
void pass(TaskResult& r, const std::string& output);
void fail(TaskResult& r, const std::string& output);
// Runs a task whose runner writes one file (`run TASK none FILE`) in a fresh folder; returns its
// path, or "" after failing `r` with the reason.
std::string run_file_task(Grading& g, const Task& task, TaskResult& r, const std::string& file);
// An effml::Error's message about `path`, with the path (meaningless to a student) shortened to
// the file's name.
std::string without_path(const Error& e, const std::string& path, const std::string& file);
// Runs a task whose runner writes a checkpoint and loads it into `model` (a VGG of any widths
// when `vgg_like` gives the baseline's cfg); on failure, fails `r` and returns false.
bool run_checkpoint_task(Grading& g, const Task& task, TaskResult& r, const std::string& model_name,
                         std::unique_ptr<Sequential>& model, const std::vector<int64_t>* vgg_like);
// A model task (grade_model.cpp): the grader measures what the runner wrote against the lab's
// baseline and applies the checks the manifest sets.
void grade_model(Grading& g, const Task& task, TaskResult& r);

}  // namespace effml::grader::detail
