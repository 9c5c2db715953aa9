// Hidden tests of Lab 2, part 2 (instructor repository only). They are written against lab2.h,
// so they check whichever implementation they are linked with: the reference in `ctest`, or a
// submission's lab2.cpp compiled in its place.
//
// - fold_conv_bn against the float32 arithmetic its contract spells out, on kernels 1 and 3, a
//   dead channel (running variance 0, eps 1e-5), gamma 0 and negative, and more bad arguments;
// - calibrate_activation_ranges on a deeper VGG (consecutive convs), with the extreme values in
//   the first and in a last, smaller batch, one image, and a model left half in training mode;
// - input_quant_params at a half step (halves to even) and on random normalisations, where
//   S (q - Z) is within half a step of the normalised pixel;
// - quantize_vgg against an independent computation of its contract, bit for bit, on random
//   VGGs whose ranges need widening to include 0, its errors (a multiplier not below 1 names
//   the layer), and Tasks 11 and 12 together: a random VGG calibrated and quantized, run by the
//   trusted integer engine against the fp32 model.
//
// No data set is read: every model and image is random and seeded. About 0.5 s in all.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/init.h"
#include "effml/layers.h"
#include "effml/models.h"
#include "effml/quantized.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "tests/part2_support.h"

namespace {

using effml::Sequential;
using effml::Tensor;
using effml::testing::check_error_names;
using lab2_tests::expected_ranges;
using lab2_tests::randomize_vgg;
using lab2_tests::range_of;

// The batch norms of this file's random VGGs come from seed + kBnSalt.
constexpr uint64_t kBnSalt = 2000;


// Checks that two lists of ranges agree within a relative 1e-5 (another batching may sum a
// conv in another order: measured up to 1.4e-7 relative).
void check_ranges(const std::vector<lab2::ActivationRange>& want,
                  const std::vector<lab2::ActivationRange>& got) {
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < want.size(); ++j) {
    INFO("range " << j << ": expected [" << want[j].min << ", " << want[j].max << "], got ["
                  << got[j].min << ", " << got[j].max << "]");
    CHECK(std::fabs(got[j].min - want[j].min) <= 1e-6f + 1e-5f * std::fabs(want[j].min));
    CHECK(std::fabs(got[j].max - want[j].max) <= 1e-6f + 1e-5f * std::fabs(want[j].max));
  }
}

// ---- An independent computation of quantize_vgg's contract ------------------------------------

// One layer as lab2.h's steps 1 to 6 define it, computed here with the float32 and double
// arithmetic the contract of each task spells out.
struct ExpectedLayer {
  std::vector<int8_t> weight;
  std::vector<int32_t> bias, multiplier, shift;
  std::vector<float> weight_scale;
  float input_scale = 0.0f, output_scale = 0.0f;
  int32_t input_zero_point = 0, output_zero_point = 0;
};

// quantize_multiplier's contract: M = f 2^e, f in [0.5, 1), M0 = llround(f 2^31), n = -e.
void expected_multiplier(double m, int32_t& m0, int32_t& n) {
  REQUIRE(m > 0.0);
  REQUIRE(m < 1.0);
  int e = 0;
  const double f = std::frexp(m, &e);
  int64_t q = std::llround(f * 2147483648.0);
  int shift = -e;
  if (q == (int64_t{1} << 31)) {
    q /= 2;
    --shift;
  }
  if (shift > 31) {
    q = 0;
    shift = 0;
  }
  m0 = static_cast<int32_t>(q);
  n = shift;
}

// Task 2 at 8 bits on {min(lo, 0), max(hi, 0)}: S and Z in double, S returned as float.
void expected_output_params(const lab2::ActivationRange& r, float& scale, int32_t& zero_point) {
  const double lo = std::min(r.min, 0.0f), hi = std::max(r.max, 0.0f);
  REQUIRE(hi > lo);
  const double s = (hi - lo) / 255.0;
  zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-128.0 - lo / s), -128.0, 127.0));
  scale = static_cast<float>(s);
}

// Steps 2 to 6 for a layer of real weight (O, ...) and bias (O), reading the input's
// parameters from `in_scale`, `in_zero_point` and leaving the output's there.
ExpectedLayer expected_layer(const Tensor& weight, const Tensor& bias,
                             const lab2::ActivationRange& range, float& in_scale,
                             int32_t& in_zero_point) {
  ExpectedLayer l;
  const int64_t out = weight.size(0), per = weight.numel() / out;
  l.input_scale = in_scale;
  l.input_zero_point = in_zero_point;
  expected_output_params(range, l.output_scale, l.output_zero_point);
  for (int64_t o = 0; o < out; ++o) {
    float max_abs = 0.0f;
    for (int64_t k = 0; k < per; ++k) max_abs = std::max(max_abs, std::fabs(weight[o * per + k]));
    const float sw = max_abs == 0.0f ? 1.0f : max_abs / 127.0f;
    l.weight_scale.push_back(sw);
    for (int64_t k = 0; k < per; ++k) {
      const double q = std::nearbyint(weight[o * per + k] / sw);
      l.weight.push_back(static_cast<int8_t>(std::clamp(q, -128.0, 127.0)));
    }
    const float qb = std::nearbyint(bias[o] / (sw * in_scale));
    l.bias.push_back(static_cast<int32_t>(qb));
    int32_t m0 = 0, n = 0;
    expected_multiplier(static_cast<double>(in_scale) * static_cast<double>(sw) /
                            static_cast<double>(l.output_scale),
                        m0, n);
    l.multiplier.push_back(m0);
    l.shift.push_back(n);
  }
  in_scale = l.output_scale;
  in_zero_point = l.output_zero_point;
  return l;
}

// Every layer of the integer model of `vgg` for `ranges`: the convs (batch norm folded with
// Task 10's float32 formula), then the classifier.
std::vector<ExpectedLayer> expected_model(Sequential& vgg,
                                          const std::vector<lab2::ActivationRange>& ranges) {
  auto& features = dynamic_cast<Sequential&>(vgg[0]);
  float in_scale = static_cast<float>(1.0 / (255.0 * static_cast<double>(effml::kFashionMnistStd)));
  int32_t in_zero_point = -55;
  std::vector<ExpectedLayer> layers;
  std::size_t block = 0;
  for (std::size_t i = 0; i < features.size(); ++i) {
    auto* conv = dynamic_cast<effml::Conv2d*>(&features[i]);
    if (conv == nullptr) continue;
    const auto& bn = dynamic_cast<effml::BatchNorm2d&>(features[i + 1]);
    const Tensor& w = conv->weight.value;
    const int64_t out = w.size(0), per = w.numel() / out;
    Tensor fw(w.shape()), fb({out});
    for (int64_t c = 0; c < out; ++c) {
      const float s = bn.weight.value[c] / std::sqrt(bn.running_var[c] + bn.eps());
      for (int64_t k = 0; k < per; ++k) fw[c * per + k] = w[c * per + k] * s;
      fb[c] = bn.bias.value[c] - bn.running_mean[c] * s;
    }
    layers.push_back(expected_layer(fw, fb, ranges[block++], in_scale, in_zero_point));
  }
  const auto& fc = dynamic_cast<effml::Linear&>(vgg[2]);
  layers.push_back(expected_layer(fc.weight.value, fc.bias.value, ranges.back(), in_scale,
                                  in_zero_point));
  return layers;
}

// Checks one layer of quantize_vgg's result against the independent computation: integers
// exactly, scales within 1e-6 relative (the manifest's tolerance).
void check_layer(const effml::QuantizedLayer& got, const ExpectedLayer& want) {
  INFO("layer " << got.name);
  auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-6f * std::fabs(b); };
  CHECK(got.input_zero_point == want.input_zero_point);
  CHECK(got.output_zero_point == want.output_zero_point);
  CHECK(close(got.input_scale, want.input_scale));
  CHECK(close(got.output_scale, want.output_scale));
  REQUIRE(got.weight.dtype() == effml::DType::Int8);
  REQUIRE(got.weight.numel() == static_cast<int64_t>(want.weight.size()));
  REQUIRE(got.bias.numel() == static_cast<int64_t>(want.bias.size()));
  REQUIRE(got.multiplier.numel() == static_cast<int64_t>(want.bias.size()));
  REQUIRE(got.shift.numel() == static_cast<int64_t>(want.bias.size()));
  REQUIRE(got.weight_scale.numel() == static_cast<int64_t>(want.bias.size()));
  int64_t bad_weights = 0;
  for (std::size_t k = 0; k < want.weight.size(); ++k) {
    bad_weights += got.weight.data_i8()[k] != want.weight[k];
  }
  CHECK(bad_weights == 0);
  for (std::size_t o = 0; o < want.bias.size(); ++o) {
    INFO("output " << o);
    CHECK(close(got.weight_scale[static_cast<int64_t>(o)], want.weight_scale[o]));
    CHECK(got.bias.data_i32()[o] == want.bias[o]);
    CHECK(got.multiplier.data_i32()[o] == want.multiplier[o]);
    CHECK(got.shift.data_i32()[o] == want.shift[o]);
  }
}

}  // namespace

// ---- Task 10 -----------------------------------------------------------------------------------

// The contract's float32 arithmetic, s = gamma / sqrt(var + eps), w' = w s, b' = beta - mean s,
// on a 3x3 conv (7, 5, 3, 3) with eps 1e-3 and a 1x1 conv (5, 4, 1, 1) with eps 1e-5, running
// variances from 0 to 4, one gamma 0 (w' = 0, b' = beta) and negative gammas. Allowed the
// manifest's rtol 1e-6, atol 1e-7 (the same formula gives the same bits).
TEST_CASE("hidden: fold_conv_bn follows the contract's float32 arithmetic", "[task10][hidden]") {
  effml::Rng rng(20);
  for (const auto& [shape, eps] : {std::pair<effml::Shape, float>{{7, 5, 3, 3}, 1e-3f},
                                   std::pair<effml::Shape, float>{{5, 4, 1, 1}, 1e-5f}}) {
    const int64_t out = shape[0];
    INFO("weight " << effml::shape_str(shape) << ", eps " << eps);
    const Tensor w = Tensor::randn(shape, rng);
    Tensor gamma({out}), beta({out}), mean({out}), var({out});
    for (int64_t c = 0; c < out; ++c) {
      gamma[c] = c == 1 ? 0.0f : rng.uniform(-2.0f, 2.0f);
      beta[c] = rng.normal();
      mean[c] = rng.normal();
      var[c] = c == 0 ? 0.0f : rng.uniform(0.0f, 4.0f);
    }
    const lab2::FoldedConv f = lab2::fold_conv_bn(w, gamma, beta, mean, var, eps);
    REQUIRE(f.weight.shape() == shape);
    REQUIRE(f.bias.shape() == effml::Shape{out});
    const int64_t per = w.numel() / out;
    for (int64_t c = 0; c < out; ++c) {
      INFO("output channel " << c);
      const float s = gamma[c] / std::sqrt(var[c] + eps);
      const float b = beta[c] - mean[c] * s;
      CHECK(std::fabs(f.bias[c] - b) <= 1e-7f + 1e-6f * std::fabs(b));
      int bad = 0;
      for (int64_t k = c * per; k < (c + 1) * per; ++k) {
        const float want = w[k] * s;
        bad += !(std::fabs(f.weight[k] - want) <= 1e-7f + 1e-6f * std::fabs(want));
      }
      CHECK(bad == 0);
    }
    CHECK(f.bias[1] == beta[1]);  // gamma 0: the channel is its shift
  }
}

// A dead channel (running variance 0) with PyTorch's eps 1e-5: s = 1 / sqrt(1e-5) = 316.23,
// large but finite; b' = 0.5 - 0.5 * 316.23 = -157.61.
TEST_CASE("hidden: fold_conv_bn on a dead channel with eps 1e-5", "[task10][hidden]") {
  const lab2::FoldedConv f =
      lab2::fold_conv_bn(Tensor({1, 1, 1, 1}, {1.0f}), Tensor({1}, {1.0f}), Tensor({1}, {0.5f}),
                         Tensor({1}, {0.5f}), Tensor({1}, {0.0f}), 1e-5f);
  const double s = 1.0 / std::sqrt(static_cast<double>(1e-5f));
  INFO("w' = " << f.weight[0] << ", b' = " << f.bias[0]);
  CHECK(std::isfinite(f.weight[0]));
  CHECK(std::fabs(f.weight[0] - s) <= 1e-6 * s);
  CHECK(std::fabs(f.bias[0] - (0.5 - 0.5 * s)) <= 1e-6 * 0.5 * s);
}

TEST_CASE("hidden: fold_conv_bn errors on every argument", "[task10][hidden]") {
  const Tensor w = Tensor::ones({4, 2, 3, 3});
  const Tensor v4 = Tensor::ones({4});
  const Tensor v9 = Tensor::ones({9});
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v9, v4, v4, 1e-5f); }, "9");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v9, v4, 1e-5f); }, "9");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v4, v9, 1e-5f); }, "9");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v4, Tensor::ones({4, 1}), 1e-5f); },
                    "(4, 1)");
  check_error_names(
      [&] { lab2::fold_conv_bn(Tensor::ones({4, 2, 3, 3, 1}), v4, v4, v4, v4, 1e-5f); },
      "(4, 2, 3, 3, 1)");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v4, v4, std::nanf("")); }, "nan");
  // An int32 gamma read as float32 would be garbage: any effml::Error.
  check_error_names(
      [&] { lab2::fold_conv_bn(w, Tensor::zeros({4}, effml::DType::Int32), v4, v4, v4, 1e-5f); },
      "");
}

// ---- Task 11 -----------------------------------------------------------------------------------

// Four conv blocks, two of them back to back (cfg {4, 6, M, 8, M, 5, M}): 5 ranges. 5 images
// in batches of 2 (2 + 2 + 1).
TEST_CASE("hidden: calibrate_activation_ranges on a deeper VGG", "[task11][hidden]") {
  const std::vector<int64_t> cfg{4, 6, 0, 8, 0, 5, 0};
  auto model = effml::make_vgg(cfg);
  randomize_vgg(*model, 21, kBnSalt);
  effml::Rng rng(21);
  const Tensor images = Tensor::randn({5, 1, 28, 28}, rng);
  const auto want = expected_ranges(*model, images);
  REQUIRE(want.size() == 5);
  model->train();
  check_ranges(want, lab2::calibrate_activation_ranges(*model, images, 2));
}

// 9 images in batches of 4 (4 + 4 + 1): image 0 (first batch) is scaled by -6 and image 8
// (alone in the last, smaller batch) by 6, so the extremes of the ranges come from those two
// batches. A calibration that drops the last partial batch or keeps only one batch's ranges
// gives other figures (checked below on the images without the last one).
TEST_CASE("hidden: calibrate_activation_ranges keeps the extremes of every batch",
          "[task11][hidden]") {
  const std::vector<int64_t> cfg{3, 0, 5, 0};
  auto model = effml::make_vgg(cfg);
  randomize_vgg(*model, 22, kBnSalt);
  effml::Rng rng(22);
  Tensor images = Tensor::randn({9, 1, 28, 28}, rng);
  for (int64_t k = 0; k < 784; ++k) {
    images[k] *= -6.0f;
    images[8 * 784 + k] *= 6.0f;
  }
  const auto want = expected_ranges(*model, images);
  const auto without_last = expected_ranges(*model, images.narrow(0, 8));
  bool last_matters = false;
  for (std::size_t j = 0; j < want.size(); ++j) {
    last_matters = last_matters || std::fabs(without_last[j].max - want[j].max) > 0.01f * want[j].max;
  }
  REQUIRE(last_matters);
  model->train();
  check_ranges(want, lab2::calibrate_activation_ranges(*model, images, 4));
}

// One image, in a batch of 1 and in a batch of 100.
TEST_CASE("hidden: calibrate_activation_ranges on one image", "[task11][hidden]") {
  auto model = effml::make_vgg({5, 0, 3, 0});
  randomize_vgg(*model, 23, kBnSalt);
  effml::Rng rng(23);
  const Tensor image = Tensor::randn({1, 1, 28, 28}, rng);
  const auto want = expected_ranges(*model, image);
  check_ranges(want, lab2::calibrate_activation_ranges(*model, image, 1));
  check_ranges(want, lab2::calibrate_activation_ranges(*model, image, 100));
}

// The model is put in evaluation mode as a whole, even when only one batch norm was left in
// training mode.
TEST_CASE("hidden: calibrate_activation_ranges sets every module to evaluation mode",
          "[task11][hidden]") {
  const std::vector<int64_t> cfg{3, 0, 5, 0};
  auto model = effml::make_vgg(cfg);
  randomize_vgg(*model, 24, kBnSalt);
  effml::Rng rng(24);
  const Tensor images = Tensor::randn({4, 1, 28, 28}, rng);
  const auto want = expected_ranges(*model, images);
  model->eval();
  dynamic_cast<Sequential&>((*model)[0])[5].train();  // the second block's batch norm
  check_ranges(want, lab2::calibrate_activation_ranges(*model, images, 4));
  for (const auto& m : model->named_modules()) {
    INFO("module '" << m.first << "'");
    CHECK_FALSE(m.second->is_training());
  }
}

// Images that are not 28x28 do not fit the classifier: an effml::Error, not a crash.
TEST_CASE("hidden: calibrate_activation_ranges rejects images of another size",
          "[task11][hidden]") {
  auto model = effml::make_vgg({3, 0, 5, 0});
  randomize_vgg(*model, 25, kBnSalt);
  effml::Rng rng(25);
  check_error_names(
      [&] { lab2::calibrate_activation_ranges(*model, Tensor::randn({2, 1, 20, 20}, rng), 2); }, "");
}

// ---- Task 12 (a) -------------------------------------------------------------------------------

// Mean 0.5: 255 * 0.5 - 128 = -0.5 exactly, which rounds to even: Z = 0, not -1.
TEST_CASE("hidden: input_quant_params rounds a half to even", "[task12][hidden]") {
  CHECK(lab2::input_quant_params(0.5f, 0.5f).zero_point == 0);
}

// 200 random normalisations (mean in [0, 1], std from 0.001 to 1000 on a log scale): S is
// 1 / (255 std) within the float32 rounding of the result (6e-8 relative, allowed 1e-7), and
// S (q - Z) is within half a step of the normalised pixel for every pixel value (Z is the
// nearest integer; allowed 0.5001 steps for the float32 scale times |q - Z| <= 255).
TEST_CASE("hidden: input_quant_params on random normalisations", "[task12][hidden]") {
  effml::Rng rng(26);
  int bad = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const float mean = trial == 0 ? 0.0f : trial == 1 ? 1.0f : rng.uniform();
    const float std = static_cast<float>(std::pow(10.0, rng.uniform(-3.0f, 3.0f)));
    const lab2::QuantParams p = lab2::input_quant_params(mean, std);
    const double s = 1.0 / (255.0 * static_cast<double>(std));
    double worst = 0.0;
    for (int pixel = 0; pixel <= 255; ++pixel) {
      const double x = (pixel / 255.0 - static_cast<double>(mean)) / static_cast<double>(std);
      worst = std::max(worst, std::fabs(static_cast<double>(p.scale) * ((pixel - 128) - p.zero_point) - x));
    }
    const bool ok = std::fabs(p.scale - s) <= 1e-7 * s && worst <= 0.5001 * s &&
                    p.zero_point >= -128 && p.zero_point <= 127;
    if (!ok && ++bad <= 3) {
      FAIL_CHECK("mean " << mean << ", std " << std << ": S = " << p.scale << " (expected " << s
                         << "), Z = " << p.zero_point << ", largest error " << worst / s
                         << " steps");
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("hidden: input_quant_params rejects NaN", "[task12][hidden]") {
  check_error_names([] { lab2::input_quant_params(std::nanf(""), 0.5f); }, "nan");
  check_error_names([] { lab2::input_quant_params(0.5f, std::nanf("")); }, "nan");
}

// ---- Task 12 (b) -------------------------------------------------------------------------------

// Three random VGGs, ranges measured on random images, then edited as a calibration could give
// them: a ReLU output that never reached 0 (min 0.3: the range is widened to [0, max], Z
// = -128) and logits that were all positive ([0.5, max]: widened likewise). Every tensor is
// compared with the independent computation above: integers exactly, scales within 1e-6.
TEST_CASE("hidden: quantize_vgg matches its contract bit for bit", "[task12][hidden]") {
  const std::vector<std::vector<int64_t>> cfgs{{3, 0, 5, 0}, {4, 6, 0, 8, 0, 5, 0}, {7, 0, 9, 0, 6, 0}};
  for (std::size_t t = 0; t < cfgs.size(); ++t) {
    INFO("cfg " << t);
    auto model = effml::make_vgg(cfgs[t]);
    randomize_vgg(*model, 30 + t, kBnSalt);
    effml::Rng rng(30 + t);
    std::vector<lab2::ActivationRange> ranges =
        expected_ranges(*model, Tensor::randn({6, 1, 28, 28}, rng));
    if (t == 1) ranges[0].min = 0.3f;
    if (t == 2) ranges.back() = {0.5f, std::max(ranges.back().max, 1.0f)};
    const std::vector<ExpectedLayer> want = expected_model(*model, ranges);
    const effml::QuantizedVgg q = lab2::quantize_vgg(*model, ranges);
    CHECK(q.cfg == cfgs[t]);
    REQUIRE(q.convs.size() + 1 == want.size());
    for (std::size_t j = 0; j < q.convs.size(); ++j) check_layer(q.convs[j], want[j]);
    check_layer(q.classifier, want.back());
    if (t == 1) CHECK(q.convs[0].output_zero_point == -128);
    if (t == 2) CHECK(q.classifier.output_zero_point == -128);
  }
}

// A range so narrow that S_x S_w / S_y >= 1 cannot be requantized by a right shift: the error
// names the layer. cfg {3, M, 5, M}: the second conv is features.4.
TEST_CASE("hidden: quantize_vgg names the layer whose multiplier is not below 1",
          "[task12][hidden]") {
  auto model = effml::make_vgg({3, 0, 5, 0});
  randomize_vgg(*model, 31, kBnSalt);
  effml::Rng rng(31);
  const std::vector<lab2::ActivationRange> ranges =
      expected_ranges(*model, Tensor::randn({4, 1, 28, 28}, rng));
  std::vector<lab2::ActivationRange> narrow_block = ranges;
  narrow_block[1] = {0.0f, 1e-6f};
  check_error_names([&] { lab2::quantize_vgg(*model, narrow_block); }, "features.4");
  std::vector<lab2::ActivationRange> narrow_logits = ranges;
  narrow_logits.back() = {-1e-6f, 1e-6f};
  check_error_names([&] { lab2::quantize_vgg(*model, narrow_logits); }, "classifier");
}

TEST_CASE("hidden: quantize_vgg with no ranges names the count it needs", "[task12][hidden]") {
  auto model = effml::make_vgg({4, 6, 0, 8, 0, 5, 0});
  randomize_vgg(*model, 32, kBnSalt);
  check_error_names([&] { lab2::quantize_vgg(*model, {}); }, "5");
}

// Tasks 11 and 12 together, as the runner uses them: a random VGG (cfg {8, M, 12, M, 16, M})
// calibrated on 64 random "pixel" images (p uniform in 0..255, normalised with Fashion-MNIST's
// statistics) in batches of 10, quantized, and run by the trusted engine on the same pixels.
// On its own calibration images no activation leaves its range. Measured with the reference:
// the dequantized logits are within 2.83 output steps (S_y = 0.0253) of the fp32 logits, mean
// 0.79 steps; allowed 5 and 1.2.
TEST_CASE("hidden: a calibrated and quantized VGG tracks its fp32 logits", "[task12][task11][hidden]") {
  auto model = effml::make_vgg({8, 0, 12, 0, 16, 0});
  randomize_vgg(*model, 33, kBnSalt);
  effml::Rng rng(33);
  Tensor pixels({64, 1, 28, 28});
  for (int64_t k = 0; k < pixels.numel(); ++k) {
    pixels[k] = static_cast<float>(rng.randint(256)) / 255.0f;
  }
  const Tensor normalized = (pixels - effml::kFashionMnistMean) / effml::kFashionMnistStd;
  const auto ranges = lab2::calibrate_activation_ranges(*model, normalized, 10);
  const effml::QuantizedVgg q = lab2::quantize_vgg(*model, ranges);
  model->eval();
  const Tensor fp32 = model->forward(normalized);
  const Tensor int8 = q.forward(effml::pixels_to_int8(pixels));
  const double s = q.classifier.output_scale;
  double worst = 0.0, total = 0.0;
  for (int64_t k = 0; k < fp32.numel(); ++k) {
    const double steps =
        std::fabs(s * (int8.data_i8()[k] - q.classifier.output_zero_point) - fp32[k]) / s;
    worst = std::max(worst, steps);
    total += steps;
  }
  INFO("worst " << worst << " steps, mean " << total / fp32.numel() << " steps, S_y = " << s);
  CHECK(worst <= 5.0);
  CHECK(total / fp32.numel() <= 1.2);
}
