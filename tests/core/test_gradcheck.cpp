// Every layer's backward against central differences (tests/support/gradcheck.h): dx and each
// parameter gradient, plus the += accumulation of parameter gradients.
//
// Measured margins (largest |expected - got| / tolerance over the checked elements; 1 fails):
// Linear 0.005, ReLU and Flatten 0, Conv2d at most 0.17 (the 7x7 kernel, whose outputs sum the
// most terms), BatchNorm2d 0.012 (train) and 0.004 (eval), pooling at most 0.005, Dropout 0.0003,
// the Sequential 0.47 (h = 1e-3, so float32 rounding weighs ten times more). A wrong backward
// (a col2im that assigns instead of adding, batch norm without the terms through the batch
// statistics) misses by 20x to 100x the tolerance.
#include <catch2/catch.hpp>

#include <cmath>

#include "effml/layers.h"
#include "effml/rng.h"
#include "gradcheck.h"

using namespace effml;
using effml::testing::distinct_values;
using effml::testing::gradcheck;
using effml::testing::GradCheckOptions;
using effml::testing::randomize_parameters;

namespace {

// Normal samples pushed at least `gap` away from zero, so that a step h < gap never crosses the
// kink of a ReLU.
Tensor away_from_zero(const Shape& shape, Rng& rng, float gap = 0.1f) {
  Tensor t = Tensor::randn(shape, rng);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = (t[i] < 0.0f ? -gap : gap) + t[i];
  return t;
}

struct ConvCase {
  int64_t cin, cout, k, stride, padding, groups;
  bool bias;
  Shape input;
};

}  // namespace

TEST_CASE("gradcheck: Linear", "[gradcheck][linear]") {
  Rng rng(1);
  for (bool bias : {true, false}) {
    Linear lin(5, 3, bias);
    randomize_parameters(lin, rng);
    gradcheck(lin, Tensor::randn({4, 5}, rng), 11);
  }
}

TEST_CASE("gradcheck: ReLU and Flatten", "[gradcheck][relu][flatten]") {
  Rng rng(2);
  ReLU relu;
  gradcheck(relu, away_from_zero({3, 7}, rng), 12);
  Flatten flat;
  gradcheck(flat, Tensor::randn({2, 3, 2, 2}, rng), 13);
}

TEST_CASE("gradcheck: Conv2d configurations", "[gradcheck][conv2d]") {
  const ConvCase cases[] = {
      {3, 4, 3, 1, 0, 1, true, {2, 3, 7, 7}},    // plain
      {3, 4, 3, 2, 1, 1, true, {2, 3, 7, 5}},    // stride 2, padding 1, non-square input
      {4, 6, 3, 1, 1, 2, true, {2, 4, 5, 5}},    // groups 2
      {4, 4, 3, 1, 1, 4, true, {2, 4, 6, 6}},    // depthwise
      {3, 6, 3, 2, 1, 3, false, {2, 3, 7, 7}},   // depthwise, multiplier 2, stride 2, no bias
      {5, 3, 1, 1, 0, 1, true, {2, 5, 3, 3}},    // 1x1 (no im2col)
      {4, 6, 1, 1, 0, 2, false, {3, 4, 2, 3}},   // 1x1 grouped, no bias
      {2, 3, 3, 1, 1, 1, false, {2, 2, 4, 4}},   // no bias
      {1, 1, 1, 1, 0, 1, true, {1, 1, 1, 1}},    // sizes of 1
      {3, 7, 7, 1, 3, 1, true, {1, 3, 7, 7}},    // kernel 7 covering the padded image
      {1, 3, 2, 3, 0, 1, true, {3, 1, 7, 7}},    // stride larger than the kernel
      {6, 2, 1, 2, 1, 1, true, {2, 6, 5, 5}},    // 1x1 with stride and padding (uses im2col)
  };
  Rng rng(3);
  uint64_t seed = 100;
  for (const ConvCase& c : cases) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    randomize_parameters(conv, rng);
    gradcheck(conv, Tensor::randn(c.input, rng), ++seed);
  }
}

TEST_CASE("gradcheck: BatchNorm2d in training and in evaluation mode", "[gradcheck][batchnorm]") {
  Rng rng(4);
  BatchNorm2d bn(3);
  randomize_parameters(bn, rng);
  const Tensor x = Tensor::randn({4, 3, 3, 2}, rng) * 2.0f + 1.0f;
  SECTION("training: the gradient flows through the batch mean and variance") {
    bn.train();
    gradcheck(bn, x, 21);
  }
  SECTION("evaluation: an affine map with the running statistics") {
    bn.running_mean = Tensor::randn({3}, rng);
    bn.running_var = Tensor::rand({3}, rng, 0.5f, 2.0f);
    bn.eval();
    gradcheck(bn, x, 22);
  }
}

TEST_CASE("gradcheck: MaxPool2d", "[gradcheck][maxpool]") {
  Rng rng(5);
  // Distinct values 0.1 apart, h = 0.01: no window's maximum can change under the step.
  MaxPool2d pool(2);
  gradcheck(pool, distinct_values({2, 3, 6, 6}, rng), 31);
  MaxPool2d overlapping(3, 2, 1);
  gradcheck(overlapping, distinct_values({1, 2, 7, 7}, rng), 32);
}

TEST_CASE("gradcheck: AvgPool2d and GlobalAvgPool2d", "[gradcheck][avgpool]") {
  Rng rng(6);
  AvgPool2d pool(2);
  gradcheck(pool, Tensor::randn({2, 2, 4, 5}, rng), 41);
  AvgPool2d padded(3, 2, 1);
  gradcheck(padded, Tensor::randn({2, 2, 7, 7}, rng), 42);
  GlobalAvgPool2d gap;
  gradcheck(gap, Tensor::randn({2, 3, 4, 5}, rng), 43);
}

TEST_CASE("gradcheck: Dropout with a fixed mask", "[gradcheck][dropout]") {
  Rng rng(7);
  Dropout drop(0.3f, 5);
  GradCheckOptions opt;
  opt.before_forward = [](Module& m) { static_cast<Dropout&>(m).reseed(99); };
  gradcheck(drop, Tensor::randn({4, 10}, rng), 51, opt);
}

TEST_CASE("gradcheck: Sequential(Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Linear)",
          "[gradcheck][sequential]") {
  Rng rng(8);
  Sequential net;
  net.emplace<Conv2d>(2, 4, 3, 1, 1);
  net.emplace<BatchNorm2d>(4);
  net.emplace<ReLU>();
  net.emplace<MaxPool2d>(2);
  net.emplace<Flatten>();
  net.emplace<Linear>(4 * 3 * 3, 5);
  randomize_parameters(net, rng);
  // A smaller step: a ReLU kink or a max-pool tie within h of a value would spoil the finite
  // difference, and with h = 1e-3 this seed's values have none.
  GradCheckOptions opt;
  opt.h = 1e-3;
  opt.atol = 2e-3;
  gradcheck(net, Tensor::randn({3, 2, 6, 6}, rng), 61, opt);
}
