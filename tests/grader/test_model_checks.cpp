// Tests of what the grader measures on a returned model (model_checks.h): widths read from a
// checkpoint, the pruned cfg and its MACs in closed form (against the layers' own count),
// the channel-order check, the figures of a pruned model, the interleaved latency pair; and
// the manifest's "model" task kind.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "effml/error.h"
#include "effml/grader/files.h"
#include "effml/grader/manifest.h"
#include "effml/grader/model_checks.h"
#include "effml/init.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/parallel.h"
#include "effml/safetensors.h"
#include "error_checks.h"

namespace {

namespace g = effml::grader;
using Catch::Matchers::Contains;
using effml::Tensor;
using effml::testing::error_of;

const std::vector<int64_t> kDense = {16, 0, 32, 0, 64, 64, 0};

struct TempDir {
  std::string path = g::make_temp_dir("/tmp", "effml-model-checks-");
  ~TempDir() { g::remove_tree(path); }
};

// Sets the input channels of `conv`'s weight (Cout, Cin, K, K) to constant slices: every value
// reading input channel c is values[c], so that channel's importance is
// |values[c]| * sqrt(Cout * K * K).
void set_input_slices(effml::Sequential& vgg, const std::string& conv,
                      const std::vector<float>& values) {
  Tensor& w = vgg.parameter(conv).value;
  const int64_t out = w.size(0), in = w.size(1), kk = w.size(2) * w.size(3);
  REQUIRE(static_cast<int64_t>(values.size()) == in);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t c = 0; c < in; ++c) {
      for (int64_t k = 0; k < kk; ++k) w[(o * in + c) * kk + k] = values[static_cast<std::size_t>(c)];
    }
  }
}

// ---- manifests with a model task ----

const char* kFile = "labs/lab1_pruning/manifest.json";

std::string manifest_with(const std::string& tasks) {
  return R"({"lab": "lab1_pruning", "short_name": "lab1", "title": "Lab 1",
             "student_files": ["lab1.cpp"], "public_headers": ["lab1.h"],
             "runner": "runner.cpp", "limits": {"wall_seconds": 60, "memory_mb": 2048},
             "tasks": [)" +
         tasks + "]}";
}

// A model task with `fields` (a JSON fragment, each with a leading comma) after its name,
// title, points and kind.
std::string model_task(const std::string& fields) {
  return R"({"name": "m", "title": "M", "points": 10, "kind": "model")" + fields + "}";
}

const std::string kVggBaseline = R"(, "model": "vgg", "baseline": "vgg_dense.safetensors")";

std::string manifest_error(const std::string& text) {
  return error_of([&] { g::parse_manifest(text, kFile); });
}

}  // namespace

// ---- vgg_widths_from ------------------------------------------------------------------------

TEST_CASE("model_checks: vgg_widths_from reads each conv's width from a written checkpoint",
          "[grader][model_checks]") {
  TempDir tmp;
  const std::string path = tmp.path + "/pruned.safetensors";
  auto pruned = effml::make_vgg({11, 0, 22, 0, 45, 64, 0});
  effml::save_checkpoint(path, *pruned);
  CHECK(g::vgg_widths_from(path, kDense) == std::vector<int64_t>{11, 0, 22, 0, 45, 64, 0});
  // A model of one channel per conv.
  auto thin = effml::make_vgg({1, 0, 1, 0, 1, 1, 0});
  effml::save_checkpoint(path, *thin);
  CHECK(g::vgg_widths_from(path, kDense) == std::vector<int64_t>{1, 0, 1, 0, 1, 1, 0});
  // The file's own widths loaded into make_vgg of them: the strict loader agrees.
  auto again = effml::make_vgg(g::vgg_widths_from(path, kDense));
  CHECK_NOTHROW(effml::load_checkpoint(path, *again));
}

TEST_CASE("model_checks: vgg_widths_from names a missing or malformed conv weight", "[grader][model_checks]") {
  TempDir tmp;
  const std::string mlp = tmp.path + "/mlp.safetensors";
  auto lenet = effml::make_lenet300();
  effml::save_checkpoint(mlp, *lenet);
  CHECK_THAT(error_of([&] { g::vgg_widths_from(mlp, kDense); }),
             Contains("no tensor 'features.0.weight'"));

  // features.4.weight of three dimensions instead of four.
  const std::string bad = tmp.path + "/bad.safetensors";
  const Tensor w0 = Tensor::zeros({5, 1, 3, 3});
  const Tensor w4 = Tensor::zeros({7, 5, 9});
  effml::save_safetensors(bad, {{"features.0.weight", &w0}, {"features.4.weight", &w4}});
  CHECK_THAT(error_of([&] { g::vgg_widths_from(bad, {5, 0, 7, 0}); }),
             Contains("'features.4.weight' is (7, 5, 9), not a conv weight"));
}

// ---- vgg_pruned_config ----------------------------------------------------------------------

TEST_CASE("model_checks: vgg_pruned_config rounds halves away from zero and keeps the last conv",
          "[grader][model_checks]") {
  // 16 * 0.7 = 11.2 -> 11, 32 * 0.7 = 22.4 -> 22, 64 * 0.7 = 44.8 -> 45; the last 64 stays.
  CHECK(g::vgg_pruned_config(kDense, 0.3) == std::vector<int64_t>{11, 0, 22, 0, 45, 64, 0});
  // 3 * 0.5 = 1.5 -> 2 and 5 * 0.5 = 2.5 -> 3 (ties-to-even would give 2 and 2).
  CHECK(g::vgg_pruned_config({3, 0, 5, 0, 7, 0}, 0.5) == std::vector<int64_t>{2, 0, 3, 0, 7, 0});
  // Close to 1: round(0.16) = 0 -> 1 channel at least; round(0.64) = 1.
  CHECK(g::vgg_pruned_config(kDense, 0.99) == std::vector<int64_t>{1, 0, 1, 0, 1, 64, 0});
  CHECK(g::vgg_pruned_config(kDense, 0.0) == kDense);
  // One conv: it is the last one and feeds the classifier.
  CHECK(g::vgg_pruned_config({8, 0}, 0.5) == std::vector<int64_t>{8, 0});
  // A trailing pool does not make the last conv prunable; a leading pool is kept.
  CHECK(g::vgg_pruned_config({0, 10, 0, 10, 0, 0}, 0.5) == std::vector<int64_t>{0, 5, 0, 10, 0, 0});
}

// ---- vgg_macs_formula -----------------------------------------------------------------------

TEST_CASE("model_checks: vgg_macs_formula agrees with the layers' MAC count", "[grader][model_checks]") {
  // The dense VGG: 16*1*9*28*28 = 112,896; 32*16*9*14*14 = 903,168; 64*32*9*7*7 = 903,168;
  // 64*64*9*7*7 = 1,806,336; classifier 64*3*3*10 = 5,760. Sum 3,731,328.
  CHECK(g::vgg_macs_formula(kDense) == 3731328);
  // Pruned at 0.3: 11*9*784 = 77,616; 22*11*9*196 = 426,888; 45*22*9*49 = 436,590;
  // 64*45*9*49 = 1,270,080; 5,760. Sum 2,216,934.
  CHECK(g::vgg_macs_formula({11, 0, 22, 0, 45, 64, 0}) == 2216934);
  const std::vector<std::vector<int64_t>> cfgs = {
      kDense, {11, 0, 22, 0, 45, 64, 0}, {1, 0, 1, 0, 1, 64, 0}, {8},
      {4, 4, 0, 0, 0, 0},  // 28 -> 14 -> 7 -> 3 -> 1
      {3, 0, 5, 0, 7, 0},  // 7 -> 3 rounds down
      {0, 6, 0, 2}};
  for (const auto& cfg : cfgs) {
    auto model = effml::make_vgg(cfg);
    INFO("cfg of " << cfg.size() << " entries, first " << cfg[0]);
    CHECK(g::vgg_macs_formula(cfg) == effml::count_macs(*model, effml::image_input_shape(1)));
  }
}

// ---- check_channel_order --------------------------------------------------------------------

TEST_CASE("model_checks: check_channel_order accepts sorted channels and names the layer that is not",
          "[grader][model_checks]") {
  auto vgg = effml::make_vgg({3, 0, 4, 0, 2, 0});
  effml::init_kaiming(*vgg, 5);
  // features.4 reads features.0's 3 channels, features.8 reads features.4's 4 channels.
  set_input_slices(*vgg, "features.4.weight", {0.5f, -0.3f, 0.3f});  // 0.5 >= 0.3 = 0.3 (a tie)
  set_input_slices(*vgg, "features.8.weight", {2.0f, 1.0f, 0.5f, 0.0f});
  CHECK(g::check_channel_order(*vgg) == "");

  set_input_slices(*vgg, "features.4.weight", {0.5f, 0.3f, 0.4f});
  const std::string first = g::check_channel_order(*vgg);
  CHECK_THAT(first, Contains("output channels of features.0 are not sorted"));
  CHECK_THAT(first, Contains("input channel 2 of features.4"));
  CHECK_THAT(first, Contains("channel 1"));

  set_input_slices(*vgg, "features.4.weight", {0.5f, 0.3f, 0.3f});
  set_input_slices(*vgg, "features.8.weight", {2.0f, 1.0f, -1.5f, 0.0f});
  const std::string second = g::check_channel_order(*vgg);
  CHECK_THAT(second, Contains("output channels of features.4 are not sorted"));
  CHECK_THAT(second, Contains("input channel 2 of features.8"));

  // The last conv's output channels feed the classifier: their order is not checked.
  auto one = effml::make_vgg({5, 0});
  effml::init_kaiming(*one, 6);
  CHECK(g::check_channel_order(*one) == "");

  auto mlp = effml::make_lenet300();
  CHECK_THROWS_AS(g::check_channel_order(*mlp), effml::Error);
}

// ---- measure_figures ------------------------------------------------------------------------

TEST_CASE("model_checks: measure_figures on a pruned VGG by hand", "[grader][model_checks]") {
  // cfg {2, M}: features.0.weight (2, 1, 3, 3) = 18 values, batch norm 2 + 2, classifier
  // (10, 2 * 14 * 14 = 392) = 3,920 and its bias 10: 3,952 parameters, 15,808 bytes dense.
  auto model = effml::make_vgg({2, 0});
  for (const auto& p : model->named_parameters()) p.param->value.fill_(1.0f);
  Tensor& conv = model->parameter("features.0.weight").value;
  for (int64_t k = 0; k < 9; ++k) conv[k] = 0.0f;  // 9 of 18 kept
  Tensor& fc = model->parameter("classifier.weight").value;
  for (int64_t k = 100; k < fc.numel(); ++k) fc[k] = 0.0f;  // 100 of 3,920 kept
  const g::ModelFigures f = g::measure_figures(*model);
  CHECK(f.parameters == 3952);
  CHECK(f.nonzeros == 9 + 4 + 100 + 10);
  CHECK(f.dense_bytes == 15808.0);
  // Bits: conv min(18 * 32, 18 + 9 * 32) = 306; classifier min(125,440, 3,920 + 100 * 32) =
  // 7,120; the 14 one-dimensional values dense, 448. 7,874 bits = 984.25 bytes.
  CHECK(f.sparse_bytes == 984.25);
  // conv 2 * 9 * 784 = 14,112 and classifier 3,920.
  CHECK(f.macs == 18032);
  REQUIRE(f.layers.size() == 2);
  CHECK(f.layers[0].name == "features.0.weight");
  CHECK(f.layers[0].numel == 18);
  CHECK(f.layers[0].nonzeros == 9);
  CHECK(f.layers[0].sparsity() == 0.5);
  CHECK(f.layers[1].name == "classifier.weight");
  CHECK(f.layers[1].nonzeros == 100);
}

// ---- measure_latency_pair -------------------------------------------------------------------

TEST_CASE("model_checks: measure_latency_pair: positive times and the bigger model slower and threads restored",
          "[grader][model_checks]") {
  // The dense VGG (3,731,328 MACs) against make_vgg({2, M}) (18,032 MACs): about 200 times
  // less work, so the order cannot flip on a noisy machine (no absolute times are asserted).
  auto big = effml::make_model("vgg", 1);
  auto small = effml::make_vgg({2, 0});
  effml::init_kaiming(*small, 2);
  const int threads = effml::num_threads();
  const g::LatencyPair lat = g::measure_latency_pair(*big, *small, 3, 20);
  CHECK(effml::num_threads() == threads);
  CHECK(lat.baseline_ms > 0);
  CHECK(lat.model_ms > 0);
  INFO("baseline " << lat.baseline_ms << " ms, model " << lat.model_ms << " ms");
  CHECK(lat.baseline_ms > lat.model_ms);
}

// ---- the manifest's "model" kind ------------------------------------------------------------

TEST_CASE("model_checks: a model task parses with its checks", "[grader][manifest][model_checks]") {
  const auto m = g::parse_manifest(
      manifest_with(model_task(kVggBaseline + R"(, "channel_ratio": 0.3, "min_speedup": 1.1,
          "channels_sorted": true, "max_size_fraction": 0.25, "max_accuracy_drop": 0.01,
          "max_accuracy_change": 0.0, "limits": {"wall_seconds": 300}, "calibration": "c")") +
                    "," +
                    R"({"name": "s", "title": "S", "points": 5, "kind": "model", "model": "vgg",
                        "baseline": "vgg_dense.safetensors", "max_size_fraction": 0.5})"),
      kFile);
  REQUIRE(m.tasks.size() == 2);
  const g::Task& t = m.tasks[0];
  CHECK(t.kind == g::TaskKind::Model);
  CHECK(t.model == "vgg");
  CHECK(t.baseline == "vgg_dense.safetensors");
  CHECK(t.channel_ratio == 0.3);
  CHECK(t.min_speedup == 1.1);
  CHECK(t.channels_sorted);
  CHECK(t.max_size_fraction == 0.25);
  CHECK(t.max_accuracy_drop == 0.01);
  REQUIRE(t.max_accuracy_change.has_value());
  CHECK(*t.max_accuracy_change == 0.0);
  CHECK(t.limits.wall_seconds == 300);
  CHECK(t.limits.memory_mb == 2048);
  CHECK(t.calibration == "c");
  // Only the checks a task sets are on.
  const g::Task& s = m.tasks[1];
  CHECK(s.max_size_fraction == 0.5);
  CHECK_FALSE(s.channel_ratio.has_value());
  CHECK_FALSE(s.min_speedup.has_value());
  CHECK_FALSE(s.max_accuracy_drop.has_value());
  CHECK_FALSE(s.max_accuracy_change.has_value());
  CHECK_FALSE(s.channels_sorted);
  CHECK_FALSE(s.max_distinct_values.has_value());
  CHECK(std::string(g::task_kind_name(s.kind)) == "model");
}

TEST_CASE("model_checks: model task errors name the task and the field", "[grader][manifest][model_checks]") {
  const std::string where = "labs/lab1_pruning/manifest.json: tasks[0] (\"m\"): ";
  CHECK_THAT(manifest_error(manifest_with(model_task(R"(, "model": "vgg", "max_size_fraction": 0.25)"))),
             Contains(where + "missing field \"baseline\""));
  CHECK_THAT(manifest_error(manifest_with(
                 model_task(R"(, "baseline": "vgg_dense.safetensors", "max_size_fraction": 0.25)"))),
             Contains(where + "missing field \"model\""));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline))),
             Contains(where + "a model task needs at least one check"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "channels_sorted": false)"))),
             Contains(where + "a model task needs at least one check"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "channel_ratio": 1)"))),
             Contains(where + "\"channel_ratio\" must be below 1"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "channel_ratio": 1.5)"))),
             Contains(where + "\"channel_ratio\" must be a number in [0, 1]"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "max_size_fraction": 0)"))),
             Contains(where + "\"max_size_fraction\" must be a number in (0, 1]"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "min_speedup": 0)"))),
             Contains(where + "\"min_speedup\" must be a number in (0, 1000]"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "max_distinct_values": 0)"))),
             Contains(where + "\"max_distinct_values\" must be a whole number >= 1, got 0"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "max_distinct_values": 2.5)"))),
             Contains(where + "\"max_distinct_values\" must be a whole number >= 1, got 2.5"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "channels_sorted": "yes")"))),
             Contains(where + "\"channels_sorted\" must be true or false"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "max_sparsity": 0.5)"))),
             Contains(where + "unknown field \"max_sparsity\""));
  CHECK_THAT(manifest_error(manifest_with(model_task(
                 R"(, "model": "lenet300", "baseline": "b.safetensors", "channel_ratio": 0.3)"))),
             Contains(where + "\"channel_ratio\" applies to the model \"vgg\" only"));
  CHECK_THAT(manifest_error(manifest_with(model_task(
                 R"(, "model": "vgg", "baseline": "../vgg.safetensors", "min_speedup": 2)"))),
             Contains(where + "\"baseline\": '../vgg.safetensors' must be a plain file name"));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "min_speedup": 2, "seeds": 3)"))),
             Contains(where + "\"seeds\" does not apply to a task of kind \"model\""));
  CHECK_THAT(manifest_error(manifest_with(model_task(kVggBaseline + R"(, "min_speedup": 2, "threshold": 0.9)"))),
             Contains(where + "\"threshold\" does not apply to a task of kind \"model\""));
}

TEST_CASE("model_checks: model fields on an exact task are errors naming the field",
          "[grader][manifest][model_checks]") {
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"baseline", "\"vgg_dense.safetensors\""}, {"max_size_fraction", "0.25"},
      {"max_accuracy_drop", "0.01"},             {"max_accuracy_change", "0"},
      {"channels_sorted", "true"},               {"channel_ratio", "0.3"},
      {"min_speedup", "1.1"}};
  for (const auto& [field, value] : fields) {
    INFO(field);
    const std::string task = R"({"name": "e", "title": "E", "points": 1, "kind": "exact", ")" +
                             field + "\": " + value + "}";
    CHECK_THAT(manifest_error(manifest_with(task)),
               Contains("tasks[0] (\"e\"): \"" + field +
                        "\" does not apply to a task of kind \"exact\""));
  }
}

TEST_CASE("model_checks: a k-means task's distinct-value limit parses and is counted per weight",
          "[grader][manifest][model_checks]") {
  const g::Manifest m =
      g::parse_manifest(manifest_with(model_task(kVggBaseline + R"(, "max_distinct_values": 16)")),
                        kFile);
  REQUIRE(m.tasks[0].max_distinct_values.has_value());
  CHECK(*m.tasks[0].max_distinct_values == 16);
  // A VGG whose weights each hold 3 values (0, 0.5 and -0.25 by position): every 2+-dim weight
  // counts 3 distinct values, whatever its size; 1-D parameters are not counted.
  auto vgg = effml::make_vgg({4, 0, 6, 0});
  for (const auto& p : vgg->named_parameters()) {
    for (int64_t k = 0; k < p.param->value.numel(); ++k) {
      p.param->value[k] = k % 3 == 0 ? 0.0f : (k % 3 == 1 ? 0.5f : -0.25f);
    }
  }
  const g::ModelFigures f = g::measure_figures(*vgg);
  REQUIRE(f.layers.size() == 3);  // two convs and the classifier
  for (const auto& l : f.layers) CHECK(l.distinct == 3);
}
