// Public tests of Lab 1. Run them all with `ctest -R lab1`, or one task with the test program's
// tag, e.g. `build/tests/lab1_pruning_tests "[task1]"`.
//
// Small cases worked out by hand (the derivation is in the comment above each one), and
// properties that any correct solution has: a pruned model still prunes after a change, a scan
// leaves the model as it found it, channel sorting does not change what the model computes,
// channel pruning keeps exactly the leading slices of every tensor. Every test calls your code,
// so none of them passes before you have written it.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
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
#include "effml/tensor.h"
#include "effml/train.h"
#include "lab1.h"
#include "model_snapshot.h"
#include "multi_index.h"

namespace {

using Catch::Matchers::Contains;
using effml::Rng;
using effml::Shape;
using effml::Tensor;
using effml::testing::multi_index;
using effml::testing::snapshot;

// Checks that `got` has `expected`'s shape and exactly its values; the message names the first
// differing element.
void check_equal(const std::string& what, const Tensor& expected, const Tensor& got) {
  INFO(what << ": expected shape " << expected.shape_str() << ", got " << got.shape_str());
  REQUIRE(got.shape() == expected.shape());
  for (int64_t k = 0; k < expected.numel(); ++k) {
    if (!(got[k] == expected[k])) {
      FAIL_CHECK(what << " differs at " << multi_index(expected.shape(), k) << ": expected "
                      << expected[k] << ", got " << got[k]);
      return;
    }
  }
  SUCCEED(what);
}

// Passes when `call` throws an effml::Error whose message contains `needle` (letter case
// ignored, so "NaN" and "nan" both name a NaN). NotImplemented is an effml::Error too, but it
// does not count: an unwritten function must not pass.
void check_error_names(const std::string& what, const std::function<void()>& call,
                       const std::string& needle) {
  try {
    call();
  } catch (const effml::NotImplemented& e) {
    FAIL_CHECK(what << ": " << e.what());
    return;
  } catch (const effml::Error& e) {
    INFO(what << ": the message should contain \"" << needle << "\"");
    CHECK_THAT(e.what(), Contains(needle, Catch::CaseSensitive::No));
    return;
  }
  FAIL_CHECK(what << ": expected an effml::Error naming \"" << needle << "\", nothing was thrown");
}

// A VGG of widths `cfg` with Kaiming weights from `seed`, and batch-norm scales, shifts and
// running statistics (and the classifier's bias) away from their initial values, so that a
// channel permutation that forgets one of them changes the model's output.
std::unique_ptr<effml::Sequential> random_vgg(const std::vector<int64_t>& cfg, uint64_t seed) {
  auto model = effml::make_vgg(cfg);
  effml::init_kaiming(*model, seed);
  Rng rng(seed + 1000);
  for (const auto& p : model->named_parameters()) {
    Tensor& v = p.param->value;
    if (v.dim() != 1) continue;
    const bool bn_scale = p.name.rfind("features.", 0) == 0 &&
                          p.name.size() > 7 && p.name.substr(p.name.size() - 7) == ".weight";
    v = bn_scale ? Tensor::rand(v.shape(), rng, 0.5f, 1.5f) : Tensor::randn(v.shape(), rng) * 0.2f;
  }
  for (const auto& b : model->named_buffers()) {
    const bool var = b.name.find("running_var") != std::string::npos;
    *b.tensor = var ? Tensor::rand(b.tensor->shape(), rng, 0.5f, 2.0f)
                    : Tensor::randn(b.tensor->shape(), rng) * 0.3f;
  }
  return model;
}

// `n` random images (standard normal pixels) labelled 0, 1, ..., 9, 0, 1, ...
effml::Dataset synthetic_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  effml::Dataset d;
  d.images = Tensor::randn(effml::image_input_shape(n), rng);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % 10));
  d.name = "synthetic";
  return d;
}

// Checks that `model`'s parameters and buffers are exactly those of `before`.
void check_unchanged(const std::string& what, effml::Module& model,
                     const std::map<std::string, Tensor>& before) {
  const std::map<std::string, Tensor> now = snapshot(model);
  REQUIRE(now.size() == before.size());
  for (const auto& [name, value] : before) {
    REQUIRE(now.count(name) == 1);
    check_equal(what + ": " + name, value, now.at(name));
  }
}

std::vector<std::string> parameter_names(effml::Module& model) {
  std::vector<std::string> names;
  for (const auto& p : model.named_parameters()) names.push_back(p.name);
  return names;
}

// The names of the prunable parameters (two or more dimensions), in named_parameters() order.
std::vector<std::string> prunable_names(effml::Module& model) {
  std::vector<std::string> names;
  for (const auto& p : model.named_parameters()) {
    if (p.param->value.dim() >= 2) names.push_back(p.name);
  }
  return names;
}

// The permutation a channel sort applied to the channels of batch norm `bn` (and of the conv
// before it): new channel k is old channel perm[k], recognised by its batch-norm scale (random
// values, all distinct). Fails the test when a scale is not found or found twice.
std::vector<int64_t> found_permutation(const std::map<std::string, Tensor>& was,
                                       const std::map<std::string, Tensor>& now,
                                       const std::string& bn) {
  const Tensor& old_scale = was.at(bn + ".weight");
  const Tensor& new_scale = now.at(bn + ".weight");
  INFO(bn << ".weight: was " << old_scale.shape_str() << ", now " << new_scale.shape_str());
  REQUIRE(new_scale.shape() == old_scale.shape());
  const int64_t n = old_scale.numel();
  std::vector<int64_t> perm;
  std::vector<bool> used(static_cast<std::size_t>(n), false);
  for (int64_t k = 0; k < n; ++k) {
    int64_t from = -1;
    for (int64_t m = 0; m < n; ++m) {
      if (!used[static_cast<std::size_t>(m)] && new_scale[k] == old_scale[m]) from = m;
    }
    if (from < 0) {
      FAIL_CHECK(bn << ".weight[" << k << "] = " << new_scale[k]
                    << " is not one of the original values (or is used twice): the channels "
                       "were changed, not reordered");
      return {};
    }
    used[static_cast<std::size_t>(from)] = true;
    perm.push_back(from);
  }
  return perm;
}

// The features indices of the convs of a VGG.
std::vector<std::size_t> conv_indices(effml::Sequential& model) {
  auto& features = dynamic_cast<effml::Sequential&>(model[0]);
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (dynamic_cast<effml::Conv2d*>(&features[i]) != nullptr) index.push_back(i);
  }
  return index;
}

// Checks that `small` is `large` restricted to the leading block of every dimension:
// small[i0, i1, ...] == large[i0, i1, ...] for every index of small (same rank, no larger).
void check_leading_slice(const std::string& what, const Tensor& large, const Tensor& small) {
  INFO(what << ": original " << large.shape_str() << ", pruned " << small.shape_str());
  REQUIRE(small.dim() == large.dim());
  for (int64_t d = 0; d < small.dim(); ++d) REQUIRE(small.size(d) <= large.size(d));
  for (int64_t k = 0; k < small.numel(); ++k) {
    int64_t rest = k, flat = 0, stride = 1;
    for (int64_t d = small.dim() - 1; d >= 0; --d) {
      const int64_t i = rest % small.size(d);
      rest /= small.size(d);
      flat += i * stride;
      stride *= large.size(d);
    }
    if (!(small[k] == large[flat])) {
      FAIL_CHECK(what << " at " << multi_index(small.shape(), k) << ": pruned model has "
                      << small[k] << ", the original " << large[flat]);
      return;
    }
  }
  SUCCEED(what);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t k = 0; k < a.numel(); ++k) m = std::max(m, std::fabs(double{a[k]} - b[k]));
  return m;
}

double sparsity_of(const std::map<std::string, double>& choice, const std::string& name) {
  const auto it = choice.find(name);
  return it == choice.end() ? 0.0 : it->second;
}

}  // namespace

// ---- Task 1: fine_grained_prune -------------------------------------------------------------

TEST_CASE("lab1: fine_grained_prune on a 2x3 tensor at sparsity 0.5", "[lab1][task1]") {
  // n = 6, z = round(6 * 0.5) = 3. Magnitudes 0.5 0.1 0.3 / 0.7 0.2 0.4, sorted
  // 0.1 0.2 0.3 0.4 0.5 0.7: the 3rd smallest is t = 0.3. |w| <= 0.3 is pruned: -0.1, 0.3, 0.2.
  Tensor w({2, 3}, {0.5f, -0.1f, 0.3f, -0.7f, 0.2f, -0.4f});
  const Tensor mask = lab1::fine_grained_prune(w, 0.5);
  check_equal("weight", Tensor({2, 3}, {0.5f, 0.0f, 0.0f, -0.7f, 0.0f, -0.4f}), w);
  check_equal("mask", Tensor({2, 3}, {1, 0, 0, 1, 0, 1}), mask);
}

TEST_CASE("lab1: fine_grained_prune at sparsity 0 and 1", "[lab1][task1]") {
  SECTION("sparsity 0: z = 0, nothing is pruned, even a value that is already 0") {
    // z = round(4 * 0) = 0: the mask is all ones, also where w is 0 (it was not pruned).
    Tensor w({4}, {0.3f, 0.0f, -2.0f, 1e-8f});
    const Tensor mask = lab1::fine_grained_prune(w, 0.0);
    check_equal("weight", Tensor({4}, {0.3f, 0.0f, -2.0f, 1e-8f}), w);
    check_equal("mask", Tensor::ones({4}), mask);
  }
  SECTION("sparsity 1: z = n, every value is pruned") {
    // z = round(6 * 1) = 6: t is the largest magnitude (3), and every |w| <= 3.
    Tensor w({3, 2}, {1.0f, -3.0f, 2.0f, 0.5f, -0.25f, 3.0f});
    const Tensor mask = lab1::fine_grained_prune(w, 1.0);
    check_equal("weight", Tensor::zeros({3, 2}), w);
    check_equal("mask", Tensor::zeros({3, 2}), mask);
  }
}

TEST_CASE("lab1: fine_grained_prune prunes every value that ties with the threshold",
          "[lab1][task1]") {
  // n = 6, z = round(6 * 0.5) = 3. Magnitudes 0.2 0.6 0.1 / 0.2 0.5 0.2, sorted
  // 0.1 0.2 0.2 0.2 0.5 0.6: t = 0.2 (the 3rd smallest). |w| <= 0.2 holds for four values
  // (0.1 and the three 0.2s): four are pruned although z = 3.
  Tensor w({2, 3}, {0.2f, -0.6f, 0.1f, -0.2f, 0.5f, 0.2f});
  const Tensor mask = lab1::fine_grained_prune(w, 0.5);
  check_equal("weight", Tensor({2, 3}, {0.0f, -0.6f, 0.0f, 0.0f, 0.5f, 0.0f}), w);
  check_equal("mask", Tensor({2, 3}, {0, 1, 0, 0, 1, 0}), mask);
}

TEST_CASE("lab1: fine_grained_prune rejects a sparsity outside 0..1 and names it",
          "[lab1][task1][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [sparsity, text] :
       std::vector<std::pair<double, std::string>>{{nan, "nan"}, {-0.1, "-0.1"}, {1.5, "1.5"}}) {
    Tensor w({2, 2}, {1.0f, 2.0f, 3.0f, 4.0f});
    check_error_names("fine_grained_prune(w, " + text + ")",
                      [&] { lab1::fine_grained_prune(w, sparsity); }, text);
  }
}

// ---- Task 2: FineGrainedPruner --------------------------------------------------------------

TEST_CASE("lab1: FineGrainedPruner prunes in its constructor and keeps the masks",
          "[lab1][task2]") {
  auto model = random_vgg({4, 0, 6, 0}, 21);
  const auto before = snapshot(*model);
  // features.0.weight (4, 1, 3, 3): 36 values, round(36 * 0.5) = 18 pruned;
  // classifier.weight (10, 294): 2940 values, round(2940 * 0.75) = 2205 pruned. Random normal
  // weights have no tie at the threshold, so exactly that many become 0.
  const std::map<std::string, double> sparsities = {{"features.0.weight", 0.5},
                                                    {"classifier.weight", 0.75}};
  const lab1::FineGrainedPruner pruner(*model, sparsities);
  REQUIRE(pruner.masks().size() == 2);
  const std::map<std::string, int64_t> zeros = {{"features.0.weight", 18},
                                                {"classifier.weight", 2205}};
  for (const auto& [name, z] : zeros) {
    INFO(name);
    REQUIRE(pruner.masks().count(name) == 1);
    const Tensor& mask = pruner.masks().at(name);
    const Tensor& w = model->parameter(name).value;
    REQUIRE(mask.shape() == w.shape());
    CHECK(w.numel() - w.count_nonzero() == z);
    CHECK(mask.numel() - mask.count_nonzero() == z);
    // The same pruning as Task 1 on the original weight.
    Tensor expected = before.at(name);
    const Tensor expected_mask = lab1::fine_grained_prune(expected, sparsities.at(name));
    check_equal(name, expected, w);
    check_equal("mask of " + name, expected_mask, mask);
  }
  // Every other parameter and buffer is untouched.
  for (const auto& [name, value] : snapshot(*model)) {
    if (zeros.count(name) == 0) check_equal(name, before.at(name), value);
  }
}

TEST_CASE("lab1: FineGrainedPruner::apply re-zeroes pruned weights after a change",
          "[lab1][task2]") {
  auto model = random_vgg({4, 0, 6, 0}, 22);
  const lab1::FineGrainedPruner pruner(*model, {{"features.4.weight", 0.6}});
  const auto pruned = snapshot(*model);
  // What an optimizer step does: every parameter moves, pruned ones away from 0.
  for (const auto& p : model->named_parameters()) p.param->value = p.param->value + 0.125f;
  pruner.apply(*model);
  REQUIRE(pruner.masks().count("features.4.weight") == 1);
  const Tensor& mask = pruner.masks().at("features.4.weight");
  // (6, 4, 3, 3): 216 values, round(216 * 0.6) = round(129.6) = 130 pruned.
  CHECK(mask.numel() - mask.count_nonzero() == 130);
  const Tensor& w = model->parameter("features.4.weight").value;
  const Tensor& w_before = pruned.at("features.4.weight");
  for (int64_t k = 0; k < w.numel(); ++k) {
    // Pruned values are exactly 0 again; kept ones keep the change (w + 0.125).
    const float expected = mask[k] == 0.0f ? 0.0f : w_before[k] + 0.125f;
    if (w[k] != expected) {
      FAIL_CHECK("features.4.weight at " << multi_index(w.shape(), k) << ": mask " << mask[k]
                                         << ", expected " << expected << ", got " << w[k]);
      break;
    }
  }
  // Parameters without a mask keep the change.
  check_equal("features.0.weight", pruned.at("features.0.weight") + 0.125f,
              model->parameter("features.0.weight").value);
  check_equal("classifier.bias", pruned.at("classifier.bias") + 0.125f,
              model->parameter("classifier.bias").value);
}

TEST_CASE("lab1: FineGrainedPruner rejects a parameter the model does not have",
          "[lab1][task2][errors]") {
  auto model = random_vgg({4, 0, 6, 0}, 23);
  check_error_names("FineGrainedPruner with features.9.weight",
                    [&] { lab1::FineGrainedPruner(*model, {{"features.9.weight", 0.5}}); },
                    "features.9.weight");
}

// ---- Task 3: sensitivity_scan ---------------------------------------------------------------

TEST_CASE("lab1: sensitivity_scan returns one curve per prunable parameter and restores the model",
          "[lab1][task3]") {
  auto model = random_vgg({4, 0, 8, 0}, 31);
  // The classifier's bias at 0: with classifier.weight fully pruned every logit is 0, every
  // image is predicted class 0 (the first of equal logits), and the accuracy is the fraction
  // of label 0: 4 of the 40 labels 0, 1, ..., 9, 0, ... that is 0.1.
  model->parameter("classifier.bias").value.zero_();
  const effml::Dataset data = synthetic_data(40, 32);
  const auto before = snapshot(*model);
  const double dense = effml::evaluate(*model, data).accuracy;
  const std::vector<double> grid = {0.0, 0.5, 1.0};
  const auto curves = lab1::sensitivity_scan(*model, data, grid);

  check_unchanged("after the scan", *model, before);
  std::vector<std::string> names;
  for (const auto& c : curves) names.push_back(c.name);
  // features.0.weight, features.4.weight and classifier.weight; not the batch-norm vectors or
  // the classifier's bias (one dimension).
  CHECK(names == prunable_names(*model));
  CHECK(names ==
        std::vector<std::string>{"features.0.weight", "features.4.weight", "classifier.weight"});
  for (const auto& c : curves) {
    INFO(c.name);
    REQUIRE(c.accuracy.size() == grid.size());
    // Sparsity 0 prunes nothing: the unpruned accuracy.
    CHECK(c.accuracy[0] == Approx(dense).margin(1e-12));
    for (double a : c.accuracy) {
      CHECK(a >= 0.0);
      CHECK(a <= 1.0);
    }
    // At 0.5: the model with this one parameter pruned by Task 1, everything else as it was.
    auto pruned = random_vgg({4, 0, 8, 0}, 31);
    pruned->parameter("classifier.bias").value.zero_();
    lab1::fine_grained_prune(pruned->parameter(c.name).value, 0.5);
    CHECK(c.accuracy[1] == Approx(effml::evaluate(*pruned, data).accuracy).margin(1e-12));
  }
  CHECK(curves.back().accuracy[2] == Approx(0.1).margin(1e-12));
}

// ---- Task 4: choose_sparsities --------------------------------------------------------------

TEST_CASE("lab1: choose_sparsities meets the size target on the VGG", "[lab1][task4]") {
  auto model = random_vgg({16, 0, 32, 0, 64, 64, 0}, 41);
  const auto before = snapshot(*model);
  // Dense: 66,170 values, 264,680 bytes. Prunable: 144 + 4,608 + 18,432 + 36,864 + 5,760 =
  // 65,808 values; the 362 others (batch norm, classifier bias) stay dense. At 25%
  // (66,170 bytes = 529,360 bits) the prunable weights may take 529,360 - 362 * 32 = 517,776
  // bits: 65,808 mask bits + 32 per kept value, so at most 14,124 kept (78.5% pruned); at
  // every grid point's largest sparsity (0.95) they would take 65,808 + 32 * 3,290 bits.
  const std::vector<double> grid = {0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95};
  const double dense = 0.9;
  const std::vector<lab1::SensitivityCurve> scan = {
      {"features.0.weight", {0.85, 0.80, 0.70, 0.60, 0.40, 0.20, 0.10}},
      {"features.4.weight", {0.90, 0.89, 0.88, 0.86, 0.82, 0.70, 0.50}},
      {"features.8.weight", {0.90, 0.90, 0.89, 0.88, 0.86, 0.80, 0.70}},
      {"features.11.weight", {0.90, 0.90, 0.90, 0.89, 0.88, 0.85, 0.80}},
      {"classifier.weight", {0.90, 0.90, 0.89, 0.87, 0.84, 0.75, 0.60}}};
  for (double target : {0.25, 0.5}) {
    INFO("max_size_fraction " << target);
    const auto choice = lab1::choose_sparsities(*model, scan, grid, dense, target);
    check_unchanged("choose_sparsities", *model, before);
    auto pruned = random_vgg({16, 0, 32, 0, 64, 64, 0}, 41);
    for (const auto& [name, s] : choice) {
      INFO(name << " at sparsity " << s);
      CHECK(std::find_if(scan.begin(), scan.end(),
                         [&](const lab1::SensitivityCurve& c) { return c.name == name; }) !=
            scan.end());
      CHECK(s >= 0.0);
      CHECK(s <= 1.0);
      lab1::fine_grained_prune(pruned->parameter(name).value, s);
    }
    const double size = effml::sparse_model_size_bytes(*pruned);
    const double dense_size = effml::model_size_bytes(*model);
    CHECK(dense_size == 264680.0);
    INFO("pruned size " << size << " bytes of " << dense_size);
    CHECK(size <= target * dense_size);
  }
}

TEST_CASE("lab1: choose_sparsities prunes an insensitive layer more than a sensitive one",
          "[lab1][task4]") {
  // cfg {8, M, 8, M, 8, M}: features.4.weight and features.8.weight both hold 8 * 8 * 9 = 576
  // values, so only their curves tell them apart. Dense 2,002 values = 8,008 bytes; at 25% the
  // prunable weights (72 + 576 + 576 + 720 = 1,944 values) may keep at most 381 values.
  auto model = random_vgg({8, 0, 8, 0, 8, 0}, 42);
  const std::vector<double> grid = {0.5, 0.7, 0.9, 0.95};
  const std::vector<double> flat = {0.90, 0.90, 0.90, 0.90};
  const std::vector<double> steep = {0.60, 0.40, 0.20, 0.10};
  const std::vector<double> f0 = {0.89, 0.85, 0.70, 0.50};
  const std::vector<double> fc = {0.89, 0.87, 0.80, 0.70};
  for (bool flat_first : {true, false}) {
    const std::string insensitive = flat_first ? "features.4.weight" : "features.8.weight";
    const std::string sensitive = flat_first ? "features.8.weight" : "features.4.weight";
    INFO("insensitive " << insensitive << ", sensitive " << sensitive);
    const std::vector<lab1::SensitivityCurve> scan = {{"features.0.weight", f0},
                                                      {"features.4.weight", flat_first ? flat : steep},
                                                      {"features.8.weight", flat_first ? steep : flat},
                                                      {"classifier.weight", fc}};
    const auto choice = lab1::choose_sparsities(*model, scan, grid, 0.9, 0.25);
    CHECK(sparsity_of(choice, insensitive) > sparsity_of(choice, sensitive));
    auto pruned = random_vgg({8, 0, 8, 0, 8, 0}, 42);
    for (const auto& [name, s] : choice) lab1::fine_grained_prune(pruned->parameter(name).value, s);
    CHECK(effml::sparse_model_size_bytes(*pruned) <= 0.25 * effml::model_size_bytes(*model));
  }
}

// ---- Task 5: get_num_channels_to_keep -------------------------------------------------------

TEST_CASE("lab1: get_num_channels_to_keep rounds halves away from zero and keeps at least 1",
          "[lab1][task5]") {
  CHECK(lab1::get_num_channels_to_keep(3, 0.5) == 2);    // 1.5 -> 2 (not 1, as ties-to-even)
  CHECK(lab1::get_num_channels_to_keep(5, 0.5) == 3);    // 2.5 -> 3 (not 2)
  CHECK(lab1::get_num_channels_to_keep(10, 0.25) == 8);  // 7.5 -> 8
  CHECK(lab1::get_num_channels_to_keep(6, 0.75) == 2);   // 1.5 -> 2
  CHECK(lab1::get_num_channels_to_keep(16, 0.3) == 11);  // 11.2 -> 11
  CHECK(lab1::get_num_channels_to_keep(32, 0.3) == 22);  // 22.4 -> 22
  CHECK(lab1::get_num_channels_to_keep(64, 0.3) == 45);  // 44.8 -> 45
  CHECK(lab1::get_num_channels_to_keep(7, 0.0) == 7);    // nothing removed
  CHECK(lab1::get_num_channels_to_keep(1, 0.5) == 1);    // 0.5 -> 1
  CHECK(lab1::get_num_channels_to_keep(1, 0.9) == 1);    // 0.1 -> 0, at least 1
  CHECK(lab1::get_num_channels_to_keep(10, 0.99) == 1);  // 0.1 -> 0, at least 1
}

TEST_CASE("lab1: get_num_channels_to_keep rejects bad arguments and names them",
          "[lab1][task5][errors]") {
  check_error_names("0 channels", [] { lab1::get_num_channels_to_keep(0, 0.5); }, "0");
  check_error_names("-3 channels", [] { lab1::get_num_channels_to_keep(-3, 0.5); }, "-3");
  check_error_names("ratio 1", [] { lab1::get_num_channels_to_keep(8, 1.0); }, "1");
  check_error_names("ratio -0.25", [] { lab1::get_num_channels_to_keep(8, -0.25); }, "-0.25");
  check_error_names("ratio 1.5", [] { lab1::get_num_channels_to_keep(8, 1.5); }, "1.5");
  check_error_names("ratio NaN",
                    [] { lab1::get_num_channels_to_keep(8, std::numeric_limits<double>::quiet_NaN()); },
                    "nan");
}

// ---- Task 6: get_input_channel_importance ---------------------------------------------------

TEST_CASE("lab1: get_input_channel_importance on hand-made weights", "[lab1][task6]") {
  SECTION("1x1 kernels, (Cout, Cin) = (2, 3)") {
    // W[0, :] = 3 0 1 and W[1, :] = 4 2 -1: I = sqrt(9 + 16) = 5, sqrt(0 + 4) = 2,
    // sqrt(1 + 1) = 1.41421356.
    const Tensor w({2, 3, 1, 1}, {3.0f, 0.0f, 1.0f, 4.0f, 2.0f, -1.0f});
    const Tensor importance = lab1::get_input_channel_importance(w);
    REQUIRE(importance.shape() == Shape{3});
    CHECK(importance[0] == Approx(5.0).epsilon(1e-6));
    CHECK(importance[1] == Approx(2.0).epsilon(1e-6));
    CHECK(importance[2] == Approx(std::sqrt(2.0)).epsilon(1e-6));
  }
  SECTION("2x2 kernels, (Cout, Cin) = (2, 2)") {
    // Channel 0 reads 1 2 2 0 (output 0) and 0 0 0 0 (output 1): sqrt(1 + 4 + 4) = 3.
    // Channel 1 reads -1 -1 -1 -1 and 1 1 1 1: sqrt(8) = 2.82842712.
    const Tensor w({2, 2, 2, 2}, {1, 2, 2, 0, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1});
    const Tensor importance = lab1::get_input_channel_importance(w);
    REQUIRE(importance.shape() == Shape{2});
    CHECK(importance[0] == Approx(3.0).epsilon(1e-6));
    CHECK(importance[1] == Approx(std::sqrt(8.0)).epsilon(1e-6));
  }
}

// ---- Task 7: apply_channel_sorting ----------------------------------------------------------

TEST_CASE("lab1: apply_channel_sorting keeps the output and sorts by decreasing importance",
          "[lab1][task7]") {
  const std::vector<int64_t> cfg = {6, 0, 5, 0, 7, 4, 0};
  auto model = random_vgg(cfg, 71);
  auto original = random_vgg(cfg, 71);
  Rng rng(72);
  const Tensor x = Tensor::randn(effml::image_input_shape(3), rng);
  model->eval();
  original->eval();
  const Tensor y_before = model->forward(x);

  lab1::apply_channel_sorting(*model);

  // The same function: only the order of the sums over input channels changes. Measured
  // largest difference 9.5e-7 on logits of magnitude up to 3.8.
  const Tensor y_after = model->forward(x);
  REQUIRE(y_after.shape() == y_before.shape());
  {
    INFO("largest difference of the outputs " << max_abs_diff(y_before, y_after)
                                              << "; largest |logit| " << y_before.abs().max());
    CHECK(y_after.allclose(y_before, 1e-5f, 1e-5f));
  }

  // The channels were reordered consistently: find each conv's permutation from its batch
  // norm, then every tensor of that channel must have moved with it: the conv's weight
  // (dimension 0), the batch norm's four vectors, the next conv's weight (dimension 1).
  const auto was = snapshot(*original);
  const auto now = snapshot(*model);
  const std::vector<std::size_t> convs = conv_indices(*model);
  std::vector<int64_t> previous = {0};  // the input image's one channel stays
  for (std::size_t j = 0; j < convs.size(); ++j) {
    const std::string conv = "features." + std::to_string(convs[j]);
    const std::string bn = "features." + std::to_string(convs[j] + 1);
    const std::vector<int64_t> perm = found_permutation(was, now, bn);
    REQUIRE(!perm.empty());
    for (const char* field : {".bias", ".running_mean", ".running_var"}) {
      for (std::size_t k = 0; k < perm.size(); ++k) {
        const float got = now.at(bn + field)[static_cast<int64_t>(k)];
        const float expected = was.at(bn + field)[perm[k]];
        if (got != expected) {
          FAIL_CHECK(bn << field << "[" << k << "] is " << got << ", expected the original ["
                        << perm[k] << "] = " << expected << " (it did not move with "
                        << bn << ".weight)");
          break;
        }
      }
    }
    const Tensor& w_now = now.at(conv + ".weight");  // (Cout, Cin, 3, 3)
    const Tensor& w_was = was.at(conv + ".weight");
    REQUIRE(w_now.shape() == w_was.shape());
    const int64_t in = w_now.size(1);
    bool moved_together = true;
    for (std::size_t k = 0; k < perm.size() && moved_together; ++k) {
      for (int64_t i = 0; i < in && moved_together; ++i) {
        for (int64_t t = 0; t < 9; ++t) {
          const float a = w_now[(static_cast<int64_t>(k) * in + i) * 9 + t];
          const float b = w_was[(perm[k] * in + previous[static_cast<std::size_t>(i)]) * 9 + t];
          if (a != b) {
            FAIL_CHECK(conv << ".weight[" << k << ", " << i << "] should be the original ["
                            << perm[k] << ", " << previous[static_cast<std::size_t>(i)] << "]");
            moved_together = false;
            break;
          }
        }
      }
    }
    if (j + 1 < convs.size()) {
      // Sorted: the next conv's input-channel importance (Task 6) does not increase.
      const std::string next = "features." + std::to_string(convs[j + 1]) + ".weight";
      const Tensor importance = lab1::get_input_channel_importance(now.at(next));
      for (int64_t c = 1; c < importance.numel(); ++c) {
        INFO(next << ": importance of input channels " << c - 1 << " and " << c);
        CHECK(importance[c] <= importance[c - 1]);
      }
    } else {
      // The last conv feeds the classifier: its channels stay where they are.
      for (std::size_t k = 0; k < perm.size(); ++k) CHECK(perm[k] == static_cast<int64_t>(k));
    }
    previous = perm;
  }
  check_equal("classifier.weight", was.at("classifier.weight"), now.at("classifier.weight"));
}

// ---- Task 8: channel_prune ------------------------------------------------------------------

TEST_CASE("lab1: channel_prune at 0.3 gives the expected widths and keeps the leading slices",
          "[lab1][task8]") {
  auto model = random_vgg({16, 0, 32, 0, 64, 64, 0}, 81);
  const auto before = snapshot(*model);
  auto pruned = lab1::channel_prune(*model, 0.3);
  REQUIRE(pruned != nullptr);
  check_unchanged("the original model", *model, before);
  // 16 * 0.7 = 11.2 -> 11, 32 * 0.7 = 22.4 -> 22, 64 * 0.7 = 44.8 -> 45; the last conv keeps 64.
  CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{11, 0, 22, 0, 45, 64, 0});
  CHECK(parameter_names(*pruned) == parameter_names(*model));
  const auto got = snapshot(*pruned);
  const std::map<std::string, Shape> shapes = {
      {"features.0.weight", {11, 1, 3, 3}},   {"features.1.weight", {11}},
      {"features.1.running_var", {11}},       {"features.4.weight", {22, 11, 3, 3}},
      {"features.5.bias", {22}},              {"features.8.weight", {45, 22, 3, 3}},
      {"features.9.running_mean", {45}},      {"features.11.weight", {64, 45, 3, 3}},
      {"features.12.weight", {64}},           {"classifier.weight", {10, 576}},
      {"classifier.bias", {10}}};
  for (const auto& [name, shape] : shapes) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got.at(name).shape() == shape);
  }
  REQUIRE(got.size() == before.size());
  for (const auto& [name, value] : before) {
    REQUIRE(got.count(name) == 1);
    check_leading_slice(name, value, got.at(name));
  }
  Rng rng(82);
  pruned->eval();
  CHECK(pruned->forward(Tensor::randn(effml::image_input_shape(2), rng)).shape() == Shape{2, 10});
}

TEST_CASE("lab1: channel_prune at ratio 0 is the same model", "[lab1][task8]") {
  auto model = random_vgg({6, 0, 5, 0, 7, 4, 0}, 83);
  auto pruned = lab1::channel_prune(*model, 0.0);
  REQUIRE(pruned != nullptr);
  CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{6, 0, 5, 0, 7, 4, 0});
  check_unchanged("pruned at ratio 0", *pruned, snapshot(*model));
  Rng rng(84);
  const Tensor x = Tensor::randn(effml::image_input_shape(3), rng);
  model->eval();
  pruned->eval();
  const Tensor y = model->forward(x);
  const Tensor y_pruned = pruned->forward(x);
  INFO("largest difference " << max_abs_diff(y, y_pruned));
  CHECK(y_pruned.allclose(y, 1e-6f, 1e-6f));
}

TEST_CASE("lab1: channel_prune rounds halves away from zero and keeps the last conv",
          "[lab1][task8]") {
  // 5 * 0.5 = 2.5 -> 3; the last conv (3 channels) feeds the classifier and keeps them all.
  auto model = random_vgg({5, 0, 3, 0}, 85);
  auto pruned = lab1::channel_prune(*model, 0.5);
  REQUIRE(pruned != nullptr);
  CHECK(effml::vgg_config(*pruned) == std::vector<int64_t>{3, 0, 3, 0});
  CHECK(pruned->parameter("features.4.weight").value.shape() == Shape{3, 3, 3, 3});
  CHECK(pruned->parameter("classifier.weight").value.shape() == Shape{10, 147});
  check_leading_slice("features.4.weight", model->parameter("features.4.weight").value,
                      pruned->parameter("features.4.weight").value);
}
