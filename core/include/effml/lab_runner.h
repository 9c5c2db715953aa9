/// \file lab_runner.h
/// \brief What every lab's runner (the task driver the grader builds with a submission) shares:
/// the command line, reading inputs, writing outputs, and random inputs of awkward sizes.
///
/// A runner is a table of tasks. Its command line, the grader's contract:
///
///     runner gen TASK SEED INPUTS.safetensors   random inputs for TASK from SEED
///     runner run TASK INPUTS.safetensors OUTPUTS.safetensors
///     runner list                               the task names, one per line
///
/// `run` of a *model* task takes `none` (or a file written by its `gen`) and writes a checkpoint
/// that the grader measures itself. Exit codes: 0 done, 1 error (message on stderr), 2 bad
/// command line, 3 a student function is not implemented yet (the message names its task).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "effml/module.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/tensor.h"

namespace effml {

/// Named tensors, in the order they are written.
using TensorList = std::vector<std::pair<std::string, Tensor>>;

/// A runner's input file, read by name. A fixture file, whose inputs are named `input.<name>`,
/// is read as well, so `runner run TASK fixtures/TASK.safetensors out.safetensors` works by hand.
class RunnerInputs {
 public:
  /// Loads `path`. \throws effml::Error naming the file when it cannot be read
  explicit RunnerInputs(const std::string& path);
  /// The tensor `name`. \throws effml::Error naming the file and the tensor when it is missing
  const Tensor& at(const std::string& name) const;
  /// True when the file holds `name` (or `input.<name>`).
  bool contains(const std::string& name) const;
  /// The single float32 value of `name`.
  float scalar(const std::string& name) const;
  /// The values of the int32 tensor `name` (any shape), flattened.
  std::vector<int32_t> ints(const std::string& name) const;
  /// Every tensor whose name starts with `prefix`, with the prefix removed, in file order.
  TensorList with_prefix(const std::string& prefix) const;
  /// The file read.
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile file_;
  std::string path_;
};

/// One task of a runner: `gen` draws inputs from a seeded generator; `run` computes outputs
/// from inputs. A model task has `run_model` instead (input file or `none`, checkpoint to write).
struct RunnerTask {
  std::function<TensorList(Rng&)> gen;                   ///< inputs from a seed (exact tasks)
  std::function<TensorList(const RunnerInputs&)> run;    ///< outputs from inputs (exact tasks)
  std::function<void(const std::string&, const std::string&)> run_model;  ///< model tasks
  /// A model task's `gen`, given the seed itself (e.g. a training seed); optional.
  std::function<TensorList(uint64_t)> gen_from_seed;
};

/// Runs the command line above over `tasks` and returns the exit code. `lab` goes into the
/// metadata of every file written. Catches every exception: NotImplemented exits 3.
int run_lab_runner(int argc, char** argv, const std::string& lab,
                   const std::map<std::string, RunnerTask>& tasks);

/// Writes `tensors` to a safetensors file with `metadata`.
void save_tensor_list(const std::string& path, const TensorList& tensors,
                      const std::map<std::string, std::string>& metadata);

/// A data file of a lab (e.g. its dense checkpoint): `$EFFML_LAB_DIR/file` when the variable is
/// set (the grader sets it to the lab's folder), else `labs/<lab>/file` from the repository's
/// top folder. \throws effml::Error saying how to point at it when neither exists
std::string lab_file(const std::string& lab, const std::string& file);

/// The model named by the `model` entry of a checkpoint's metadata (effml::make_model), loaded
/// from the checkpoint. \throws effml::Error naming the file when the entry is missing or the
/// weights do not fit
std::unique_ptr<Sequential> load_model_checkpoint(const std::string& path);

/// The environment variable `name` when set and not empty, else `fallback`. Runners read their
/// experiment settings this way; the grader never sets them.
std::string env_or(const char* name, const std::string& fallback);

/// The environment variable `name` as a non-negative integer, or `fallback` when unset or
/// empty. \throws effml::Error naming the variable and its value when it is not one
uint64_t env_uint(const char* name, uint64_t fallback);

/// A dimension drawn from 1, 3, 7, 17, 32 and 33: a single row or column, odd sizes that do not
/// divide into SIMD widths, and one that does.
int64_t awkward_size(Rng& rng);
/// A size between `lo` and `hi` inclusive.
int64_t size_between(Rng& rng, int64_t lo, int64_t hi);
/// Normal samples with standard deviation `std`.
Tensor normal(const Shape& shape, float std, Rng& rng);
/// A float32 scalar tensor (shape ()).
Tensor scalar_tensor(float value);

/// Writes a VGG of make_vgg(cfg) into a runner's tensor list: "<prefix>cfg" (int32, 0 for a
/// pool), then every parameter and buffer under its name, e.g. "<prefix>features.0.weight".
void put_vgg(TensorList& t, const std::string& prefix, Sequential& model);
/// The VGG that put_vgg() wrote under `prefix`.
/// \throws effml::Error naming the inputs file and the tensor that is missing or mis-shaped
std::unique_ptr<Sequential> get_vgg(const RunnerInputs& in, const std::string& prefix);
/// A random VGG of awkward widths for exact tasks: 2 to 4 conv blocks of 1 to 12 channels with
/// 2x2 pools, weights of a trained model's scale, batch-norm statistics away from their
/// initial values.
std::unique_ptr<Sequential> random_vgg(Rng& rng);

}  // namespace effml
