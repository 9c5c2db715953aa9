// Hidden tests of Lab 1 (instructor repository only). They are written against lab1.h, so they
// check whichever implementation they are linked with: the reference in `ctest`, or a
// submission's lab1.cpp compiled in its place.
//
// - larger and edge cases: 4-D weights, sparsities whose count of zeros rounds (halves away
//   from zero), ties, a conv of one channel, prune ratios close to 1, stable sorting of equal
//   importances;
// - the sensitivity scan of the real dense VGG on real images;
// - error messages that name the parameter or the value;
// - the stub and the solution have the same text outside the solution markers, and every stub
//   body only throws NotImplemented naming its task.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/init.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/tensor.h"
#include "effml/train.h"
#include "error_checks.h"
#include "lab1.h"
#include "model_snapshot.h"
#include "solution_markers.h"

namespace {

using effml::Rng;
using effml::Shape;
using effml::Tensor;
using effml::testing::check_error_names;
using effml::testing::snapshot;

// A VGG of widths `cfg` with Kaiming weights and batch-norm values away from their defaults.
std::unique_ptr<effml::Sequential> random_vgg(const std::vector<int64_t>& cfg, uint64_t seed) {
  auto model = effml::make_vgg(cfg);
  effml::init_kaiming(*model, seed);
  Rng rng(seed + 1000);
  for (const auto& p : model->named_parameters()) {
    Tensor& v = p.param->value;
    if (v.dim() == 1) v = Tensor::rand(v.shape(), rng, 0.5f, 1.5f);
  }
  for (const auto& b : model->named_buffers()) {
    const bool var = b.name.find("running_var") != std::string::npos;
    *b.tensor = var ? Tensor::rand(b.tensor->shape(), rng, 0.5f, 2.0f)
                    : Tensor::randn(b.tensor->shape(), rng) * 0.3f;
  }
  return model;
}

void check_same_model(const std::string& what, effml::Module& model,
                      const std::map<std::string, Tensor>& expected) {
  const auto now = snapshot(model);
  REQUIRE(now.size() == expected.size());
  for (const auto& [name, value] : expected) {
    INFO(what << ": " << name);
    REQUIRE(now.count(name) == 1);
    CHECK(now.at(name).equal(value));
  }
}

// `small` is `large` restricted to the leading block of every dimension.
bool is_leading_slice(const Tensor& large, const Tensor& small) {
  if (small.dim() != large.dim()) return false;
  for (int64_t d = 0; d < small.dim(); ++d) {
    if (small.size(d) > large.size(d)) return false;
  }
  for (int64_t k = 0; k < small.numel(); ++k) {
    int64_t rest = k, flat = 0, stride = 1;
    for (int64_t d = small.dim() - 1; d >= 0; --d) {
      flat += (rest % small.size(d)) * stride;
      rest /= small.size(d);
      stride *= large.size(d);
    }
    if (small[k] != large[flat]) return false;
  }
  return true;
}

void check_pruned_slices(effml::Sequential& original, effml::Sequential& pruned) {
  const auto was = snapshot(original);
  const auto now = snapshot(pruned);
  REQUIRE(now.size() == was.size());
  for (const auto& [name, value] : was) {
    INFO(name << ": original " << value.shape_str());
    REQUIRE(now.count(name) == 1);
    INFO("pruned " << now.at(name).shape_str());
    CHECK(is_leading_slice(value, now.at(name)));
  }
}

std::vector<double> input_norms(const Tensor& w) {
  const int64_t out = w.size(0), in = w.size(1), kk = w.size(2) * w.size(3);
  std::vector<double> norm(static_cast<std::size_t>(in), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t c = 0; c < in; ++c) {
      for (int64_t k = 0; k < kk; ++k) {
        const double v = w[(o * in + c) * kk + k];
        norm[static_cast<std::size_t>(c)] += v * v;
      }
    }
  }
  for (double& n : norm) n = std::sqrt(n);
  return norm;
}

}  // namespace

// ---- Task 1 ---------------------------------------------------------------------------------

TEST_CASE("hidden: fine_grained_prune on a 4-D conv weight", "[task1][hidden]") {
  // (4, 3, 3, 3): 108 values; round(108 * 0.37) = round(39.96) = 40 zeros. Normal samples have
  // no tie at the threshold.
  Rng rng(1100);
  const Tensor original = Tensor::randn({4, 3, 3, 3}, rng);
  Tensor w = original;
  const Tensor mask = lab1::fine_grained_prune(w, 0.37);
  REQUIRE(mask.shape() == original.shape());
  REQUIRE(w.shape() == original.shape());
  CHECK(w.numel() - w.count_nonzero() == 40);
  float largest_pruned = 0, smallest_kept = 1e30f;
  for (int64_t k = 0; k < w.numel(); ++k) {
    INFO("flat index " << k);
    CHECK((mask[k] == 0.0f || mask[k] == 1.0f));
    CHECK(w[k] == original[k] * mask[k]);
    if (mask[k] == 0.0f) {
      largest_pruned = std::max(largest_pruned, std::fabs(original[k]));
    } else {
      smallest_kept = std::min(smallest_kept, std::fabs(original[k]));
    }
  }
  CHECK(largest_pruned < smallest_kept);
}

TEST_CASE("hidden: fine_grained_prune rounds the number of zeros half away from zero",
          "[task1][hidden]") {
  struct Case {
    std::vector<float> values;
    double sparsity;
    std::vector<float> mask;
  };
  const std::vector<Case> cases = {
      // n = 3: 1.5 -> 2 zeros (ties-to-even would also give 2; truncation 1).
      {{0.3f, -0.1f, 0.2f}, 0.5, {1, 0, 0}},
      // n = 5: 2.5 -> 3 zeros (ties-to-even would give 2).
      {{0.5f, 0.1f, -0.4f, 0.2f, 0.3f}, 0.5, {1, 0, 1, 0, 0}},
      // n = 1: 0.5 -> 1 zero (ties-to-even would give 0).
      {{-7.0f}, 0.5, {0}},
      // n = 1: 0.49 -> 0: nothing pruned.
      {{-7.0f}, 0.49, {1}},
      // n = 7: 3.5 -> 4 zeros: 0.1, 0.2, 0.3, 0.4.
      {{0.4f, -0.7f, 0.1f, 0.6f, -0.2f, 0.5f, 0.3f}, 0.5, {0, 1, 0, 1, 0, 1, 0}},
  };
  for (const Case& c : cases) {
    const int64_t n = static_cast<int64_t>(c.values.size());
    INFO("n = " << n << ", sparsity " << c.sparsity);
    Tensor w({n}, c.values);
    const Tensor mask = lab1::fine_grained_prune(w, c.sparsity);
    CHECK(mask.to_vector() == c.mask);
    for (int64_t k = 0; k < n; ++k) CHECK(w[k] == c.values[static_cast<std::size_t>(k)] * c.mask[static_cast<std::size_t>(k)]);
  }
}

TEST_CASE("hidden: fine_grained_prune prunes every tie in a 3-D tensor", "[task1][hidden]") {
  // Values 0.01 * (k % 5 - 2) for k = 0..59: magnitudes 0 (12 values), 0.01 (24), 0.02 (24).
  // At sparsity 0.25, z = 15: the 15th smallest magnitude is 0.01, so every 0 and every 0.01
  // is pruned (36 values) and only the 24 values of magnitude 0.02 remain.
  std::vector<float> values(60);
  for (int k = 0; k < 60; ++k) values[k] = 0.01f * static_cast<float>(k % 5 - 2);
  Tensor w({3, 4, 5}, values);
  const Tensor mask = lab1::fine_grained_prune(w, 0.25);
  CHECK(mask.count_nonzero() == 24);
  CHECK(w.count_nonzero() == 24);
  for (int64_t k = 0; k < 60; ++k) {
    INFO("flat index " << k);
    CHECK(mask[k] == (std::fabs(values[k]) > 0.015f ? 1.0f : 0.0f));
  }
}

// ---- Task 2 ---------------------------------------------------------------------------------

TEST_CASE("hidden: FineGrainedPruner on every prunable weight of the VGG", "[task2][hidden]") {
  auto model = random_vgg({16, 0, 32, 0, 64, 64, 0}, 1200);
  const auto before = snapshot(*model);
  // features.0 144 values, .4 4,608, .8 18,432, .11 36,864, classifier 5,760.
  const std::map<std::string, double> sparsities = {{"features.0.weight", 0.3},
                                                    {"features.4.weight", 0.6},
                                                    {"features.8.weight", 0.7},
                                                    {"features.11.weight", 0.85},
                                                    {"classifier.weight", 0.9}};
  lab1::FineGrainedPruner pruner(*model, sparsities);
  REQUIRE(pruner.masks().size() == sparsities.size());
  for (const auto& [name, s] : sparsities) {
    INFO(name);
    const Tensor& w = model->parameter(name).value;
    const int64_t zeros = std::lround(static_cast<double>(w.numel()) * s);
    CHECK(w.numel() - w.count_nonzero() == zeros);
  }
  // A few steps of "training" with apply() after each: sparsity stays, kept values move.
  Rng rng(1201);
  for (int step = 0; step < 3; ++step) {
    for (const auto& p : model->named_parameters()) {
      p.param->value.add_(Tensor::randn(p.param->value.shape(), rng), 0.01f);
    }
    pruner.apply(*model);
  }
  for (const auto& [name, mask] : pruner.masks()) {
    INFO(name);
    const Tensor& w = model->parameter(name).value;
    for (int64_t k = 0; k < w.numel(); ++k) {
      if (mask[k] == 0.0f && w[k] != 0.0f) {
        FAIL_CHECK("pruned value at flat index " << k << " is " << w[k]);
        break;
      }
    }
    CHECK(w.count_nonzero() == mask.count_nonzero());
  }
  CHECK_FALSE(model->parameter("features.1.weight").value.equal(before.at("features.1.weight")));
}

TEST_CASE("hidden: FineGrainedPruner errors name the parameter or the value",
          "[task2][hidden][errors]") {
  auto model = random_vgg({4, 0, 6, 0}, 1210);
  check_error_names([&] { lab1::FineGrainedPruner(*model, {{"features.4.weight", 1.25}}); },
                    "1.25");
  lab1::FineGrainedPruner pruner(*model, {{"features.4.weight", 0.5}});
  // Same names, another width: features.4.weight is (5, 4, 3, 3), its mask (6, 4, 3, 3).
  auto narrower = random_vgg({4, 0, 5, 0}, 1211);
  check_error_names([&] { pruner.apply(*narrower); }, "features.4.weight");
  auto mlp = effml::make_model("lenet300", 0);
  check_error_names([&] { pruner.apply(*mlp); }, "features.4.weight");
}

// ---- Task 3 ---------------------------------------------------------------------------------

TEST_CASE("hidden: sensitivity_scan of the dense VGG on Fashion-MNIST images", "[task3][hidden]") {
  auto model = effml::make_vgg();
  effml::load_checkpoint(std::string(EFFML_SOURCE_DIR) + "/labs/lab1_pruning/vgg_dense.safetensors",
                         *model);
  const effml::Dataset data = effml::load_fashion_mnist("test").subset(0, 200);
  const auto before = snapshot(*model);
  const double dense = effml::evaluate(*model, data).accuracy;
  // Measured: 92.53% on the 10,000 test images, 93.0% on these 200.
  CHECK(dense > 0.8);
  const std::vector<double> grid = {0.0, 0.5, 1.0};
  const auto curves = lab1::sensitivity_scan(*model, data, grid);
  check_same_model("after the scan", *model, before);
  std::vector<std::string> names;
  for (const auto& c : curves) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"features.0.weight", "features.4.weight",
                                          "features.8.weight", "features.11.weight",
                                          "classifier.weight"});
  for (const auto& c : curves) {
    INFO(c.name);
    REQUIRE(c.accuracy.size() == grid.size());
    CHECK(c.accuracy[0] == Approx(dense).margin(1e-12));
    // Pruning a whole layer destroys the model: far below the dense accuracy.
    CHECK(c.accuracy[2] < dense - 0.3);
  }
  CHECK(lab1::sensitivity_scan(*model, data, {}).size() == 5);
  for (const auto& c : lab1::sensitivity_scan(*model, data, {})) CHECK(c.accuracy.empty());
}

// ---- Task 4 ---------------------------------------------------------------------------------

TEST_CASE("hidden: choose_sparsities meets a tight size target", "[task4][hidden]") {
  // At 10% (26,468 bytes): every layer at the grid's largest sparsity, 0.95, takes 22,834
  // bytes (65,808 mask bits + 32 * 3,290 kept + 362 * 32 dense bits), so the target can be
  // met only with most layers near 0.95.
  auto model = random_vgg({16, 0, 32, 0, 64, 64, 0}, 1300);
  const std::vector<double> grid = {0.5, 0.8, 0.9, 0.95};
  const std::vector<lab1::SensitivityCurve> scan = {
      {"features.0.weight", {0.80, 0.50, 0.30, 0.20}},
      {"features.4.weight", {0.88, 0.85, 0.80, 0.70}},
      {"features.8.weight", {0.90, 0.88, 0.85, 0.80}},
      {"features.11.weight", {0.90, 0.89, 0.87, 0.85}},
      {"classifier.weight", {0.89, 0.86, 0.80, 0.75}}};
  const auto choice = lab1::choose_sparsities(*model, scan, grid, 0.9, 0.1);
  auto pruned = random_vgg({16, 0, 32, 0, 64, 64, 0}, 1300);
  for (const auto& [name, s] : choice) lab1::fine_grained_prune(pruned->parameter(name).value, s);
  CHECK(effml::sparse_model_size_bytes(*pruned) <= 0.1 * effml::model_size_bytes(*model));
}

// ---- Tasks 5 and 6 --------------------------------------------------------------------------

TEST_CASE("hidden: get_num_channels_to_keep at more values", "[task5][hidden]") {
  CHECK(lab1::get_num_channels_to_keep(512, 0.5) == 256);
  CHECK(lab1::get_num_channels_to_keep(1, 0.0) == 1);
  CHECK(lab1::get_num_channels_to_keep(2, 0.75) == 1);      // 0.5 -> 1
  CHECK(lab1::get_num_channels_to_keep(33, 0.5) == 17);     // 16.5 -> 17
  CHECK(lab1::get_num_channels_to_keep(64, 0.3f) == 45);    // float 0.3: 44.79999... -> 45
  CHECK(lab1::get_num_channels_to_keep(100, 0.999) == 1);   // 0.1 -> 0 -> 1
  check_error_names([] { lab1::get_num_channels_to_keep(4, 1.0); }, "1");
  check_error_names([] { lab1::get_num_channels_to_keep(-17, 0.1); }, "-17");
}

TEST_CASE("hidden: get_input_channel_importance at awkward sizes", "[task6][hidden]") {
  const Shape shapes[] = {{1, 1, 1, 1}, {3, 7, 3, 3}, {17, 1, 5, 5}, {2, 33, 1, 1}};
  Rng rng(1400);
  for (const Shape& s : shapes) {
    INFO("weight " << effml::shape_str(s));
    const Tensor w = Tensor::randn(s, rng);
    const Tensor importance = lab1::get_input_channel_importance(w);
    REQUIRE(importance.shape() == Shape{s[1]});
    const std::vector<double> expected = input_norms(w);
    for (int64_t c = 0; c < s[1]; ++c) {
      CHECK(importance[c] == Approx(expected[static_cast<std::size_t>(c)]).epsilon(1e-5));
    }
  }
}

// ---- Task 7 ---------------------------------------------------------------------------------

TEST_CASE("hidden: apply_channel_sorting keeps equal importances in their order",
          "[task7][hidden]") {
  // features.4.weight (2, 3, 3, 3): input channels 0 and 2 read the same values (importance
  // 1 * sqrt(18)), channel 1 twice as much (2 * sqrt(18)). The stable descending order is
  // 1, 0, 2.
  auto model = random_vgg({3, 0, 2, 0}, 1500);
  Tensor& next = model->parameter("features.4.weight").value;
  for (int64_t o = 0; o < 2; ++o) {
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t k = 0; k < 9; ++k) next[(o * 3 + c) * 9 + k] = (c == 1 ? 2.0f : 1.0f) * (k % 2 ? -1.0f : 1.0f);
    }
  }
  const auto before = snapshot(*model);
  lab1::apply_channel_sorting(*model);
  const std::vector<int64_t> order = {1, 0, 2};
  CHECK(model->parameter("features.0.weight").value.equal(
      before.at("features.0.weight").index_select(0, order)));
  CHECK(model->parameter("features.4.weight").value.equal(
      before.at("features.4.weight").index_select(1, order)));
  const auto now = snapshot(*model);
  for (const char* field : {"weight", "bias", "running_mean", "running_var"}) {
    INFO("features.1." << field);
    CHECK(now.at(std::string("features.1.") + field)
              .equal(before.at(std::string("features.1.") + field).index_select(0, order)));
  }
}

TEST_CASE("hidden: apply_channel_sorting twice is sorting once and leaves one conv alone",
          "[task7][hidden]") {
  auto model = random_vgg({7, 0, 1, 0, 5, 3, 0}, 1510);
  lab1::apply_channel_sorting(*model);
  const auto once = snapshot(*model);
  lab1::apply_channel_sorting(*model);
  check_same_model("sorted twice", *model, once);

  auto single = random_vgg({5, 0}, 1511);
  const auto before = snapshot(*single);
  lab1::apply_channel_sorting(*single);
  check_same_model("a VGG of one conv", *single, before);
}

TEST_CASE("hidden: apply_channel_sorting and channel_prune reject a model that is not a VGG",
          "[task7][task8][hidden][errors]") {
  auto mlp = effml::make_lenet300();
  check_error_names([&] { lab1::apply_channel_sorting(*mlp); }, "");
  check_error_names([&] { lab1::channel_prune(*mlp, 0.5); }, "");
  auto lenet5 = effml::make_lenet5();
  check_error_names([&] { lab1::apply_channel_sorting(*lenet5); }, "");
  check_error_names([&] { lab1::channel_prune(*lenet5, 0.5); }, "");
  auto vgg = random_vgg({4, 0, 4, 0}, 1520);
  check_error_names([&] { lab1::channel_prune(*vgg, 1.0); }, "1");
}

// ---- Task 8 ---------------------------------------------------------------------------------

TEST_CASE("hidden: channel_prune with a conv of one channel", "[task8][hidden]") {
  SECTION("the first conv has one channel: it keeps it") {
    // max(1, round(1 * 0.5)) = 1; the last conv keeps its 4.
    auto model = random_vgg({1, 0, 4, 0}, 1600);
    auto pruned = lab1::channel_prune(*model, 0.5);
    CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{1, 0, 4, 0});
    check_pruned_slices(*model, *pruned);
  }
  SECTION("the last conv has one channel: it keeps it") {
    // 4 * 0.5 = 2; the last conv feeds the classifier: Linear(1 * 7 * 7, 10).
    auto model = random_vgg({4, 0, 1, 0}, 1601);
    auto pruned = lab1::channel_prune(*model, 0.5);
    CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{2, 0, 1, 0});
    CHECK(pruned->parameter("classifier.weight").value.shape() == Shape{10, 49});
    check_pruned_slices(*model, *pruned);
  }
}

TEST_CASE("hidden: channel_prune at a ratio close to 1 keeps one channel", "[task8][hidden]") {
  auto model = random_vgg({16, 0, 32, 0, 64, 64, 0}, 1610);
  for (double ratio : {0.99, 0.999}) {
    INFO("ratio " << ratio);
    // 16 * 0.01 = 0.16, 32 * 0.01 = 0.32, 64 * 0.01 = 0.64 -> 1: round(0.16) = round(0.32) =
    // 0 -> 1, round(0.64) = 1; the last conv keeps 64.
    auto pruned = lab1::channel_prune(*model, ratio);
    CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{1, 0, 1, 0, 1, 64, 0});
    check_pruned_slices(*model, *pruned);
    Rng rng(1611);
    pruned->eval();
    CHECK(pruned->forward(Tensor::randn(effml::image_input_shape(2), rng)).shape() == Shape{2, 10});
  }
}

TEST_CASE("hidden: sorting then pruning keeps the most important channels", "[task7][task8][hidden]") {
  auto model = random_vgg({8, 0, 6, 0, 5, 0}, 1620);
  auto original = random_vgg({8, 0, 6, 0, 5, 0}, 1620);
  // features.0 keeps round(8 * 0.5) = 4 channels: the 4 whose input channels of features.4
  // have the largest norms in the original model.
  const std::vector<double> norm = input_norms(original->parameter("features.4.weight").value);
  std::vector<int64_t> top = {0, 1, 2, 3, 4, 5, 6, 7};
  std::stable_sort(top.begin(), top.end(), [&](int64_t a, int64_t b) {
    return norm[static_cast<std::size_t>(a)] > norm[static_cast<std::size_t>(b)];
  });
  top.resize(4);
  lab1::apply_channel_sorting(*model);
  auto pruned = lab1::channel_prune(*model, 0.5);
  CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{4, 0, 3, 0, 5, 0});
  CHECK(pruned->parameter("features.0.weight").value.equal(
      original->parameter("features.0.weight").value.index_select(0, top)));
  check_pruned_slices(*model, *pruned);
}

// ---- stub and solution stay in step -----------------------------------------------------------

TEST_CASE("hidden: the stub is the solution with each solution region replaced by a throw",
          "[hidden][stub]") {
  const std::string root = EFFML_SOURCE_DIR;
  // Same text outside the regions, as many regions in both.
  const effml::testing::StubAndSolution files = effml::testing::check_stub_matches_solution(
      root + "/labs/lab1_pruning/lab1.cpp", root + "/reference/lab1_pruning/lab1.cpp");
  const effml::testing::SplitSource& stub = files.stub;
  const effml::testing::SplitSource& solution = files.solution;
  // One region per function: Task 2 has two (the constructor and apply()).
  const std::vector<std::string> expected = {
      "Task 1: fine_grained_prune",     "Task 2: FineGrainedPruner",
      "Task 2: FineGrainedPruner::apply", "Task 3: sensitivity_scan",
      "Task 4: choose_sparsities",      "Task 5: get_num_channels_to_keep",
      "Task 6: get_input_channel_importance", "Task 7: apply_channel_sorting",
      "Task 8: channel_prune"};
  REQUIRE(stub.regions.size() == expected.size());
  for (std::size_t k = 0; k < stub.regions.size(); ++k) {
    INFO("solution region " << k + 1 << " of the stub:\n" << stub.regions[k]);
    CHECK(stub.regions[k] == "throw effml::NotImplemented(\"" + expected[k] + "\");\n");
    CHECK_FALSE(solution.regions[k].empty());
  }
}
