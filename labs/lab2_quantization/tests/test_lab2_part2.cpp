// Public tests of Lab 2, part 2 (Tasks 10 to 12): the whole VGG integer-only. Run them with
// `build/tests/lab2_quantization_tests "[task10],[task11],[task12]"`, or `ctest -R lab2`.
//
// Every expectation is computed here, independently of your code: a conv followed by an
// evaluation-mode batch norm run by the core's own layers (Task 10), activation ranges measured
// by running the VGG's modules one at a time (Task 11), the input parameters from their formula
// (Task 12 a), and for the committed dense VGG the folded weights, the scales and the
// multipliers recomputed from the fp32 model, then the integer-only model run by the trusted
// engine (effml::QuantizedVgg) against the fp32 model on 1,000 Fashion-MNIST test images
// (Task 12 b). Every test calls your code, so none of them passes before you have written it.
//
// The Task 12 (b) tests read the first 500 training images (calibration) and the first 1,000
// test images; the whole file runs in about 3 seconds.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
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
#include "effml/safetensors.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "tests/part2_support.h"
#include "model_snapshot.h"

namespace {

using effml::Sequential;
using effml::Tensor;
using effml::testing::check_error_names;
using lab2_tests::expected_ranges;
using lab2_tests::randomize_vgg;
using lab2_tests::range_of;

// The batch norms of this file's random VGGs come from seed + kBnSalt.
constexpr uint64_t kBnSalt = 1000;


// |got - want| <= atol + rtol |want|, reported with both values.
void check_close(const std::string& what, double want, double got, double rtol, double atol) {
  INFO(what << ": expected " << want << ", got " << got);
  CHECK(std::fabs(got - want) <= atol + rtol * std::fabs(want));
}

// Every module of `model`, itself included, is in evaluation mode.
bool all_in_eval_mode(Sequential& model) {
  for (const auto& m : model.named_modules()) {
    if (m.second->is_training()) return false;
  }
  return true;
}

// The committed dense VGG, the ranges of its activations on training images 0 to 499 (measured
// by expected_ranges, not by Task 11), and test images 0 to 999 both as pixels in [0, 1] and
// normalised. Loaded once per test program.
struct DenseSetup {
  std::unique_ptr<Sequential> vgg;
  std::vector<lab2::ActivationRange> ranges;
  Tensor test01;
  Tensor test_normalized;
  std::vector<int32_t> labels;
};

DenseSetup& dense_setup() {
  static DenseSetup s = [] {
    DenseSetup d;
    d.vgg = effml::make_vgg();
    effml::load_checkpoint(std::string(EFFML_SOURCE_DIR) +
                               "/labs/lab2_quantization/vgg_dense.safetensors",
                           *d.vgg);
    const effml::Dataset train = effml::load_fashion_mnist("train");
    d.ranges = expected_ranges(*d.vgg, train.images.narrow(0, 500));
    const effml::Dataset test =
        effml::load_fashion_mnist("test", effml::default_fashion_mnist_dir(), false).subset(0, 1000);
    d.test01 = test.images;
    d.test_normalized = (test.images - effml::kFashionMnistMean) / effml::kFashionMnistStd;
    d.labels = test.labels;
    return d;
  }();
  return s;
}

// The fp32 conv weight and bias of conv block `conv` (features.<conv>, batch norm at
// features.<conv + 1>) with the batch norm folded in, computed in double.
struct FoldedDouble {
  std::vector<double> weight;  // (Cout, Cin, 3, 3), row-major
  std::vector<double> bias;    // (Cout)
};

FoldedDouble fold_in_double(Sequential& vgg, std::size_t conv) {
  auto& features = dynamic_cast<Sequential&>(vgg[0]);
  const auto& c = dynamic_cast<effml::Conv2d&>(features[conv]);
  const auto& bn = dynamic_cast<effml::BatchNorm2d&>(features[conv + 1]);
  const Tensor& w = c.weight.value;
  const int64_t out = w.size(0), per = w.numel() / out;
  FoldedDouble f;
  for (int64_t o = 0; o < out; ++o) {
    const double s = static_cast<double>(bn.weight.value[o]) /
                     std::sqrt(static_cast<double>(bn.running_var[o]) + static_cast<double>(bn.eps()));
    for (int64_t k = 0; k < per; ++k) f.weight.push_back(static_cast<double>(w[o * per + k]) * s);
    f.bias.push_back(static_cast<double>(bn.bias.value[o]) - static_cast<double>(bn.running_mean[o]) * s);
  }
  return f;
}

// Checks a quantized layer's weight, weight scales and bias against the real weight and bias
// (row-major (O, ...) in `weight`): S_w[o] = max |w_o| / 127; q_w = round(w / S_w), so
// |q_w S_w - w| <= S_w / 2 and some |q_w| of every non-zero channel is 127; q_b = round(b / (S_x
// S_w[o])), so |q_b S_x S_w[o] - b| <= S_x S_w[o] / 2. The 0.501 leaves room for the float32
// arithmetic of the contract against the double here. Measured on the dense VGG: scales within
// 1.4e-7 relative (allowed 1e-6), weights within 0.499999 steps, biases (|q_b| up to 42,540)
// within 0.4964 steps.
void check_weight_and_bias(const effml::QuantizedLayer& l, const std::vector<double>& weight,
                           const std::vector<double>& bias) {
  INFO("layer " << l.name);
  const int64_t out = static_cast<int64_t>(bias.size());
  const int64_t per = static_cast<int64_t>(weight.size()) / out;
  REQUIRE(l.weight.dtype() == effml::DType::Int8);
  REQUIRE(l.weight.numel() == out * per);
  REQUIRE(l.weight_scale.numel() == out);
  REQUIRE(l.bias.dtype() == effml::DType::Int32);
  REQUIRE(l.bias.numel() == out);
  int bad_weights = 0, bad_biases = 0;
  for (int64_t o = 0; o < out; ++o) {
    double max_abs = 0.0;
    int max_q = 0;
    for (int64_t k = 0; k < per; ++k) max_abs = std::max(max_abs, std::fabs(weight[o * per + k]));
    const double sw = l.weight_scale[o];
    check_close("weight_scale[" + std::to_string(o) + "]", max_abs / 127.0, sw, 1e-6, 0.0);
    for (int64_t k = 0; k < per; ++k) {
      const int q = l.weight.data_i8()[o * per + k];
      max_q = std::max(max_q, std::abs(q));
      if (std::fabs(q * sw - weight[o * per + k]) > 0.501 * sw && ++bad_weights <= 3) {
        FAIL_CHECK("weight[" << o << ", " << k << "]: q = " << q << " times S_w = " << sw
                             << " is " << q * sw << ", the folded weight " << weight[o * per + k]);
      }
    }
    if (max_abs > 0.0) {
      INFO("output channel " << o);
      CHECK(max_q == 127);
    }
    const double step = static_cast<double>(l.input_scale) * sw;
    const double qb = l.bias.data_i32()[o];
    if (std::fabs(qb * step - bias[o]) > 0.501 * step && ++bad_biases <= 3) {
      FAIL_CHECK("bias[" << o << "]: q_b = " << qb << " times S_x S_w = " << step << " is "
                         << qb * step << ", the folded bias " << bias[o]);
    }
  }
  CHECK(bad_weights == 0);
  CHECK(bad_biases == 0);
}

}  // namespace

// ---- Task 10 -----------------------------------------------------------------------------------

// One weight w = 2, gamma = 3, beta = 1, running mean 0.5, running variance 3.75, eps 0.25:
// s = 3 / sqrt(3.75 + 0.25) = 3 / 2 = 1.5, w' = 2 * 1.5 = 3, b' = 1 - 0.5 * 1.5 = 0.25. Every
// step is exact in float32.
TEST_CASE("fold_conv_bn: a 1x1x1x1 conv by hand", "[task10]") {
  const lab2::FoldedConv f =
      lab2::fold_conv_bn(Tensor({1, 1, 1, 1}, {2.0f}), Tensor({1}, {3.0f}), Tensor({1}, {1.0f}),
                         Tensor({1}, {0.5f}), Tensor({1}, {3.75f}), 0.25f);
  REQUIRE(f.weight.shape() == effml::Shape{1, 1, 1, 1});
  REQUIRE(f.bias.shape() == effml::Shape{1});
  CHECK(f.weight[0] == 3.0f);
  CHECK(f.bias[0] == 0.25f);
}

// Two output channels of two weights each (2 input channels, 1x1 kernels), each folded with
// its own s:
//   channel 0: gamma 3, beta 1, mean 0.5, var 3.75: s = 3 / sqrt(4) = 1.5, w {2, -4} -> {3, -6},
//              b = 1 - 0.5 * 1.5 = 0.25;
//   channel 1: gamma -1, beta 0, mean 2, var 0 (a channel that never varied: only eps keeps the
//              division finite): s = -1 / sqrt(0.25) = -2, w {1, 0.5} -> {-2, -1},
//              b = 0 - 2 * (-2) = 4.
TEST_CASE("fold_conv_bn: one scale per output channel, running variance 0", "[task10]") {
  const lab2::FoldedConv f = lab2::fold_conv_bn(
      Tensor({2, 2, 1, 1}, {2.0f, -4.0f, 1.0f, 0.5f}), Tensor({2}, {3.0f, -1.0f}),
      Tensor({2}, {1.0f, 0.0f}), Tensor({2}, {0.5f, 2.0f}), Tensor({2}, {3.75f, 0.0f}), 0.25f);
  REQUIRE(f.weight.shape() == effml::Shape{2, 2, 1, 1});
  CHECK(f.weight.to_vector() == std::vector<float>{3.0f, -6.0f, -2.0f, -1.0f});
  CHECK(f.bias.to_vector() == std::vector<float>{0.25f, 4.0f});
}

// The folded conv must compute what the conv followed by the evaluation-mode batch norm
// computes. Conv2d(3, 6, 3, padding 1, no bias) + BatchNorm2d(6) with random gamma in [0.5, 2]
// (one negative), beta, running means of magnitude 0.1 to 1 and variances from 0.01 to 4, on 2
// random 7x7 images, against Conv2d(3, 6, 3, padding 1) with the folded weight and bias. The
// outputs reach 209 (s = 20 on the channel of variance 0.01); measured largest difference with
// the reference 3.1e-5, 1.5e-7 of the largest output (float32 rounding of two orders of
// operations). Allowed: 1e-6 of the largest output (2.1e-4), which still catches any wrong s,
// sign or missing term (a mean left out moves outputs by |mean s| >= 0.025).
TEST_CASE("fold_conv_bn: the folded conv equals conv then batch norm", "[task10]") {
  effml::Rng rng(10);
  effml::Conv2d conv(3, 6, 3, 1, 1, 1, false);
  conv.weight.value = Tensor::randn({6, 3, 3, 3}, rng);
  effml::BatchNorm2d bn(6);
  for (int64_t c = 0; c < 6; ++c) {
    bn.weight.value[c] = rng.uniform(0.5f, 2.0f) * (c == 2 ? -1.0f : 1.0f);
    bn.bias.value[c] = rng.normal();
    bn.running_mean[c] = rng.uniform(0.1f, 1.0f) * (c % 2 ? -1.0f : 1.0f);
    bn.running_var[c] = c == 0 ? 0.01f : rng.uniform(0.01f, 4.0f);
  }
  conv.eval();
  bn.eval();
  const Tensor x = Tensor::randn({2, 3, 7, 7}, rng);
  const Tensor want = bn.forward(conv.forward(x));

  const lab2::FoldedConv f = lab2::fold_conv_bn(conv.weight.value, bn.weight.value,
                                                bn.bias.value, bn.running_mean, bn.running_var,
                                                bn.eps());
  REQUIRE(f.weight.shape() == conv.weight.value.shape());
  REQUIRE(f.bias.shape() == effml::Shape{6});
  effml::Conv2d folded(3, 6, 3, 1, 1);
  folded.weight.value = f.weight;
  folded.bias.value = f.bias;
  folded.eval();
  const Tensor got = folded.forward(x);
  REQUIRE(got.shape() == want.shape());
  const float diff = (got - want).abs().max();
  INFO("largest difference " << diff << " on outputs up to " << want.abs().max());
  CHECK(diff <= 1e-6f * want.abs().max());
}

TEST_CASE("fold_conv_bn: errors name the shape or the value", "[task10]") {
  const Tensor w = Tensor::ones({4, 2, 3, 3});
  const Tensor v4 = Tensor::ones({4});
  // gamma of 13 values for 4 output channels.
  check_error_names([&] { lab2::fold_conv_bn(w, Tensor::ones({13}), v4, v4, v4, 1e-5f); }, "13");
  // A linear weight is not a conv weight.
  check_error_names(
      [&] { lab2::fold_conv_bn(Tensor::ones({4, 18}), v4, v4, v4, v4, 1e-5f); }, "(4, 18)");
  check_error_names(
      [&] { lab2::fold_conv_bn(w, v4, v4, v4, Tensor({4}, {1.0f, -0.5f, 1.0f, 1.0f}), 1e-5f); },
      "-0.5");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v4, v4, -0.25f); }, "-0.25");
  check_error_names([&] { lab2::fold_conv_bn(w, v4, v4, v4, v4, 0.0f); }, "0");
}

// ---- Task 11 -----------------------------------------------------------------------------------

// Two identical random VGGs (cfg {3, M, 5, M}): one measured by expected_ranges, the other
// handed to calibrate_activation_ranges in training mode. A calibration that keeps training
// mode normalises with each batch's statistics (and moves the running ones): the test checks
// that this would change the ranges, so that it can tell.
TEST_CASE("calibrate_activation_ranges: each ReLU output's range, then the logits'", "[task11]") {
  const std::vector<int64_t> cfg{3, 0, 5, 0};
  auto reference = effml::make_vgg(cfg);
  auto model = effml::make_vgg(cfg);
  randomize_vgg(*reference, 5, kBnSalt);
  randomize_vgg(*model, 5, kBnSalt);
  effml::Rng rng(11);
  const Tensor images = Tensor::randn({7, 1, 28, 28}, rng);
  const std::vector<lab2::ActivationRange> want = expected_ranges(*reference, images);
  REQUIRE(want.size() == 3);

  model->train();
  const auto before = effml::testing::snapshot(*model);
  const std::vector<lab2::ActivationRange> got = lab2::calibrate_activation_ranges(*model, images, 7);
  INFO("cfg {3, M, 5, M}: 2 conv blocks, so 3 ranges");
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < want.size(); ++j) {
    INFO("range " << j);
    // Same modules on the same batch: only the order of a float sum could differ.
    check_close("min", want[j].min, got[j].min, 1e-5, 1e-6);
    check_close("max", want[j].max, got[j].max, 1e-5, 1e-6);
  }
  CHECK(got[0].min >= 0.0f);
  CHECK(got[1].min >= 0.0f);
  CHECK(got[2].min < 0.0f);  // logits take both signs
  CHECK(all_in_eval_mode(*model));
  const auto after = effml::testing::snapshot(*model);
  for (const auto& [name, t] : before) {
    INFO(name << " changed: calibration must not train the batch norms");
    CHECK(after.at(name).equal(t));
  }

  // The same VGG in training mode gives other ranges (measured: the first block's maximum
  // moves by 0.36, from 5.81), so the checks above tell the two modes apart.
  auto in_training = effml::make_vgg(cfg);
  randomize_vgg(*in_training, 5, kBnSalt);
  in_training->train();
  auto& features = dynamic_cast<Sequential&>((*in_training)[0]);
  Tensor x = images;
  for (std::size_t i = 0; i < 3; ++i) x = features[i].forward(x);
  CHECK(std::fabs(range_of(x).max - want[0].max) > 0.01f * want[0].max);
}

// The range is over every image, whatever the batching: one at a time, 3 at a time (7 = 3 + 3
// + 1, the last batch smaller), all at once and more than there are. Measured with the
// reference: batch sizes 7 and 50 give the all-at-once ranges to the last bit, 1 and 3 within
// 1.4e-7 relative (the conv sums in another order for small batches); allowed 1e-5.
TEST_CASE("calibrate_activation_ranges: the batch size does not change the ranges", "[task11]") {
  const std::vector<int64_t> cfg{3, 0, 5, 0};
  auto model = effml::make_vgg(cfg);
  randomize_vgg(*model, 6, kBnSalt);
  effml::Rng rng(12);
  const Tensor images = Tensor::randn({7, 1, 28, 28}, rng);
  const std::vector<lab2::ActivationRange> want = expected_ranges(*model, images);
  for (int64_t batch : {1, 3, 7, 50}) {
    INFO("batch size " << batch);
    model->train();
    const std::vector<lab2::ActivationRange> got =
        lab2::calibrate_activation_ranges(*model, images, batch);
    REQUIRE(got.size() == want.size());
    for (std::size_t j = 0; j < want.size(); ++j) {
      INFO("range " << j);
      check_close("min", want[j].min, got[j].min, 1e-5, 1e-6);
      check_close("max", want[j].max, got[j].max, 1e-5, 1e-6);
    }
  }
}

TEST_CASE("calibrate_activation_ranges: errors name the shape or the value", "[task11]") {
  auto model = effml::make_vgg({3, 0, 5, 0});
  randomize_vgg(*model, 7, kBnSalt);
  effml::Rng rng(13);
  const Tensor images = Tensor::randn({2, 1, 28, 28}, rng);
  check_error_names(
      [&] { lab2::calibrate_activation_ranges(*model, Tensor::zeros({0, 1, 28, 28}), 4); },
      "(0, 1, 28, 28)");
  check_error_names([&] { lab2::calibrate_activation_ranges(*model, images, 0); }, "0");
  check_error_names([&] { lab2::calibrate_activation_ranges(*model, images, -2); }, "-2");
  check_error_names(
      [&] { lab2::calibrate_activation_ranges(*model, Tensor::randn({2, 3, 28, 28}, rng), 2); },
      "(2, 3, 28, 28)");
  check_error_names(
      [&] { lab2::calibrate_activation_ranges(*model, Tensor::randn({2, 28, 28}, rng), 2); },
      "(2, 28, 28)");
}

// ---- Task 12 (a) -------------------------------------------------------------------------------

// Fashion-MNIST: S = 1 / (255 * 0.3530) = 0.011109..., Z = round(255 * 0.2860 - 128) =
// round(-55.07) = -55. The arithmetic is double from the float arguments, so the only error
// left is the final conversion to float: half a float32 step, 6e-8 relative.
TEST_CASE("input_quant_params: Fashion-MNIST's normalisation", "[task12]") {
  const lab2::QuantParams p = lab2::input_quant_params(effml::kFashionMnistMean, effml::kFashionMnistStd);
  check_close("scale", 1.0 / (255.0 * static_cast<double>(effml::kFashionMnistStd)), p.scale,
              1e-7, 0.0);
  CHECK(p.zero_point == -55);
}

// Mean 0: Z = round(0 - 128) = -128 (pixel 0 is the real 0). Mean 1: Z = 255 - 128 = 127.
// Standard deviation 1: S = 1 / 255; 0.5: S = 2 / 255.
TEST_CASE("input_quant_params: means 0 and 1 give the ends of the range", "[task12]") {
  const lab2::QuantParams zero = lab2::input_quant_params(0.0f, 1.0f);
  CHECK(zero.zero_point == -128);
  check_close("scale", 1.0 / 255.0, zero.scale, 1e-7, 0.0);
  const lab2::QuantParams one = lab2::input_quant_params(1.0f, 0.5f);
  CHECK(one.zero_point == 127);
  check_close("scale", 2.0 / 255.0, one.scale, 1e-7, 0.0);
}

// S (q - Z) with q = p - 128 against the fp32 model's input (p / 255 - mean) / std, for every
// pixel value: the difference is S (255 mean - 128 - Z), at most half a step since Z is the
// nearest integer; allowed one step.
TEST_CASE("input_quant_params: S (q - Z) is the normalised pixel within one step", "[task12]") {
  const std::vector<std::pair<float, float>> norms{
      {effml::kFashionMnistMean, effml::kFashionMnistStd},
      {effml::kMnistMean, effml::kMnistStd},
      {0.0f, 1.0f},
      {1.0f, 0.25f},
      {0.5f, 0.5f},
      {0.7321f, 2.5f}};
  for (const auto& [mean, std] : norms) {
    INFO("mean " << mean << ", std " << std);
    const lab2::QuantParams p = lab2::input_quant_params(mean, std);
    double worst = 0.0;
    for (int pixel = 0; pixel <= 255; ++pixel) {
      const double x = (pixel / 255.0 - static_cast<double>(mean)) / static_cast<double>(std);
      const double approx = static_cast<double>(p.scale) * ((pixel - 128) - p.zero_point);
      worst = std::max(worst, std::fabs(approx - x));
    }
    INFO("largest error " << worst << ", scale " << p.scale);
    CHECK(worst <= p.scale);
  }
}

TEST_CASE("input_quant_params: errors name the value", "[task12]") {
  check_error_names([] { lab2::input_quant_params(0.5f, 0.0f); }, "0");
  check_error_names([] { lab2::input_quant_params(0.5f, -0.25f); }, "-0.25");
  check_error_names([] { lab2::input_quant_params(-0.125f, 0.5f); }, "-0.125");
  check_error_names([] { lab2::input_quant_params(1.5f, 0.5f); }, "1.5");
}

// ---- Task 12 (b) -------------------------------------------------------------------------------

// The layout of the integer model of the dense VGG (cfg {16, M, 32, M, 64, 64, M}): the names,
// the chain of scales and zero points from layer to layer, the input's from Task 12 (a), and
// each output's from its range widened to include 0. Ranges measured on training images 0 to
// 499: ReLU outputs [0, 4.921], [0, 2.718], [0, 1.959], [0, 7.136], logits [-9.124, 21.629].
// The scales are float32 results of double arithmetic: measured within 3.6e-8 of the double
// figures here, allowed 1e-6.
TEST_CASE("quantize_vgg: the dense VGG's layers, names and chained scales", "[task12]") {
  DenseSetup& d = dense_setup();
  const auto before = effml::testing::snapshot(*d.vgg);
  const effml::QuantizedVgg q = lab2::quantize_vgg(*d.vgg, d.ranges);
  CHECK_NOTHROW(q.validate());
  CHECK(q.cfg == std::vector<int64_t>{16, 0, 32, 0, 64, 64, 0});
  const std::vector<std::string> names{"features.0", "features.4", "features.8", "features.11"};
  REQUIRE(q.convs.size() == names.size());
  for (std::size_t j = 0; j < names.size(); ++j) CHECK(q.convs[j].name == names[j]);
  CHECK(q.classifier.name == "classifier");

  // The input: S = 1 / (255 * 0.3530), Z = -55, as Task 12 (a) gives.
  const lab2::QuantParams in = lab2::input_quant_params(effml::kFashionMnistMean, effml::kFashionMnistStd);
  CHECK(q.convs[0].input_scale == in.scale);
  CHECK(q.convs[0].input_zero_point == in.zero_point);
  check_close("input scale", 1.0 / (255.0 * static_cast<double>(effml::kFashionMnistStd)),
              q.convs[0].input_scale, 1e-7, 0.0);
  CHECK(q.convs[0].input_zero_point == -55);

  std::vector<const effml::QuantizedLayer*> layers;
  for (const auto& l : q.convs) layers.push_back(&l);
  layers.push_back(&q.classifier);
  for (std::size_t j = 0; j < layers.size(); ++j) {
    const effml::QuantizedLayer& l = *layers[j];
    INFO("layer " << l.name);
    if (j > 0) {
      // A max-pool changes neither the scale nor the zero point.
      CHECK(l.input_scale == layers[j - 1]->output_scale);
      CHECK(l.input_zero_point == layers[j - 1]->output_zero_point);
    }
    // Task 2 on {min(lo, 0), max(hi, 0)}: S = (hi' - lo') / 255, Z = round(-128 - lo' / S).
    const double lo = std::min(d.ranges[j].min, 0.0f), hi = std::max(d.ranges[j].max, 0.0f);
    const double scale = (hi - lo) / 255.0;
    check_close("output scale", scale, l.output_scale, 1e-6, 0.0);
    CHECK(l.output_zero_point == static_cast<int32_t>(std::nearbyint(-128.0 - lo / scale)));
    // After a ReLU the range starts at 0, which is -128: the clamp is the ReLU.
    if (j + 1 < layers.size()) CHECK(l.output_zero_point == -128);
  }
  const auto after = effml::testing::snapshot(*d.vgg);
  for (const auto& [name, t] : before) {
    INFO(name << " changed: quantize_vgg must not modify the fp32 model");
    CHECK(after.at(name).equal(t));
  }
}

// Each conv's int8 weight and int32 bias stand for the batch norm folded into the conv (folded
// here in double from the fp32 model); the classifier's for its own weight and bias. Each
// output's multiplier M0 2^-31 2^-n is S_x S_w[o] / S_y within 2^-30 relative: M0 is in
// [2^30, 2^31), so rounding it to an integer costs at most half of 2^-30 of it (measured at
// worst 0.48 2^-30).
TEST_CASE("quantize_vgg: folded weights, biases and multipliers of the dense VGG", "[task12]") {
  DenseSetup& d = dense_setup();
  const effml::QuantizedVgg q = lab2::quantize_vgg(*d.vgg, d.ranges);
  REQUIRE(q.convs.size() == 4);
  const std::size_t conv_index[] = {0, 4, 8, 11};
  for (std::size_t j = 0; j < 4; ++j) {
    const FoldedDouble f = fold_in_double(*d.vgg, conv_index[j]);
    check_weight_and_bias(q.convs[j], f.weight, f.bias);
  }
  auto& fc = dynamic_cast<effml::Linear&>((*d.vgg)[2]);
  const std::vector<float> fw = fc.weight.value.to_vector(), fb = fc.bias.value.to_vector();
  check_weight_and_bias(q.classifier, std::vector<double>(fw.begin(), fw.end()),
                        std::vector<double>(fb.begin(), fb.end()));

  std::vector<const effml::QuantizedLayer*> layers;
  for (const auto& l : q.convs) layers.push_back(&l);
  layers.push_back(&q.classifier);
  int bad = 0;
  for (const effml::QuantizedLayer* l : layers) {
    INFO("layer " << l->name);
    REQUIRE(l->multiplier.numel() == l->weight_scale.numel());
    REQUIRE(l->shift.numel() == l->weight_scale.numel());
    for (int64_t o = 0; o < l->multiplier.numel(); ++o) {
      const double real = static_cast<double>(l->input_scale) * static_cast<double>(l->weight_scale[o]) /
                          static_cast<double>(l->output_scale);
      const int32_t m0 = l->multiplier.data_i32()[o], n = l->shift.data_i32()[o];
      const double got = std::ldexp(static_cast<double>(m0), -31 - n);
      const bool ok = m0 >= (1 << 30) && n >= 0 && n <= 31 &&
                      std::fabs(got - real) <= std::ldexp(real, -30);
      if (!ok && ++bad <= 3) {
        FAIL_CHECK("output " << o << ": M0 = " << m0 << ", n = " << n << " stand for " << got
                             << ", S_x S_w / S_y = " << real);
      }
    }
  }
  CHECK(bad == 0);
}

// The integer-only model, run by the trusted engine on test images 0 to 999 (pixels, no
// floating point), against the fp32 model on the same images normalised. Measured with the
// reference (ranges from training images 0 to 499): the dequantized logits S_y (q - Z_y)
// differ from the fp32 logits by at most 2 output steps (S_y = 0.1206) on 96.4% of the images,
// 4 steps on 99.5%; the worst image is 16 steps off (a logit beyond the calibrated range
// clamps); mean absolute difference 0.52 steps. Accuracy: fp32 92.9%, integer-only 92.9%.
// Allowed: 90% within 2 steps, 98% within 4, a mean of 0.8 steps, 1 point of accuracy.
TEST_CASE("quantize_vgg: the integer-only model agrees with the fp32 model", "[task12]") {
  DenseSetup& d = dense_setup();
  const effml::QuantizedVgg q = lab2::quantize_vgg(*d.vgg, d.ranges);
  d.vgg->eval();
  const Tensor fp32 = d.vgg->forward(d.test_normalized);
  const Tensor int8 = q.forward(effml::pixels_to_int8(d.test01));
  REQUIRE(int8.shape() == fp32.shape());
  const double s = q.classifier.output_scale;
  const int32_t z = q.classifier.output_zero_point;
  const int64_t n = fp32.size(0);
  int64_t within2 = 0, within4 = 0;
  double worst = 0.0, total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double image_worst = 0.0;
    for (int64_t c = 0; c < 10; ++c) {
      const double deq = s * (int8.data_i8()[i * 10 + c] - z);
      const double steps = std::fabs(deq - fp32[i * 10 + c]) / s;
      image_worst = std::max(image_worst, steps);
      total += steps;
    }
    worst = std::max(worst, image_worst);
    within2 += image_worst <= 2.0;
    within4 += image_worst <= 4.0;
  }
  INFO("logits within 2 steps on " << within2 << " of " << n << " images, within 4 on "
                                   << within4 << ", worst " << worst << " steps, mean "
                                   << total / (10.0 * n) << " steps");
  CHECK(within2 >= 0.9 * n);
  CHECK(within4 >= 0.98 * n);
  CHECK(total / (10.0 * n) <= 0.8);

  int64_t correct = 0;
  const std::vector<int64_t> predicted = fp32.argmax_rows();
  for (int64_t i = 0; i < n; ++i) correct += predicted[i] == d.labels[i];
  const double fp32_accuracy = static_cast<double>(correct) / static_cast<double>(n);
  const double int8_accuracy = effml::quantized_accuracy(q, d.test01, d.labels);
  INFO("fp32 accuracy " << fp32_accuracy << ", integer-only " << int8_accuracy);
  CHECK(fp32_accuracy > 0.9);
  CHECK(std::fabs(int8_accuracy - fp32_accuracy) <= 0.01);
}

// Two conv blocks need 3 ranges; 2 or 4 is an error that names both counts.
TEST_CASE("quantize_vgg: the wrong number of ranges is an error naming both counts", "[task12]") {
  auto model = effml::make_vgg({3, 0, 5, 0});
  randomize_vgg(*model, 8, kBnSalt);
  effml::Rng rng(14);
  std::vector<lab2::ActivationRange> ranges = expected_ranges(*model, Tensor::randn({4, 1, 28, 28}, rng));
  REQUIRE(ranges.size() == 3);
  CHECK_NOTHROW(lab2::quantize_vgg(*model, ranges));
  std::vector<lab2::ActivationRange> fewer(ranges.begin(), ranges.begin() + 2);
  check_error_names([&] { lab2::quantize_vgg(*model, fewer); }, "3");
  check_error_names([&] { lab2::quantize_vgg(*model, fewer); }, "2");
  std::vector<lab2::ActivationRange> more = ranges;
  more.push_back(ranges.back());
  check_error_names([&] { lab2::quantize_vgg(*model, more); }, "3");
  check_error_names([&] { lab2::quantize_vgg(*model, more); }, "4");
}
