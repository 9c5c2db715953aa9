/// \file manifest.h
/// \brief A lab's manifest.json: its tasks, points, kinds, limits and the files a submission
/// may contain; merged with `reference/LAB/manifest.hidden.json` when that file exists.
///
/// Format (every field is checked; an unknown field is an error, so a typo cannot pass
/// silently):
///
/// ```json
/// {"lab": "lab0_tensor", "short_name": "lab0", "title": "Lab 0: the tensor core",
///  "student_files": ["lab0.cpp"], "public_headers": ["lab0.h"], "runner": "runner.cpp",
///  "limits": {"wall_seconds": 30, "cpu_seconds": 60, "memory_mb": 2048, "output_kb": 256},
///  "forbidden_symbols": ["effml::Linear::"],
///  "tasks": [
///    {"name": "linear_forward", "title": "Task 1: Linear forward", "points": 10,
///     "kind": "exact", "visibility": "visible", "tags": ["task1"], "seeds": 3,
///     "tolerance": {"float32": {"rtol": 1e-4, "atol": 1e-5}}},
///    {"name": "train_lenet300", "title": "Task 6", "points": 20, "kind": "accuracy",
///     "model": "lenet300", "threshold": 0.86, "limits": {"wall_seconds": 300},
///     "calibration": "how the threshold was measured"},
///    {"name": "prune_finetune", "title": "Pruned and fine-tuned", "points": 20,
///     "kind": "model", "model": "vgg", "baseline": "vgg_dense.safetensors",
///     "max_size_fraction": 0.25, "max_accuracy_drop": 0.005},
///    {"name": "questions", "title": "Written questions", "points": 10, "kind": "manual",
///     "answers_file": "ANSWERS.md"}]}
/// ```
///
/// A *model* task's runner writes a checkpoint of `model` (for `vgg`, of any widths: the grader
/// reads them from the weights' shapes); the grader loads it and the lab's `baseline`, measures
/// both itself (test accuracy, size with pruned weights in the bitmask format, MACs, latency)
/// and applies the checks the task sets: `max_size_fraction`, `max_accuracy_drop`,
/// `max_accuracy_change`, `channels_sorted`, `channel_ratio` (exact widths and MACs of a VGG
/// whose convs but the last keep max(1, round(C (1 - ratio))) channels), `min_speedup`
/// (batch-1 latency of the baseline over the model's, same run, interleaved) and
/// `max_distinct_values` (every weight of two or more dimensions holds at most that many
/// distinct values: a k-means codebook of that size) and `ptq_bits` (quantization-aware training:
/// at most 2^bits values per output channel of each such weight, and a test accuracy above that
/// of the baseline quantized after training, per channel, at the same bits, which the grader
/// measures itself). It needs at least one check.
///
/// A model task's `format` says what its runner writes: `"checkpoint"` (the default; the fp32
/// model, all the checks above apply), `"quantized_vgg"` (an integer-only VGG in the format of
/// effml/quantized.h, run by the grader's own int8 kernels on the test images; checks
/// `max_accuracy_drop`, `max_accuracy_change`, against the fp32 baseline) or
/// `"deep_compression"` (a file of effml/deep_compression.h: the grader decodes every weight,
/// measures accuracy and the file's real size; checks `max_size_fraction` (file bytes over the
/// baseline's dense 32-bit bytes), `max_accuracy_drop`, `max_accuracy_change`,
/// `max_distinct_values`).
///
/// The hidden manifest holds only `{"tasks": [...]}`; each of its tasks must say
/// `"hidden": true` (and a public task must not), and its visibility defaults to
/// `after_due_date`. File names (student files, headers, runner, answers file) are plain names
/// inside the lab folder: no `/`, no `..`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "effml/grader/compare.h"

namespace effml::grader {

/// Resource limits of a runner, from the manifest (lab-wide, then per task).
struct RunLimits {
  double wall_seconds = 30;  ///< wall-clock limit of one run
  double cpu_seconds = 60;   ///< CPU-time limit (all threads together)
  int64_t memory_mb = 2048;  ///< address-space limit
  int64_t output_kb = 256;   ///< captured stdout+stderr kept for the report
  int64_t file_mb = 256;     ///< largest file the runner may write
  int64_t processes = 64;    ///< extra processes or threads the runner may start
};

/// What a model task's runner writes (see the `format` field above).
enum class ModelFormat {
  Checkpoint,       ///< "checkpoint": a safetensors checkpoint of the fp32 model
  QuantizedVgg,     ///< "quantized_vgg": effml::save_quantized_vgg's file
  DeepCompression,  ///< "deep_compression": effml::save_deep_compressed's file
};

/// What a task checks.
enum class TaskKind {
  Exact,     ///< outputs compared with the reference's (or the fixtures')
  Accuracy,  ///< the runner returns a checkpoint; the grader measures its test accuracy
  Manual,    ///< a written answers file, collected for manual grading
  Model,     ///< the runner returns a checkpoint; the grader measures it against a baseline
  Speed      ///< a timed kernel (not graded by this version: reported as failed with a reason)
};

/// "exact", "accuracy", "manual", "model", "speed".
const char* task_kind_name(TaskKind kind);

/// One task of a lab.
struct Task {
  std::string name;   ///< identifier passed to the runner, [a-z0-9_]+, unique in the lab
  std::string title;  ///< e.g. "Task 1: Linear forward"
  double points = 0;  ///< maximum score
  TaskKind kind = TaskKind::Exact;  ///< what the task checks
  std::string
      visibility;  ///< Gradescope visibility: visible, hidden, after_due_date, after_published
  std::vector<std::string> tags;  ///< Gradescope tags
  bool hidden = false;            ///< from the hidden manifest (instructor mode only)
  RunLimits limits;               ///< the lab's limits with this task's overrides applied
  // exact
  int seeds = 1;         ///< random cases per run in instructor mode
  Tolerances tolerance;  ///< per-dtype comparison tolerances
  // accuracy
  std::string model;        ///< effml::make_model name, e.g. "lenet300"
  double threshold = 0;     ///< minimal test accuracy in (0, 1]
  std::string calibration;  ///< how the threshold was set (shown in the report)
  // manual
  std::string answers_file;  ///< plain file name in the lab / submission folder
  // model (also uses `model`): the checks to make; each optional one is on when set
  std::string baseline;  ///< plain file name of the dense checkpoint in the lab folder
  ModelFormat format = ModelFormat::Checkpoint;  ///< what the runner writes
  std::optional<double> max_size_fraction;  ///< sparse size / baseline's dense size <= this
  std::optional<double> max_accuracy_drop;  ///< baseline accuracy - accuracy <= this
  std::optional<double> max_accuracy_change;  ///< |accuracy - baseline accuracy| <= this
  bool channels_sorted = false;  ///< each conv's output channels in decreasing importance
  std::optional<double> channel_ratio;  ///< VGG widths and MACs as pruned at this ratio
  std::optional<double> min_speedup;    ///< baseline latency / latency >= this (batch 1)
  std::optional<int64_t> max_distinct_values;  ///< distinct values per 2+-dim weight <= this
  /// Quantization-aware training at this many bits: every output channel of every 2+-dim weight
  /// holds at most 2^bits values, and the accuracy beats the baseline's post-training
  /// per-channel quantization at the same bits (effml::fake_quantize_per_channel).
  std::optional<int> ptq_bits;
};

/// A parsed and checked manifest.
struct Manifest {
  std::string lab;                             ///< folder name, e.g. "lab0_tensor"
  std::string short_name;                      ///< e.g. "lab0"
  std::string title;                           ///< e.g. "Lab 0: the tensor core"
  std::vector<std::string> student_files;      ///< the only files taken from a submission
  std::vector<std::string> public_headers;     ///< copied to the runner's include folder
  std::string runner;                          ///< the task driver's source, e.g. "runner.cpp"
  std::vector<std::string> forbidden_symbols;  ///< prefixes of demangled core symbols a
                                               ///< submission must not use
  RunLimits limits;                            ///< lab-wide limits
  std::vector<Task> tasks;                     ///< public tasks first, then hidden ones
  std::string path;                            ///< the manifest.json read
  std::string hidden_path;                     ///< the manifest.hidden.json merged in, or ""

  /// The task with this name, or nullptr.
  const Task* find_task(const std::string& name) const;
  /// Sum of the points of every task.
  double total_points() const;
};

/// Where a lab's files are.
struct LabPaths {
  std::string name;           ///< folder name, e.g. "lab0_tensor"
  std::string lab_dir;        ///< REPO/labs/NAME
  std::string reference_dir;  ///< REPO/reference/NAME, or "" when there is none
};

/// Finds a lab by folder name ("lab0_tensor") or short name ("lab0": the part before the first
/// underscore). \throws effml::Error listing the labs there are
LabPaths find_lab(const std::string& repo_root, const std::string& lab);

/// Checks and converts a public manifest. `file` names it in error messages.
/// \throws effml::Error naming `file`, the task and the field, e.g. `labs/lab0_tensor/
///         manifest.json: tasks[6] ("train_lenet300"): "threshold" must be a number in (0, 1],
///         got "high"`
Manifest parse_manifest(const std::string& json_text, const std::string& file);

/// Appends the tasks of a hidden manifest to `manifest` (checked the same way).
/// \throws effml::Error naming `file` and the field, or a task name used twice
void merge_hidden_manifest(Manifest& manifest, const std::string& json_text,
                           const std::string& file);

/// Reads `LAB_DIR/manifest.json`, and merges `REFERENCE_DIR/manifest.hidden.json` when
/// `reference_dir` is not empty and the file exists. Also checks that the declared runner and
/// headers exist in the lab folder.
Manifest load_manifest(const LabPaths& paths);

}  // namespace effml::grader
