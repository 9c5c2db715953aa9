// Grading of model tasks: the grader measures what a runner wrote (a checkpoint, an integer-only
// VGG or a Deep Compression file) against the lab's baseline, with trusted core code.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "effml/deep_compression.h"
#include "effml/metrics.h"
#include "grading.h"

namespace effml::grader::detail {

namespace {

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

}  // namespace

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

}  // namespace effml::grader::detail
