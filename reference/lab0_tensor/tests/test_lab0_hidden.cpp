// Hidden tests of Lab 0 (instructor repository only). They are written against lab0.h, so they
// check whichever implementation they are linked with: the reference in `ctest`, or a
// submission's lab0.cpp compiled in its place.
//
// - gradient checks of the layers as modules (StudentLinear, StudentReLU) at more shapes, with
//   the core's central-difference checker (tests/support/gradcheck.h), including that a second
//   backward accumulates;
// - agreement with the core's own layers, loss and optimizer, which are checked against
//   PyTorch's values in tests/core/test_golden.cpp;
// - error messages that name the shapes and values;
// - the stub and the solution have the same text outside the solution markers, and every stub
//   body only throws NotImplemented naming its task.

#include <catch2/catch.hpp>

#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "effml/layers/activation.h"
#include "effml/layers/linear.h"
#include "effml/loss.h"
#include "effml/optim.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "gradcheck.h"
#include "lab0.h"
#include "solution_markers.h"
#include "student_model.h"

namespace {

using Catch::Matchers::Contains;
using effml::Rng;
using effml::Shape;
using effml::Tensor;
using effml::testing::check_error_names;

std::vector<int32_t> random_labels(int64_t n, int64_t c, Rng& rng) {
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  for (auto& y : labels) y = static_cast<int32_t>(rng.randint(static_cast<uint64_t>(c)));
  return labels;
}

}  // namespace

// ---- gradient checks of the layers --------------------------------------------------------------

TEST_CASE("hidden: StudentLinear passes the module gradient check at many shapes",
          "[task2][gradcheck][hidden]") {
  // Linear in every argument, so central differences are exact up to rounding: the core's
  // default tolerances (rtol 1e-2, atol 1e-3) hold with a wide margin.
  const Shape sizes[] = {{1, 1, 1}, {2, 1, 5}, {1, 9, 1}, {5, 33, 2}, {33, 17, 9}, {64, 100, 10}};
  uint64_t seed = 100;
  for (const auto& s : sizes) {
    INFO("(N, I, O) = " << effml::shape_str(s));
    lab0::StudentLinear layer(s[1], s[2]);
    Rng rng(seed++);
    effml::testing::randomize_parameters(layer, rng, 0.5f);
    const Tensor x = Tensor::randn({s[0], s[1]}, rng);
    effml::testing::gradcheck(layer, x, seed);
  }
}

TEST_CASE("hidden: StudentReLU passes the module gradient check", "[task3][gradcheck][hidden]") {
  // Distinct values 0.1 apart (multiples of 0.05), pushed 0.03 further from 0: every input is at
  // least 0.03 away from the kink at 0, where central differences with h = 0.01 would see half
  // a slope.
  const Shape shapes[] = {{1, 1}, {3, 7}, {2, 3, 4, 5}, {17}};
  uint64_t seed = 200;
  for (const auto& s : shapes) {
    INFO("shape " << effml::shape_str(s));
    lab0::StudentReLU layer;
    Rng rng(seed++);
    Tensor x = effml::testing::distinct_values(s, rng, 0.1f);
    for (int64_t k = 0; k < x.numel(); ++k) x[k] += x[k] >= 0.0f ? 0.03f : -0.03f;
    effml::testing::gradcheck(layer, x, seed);
  }
}

TEST_CASE("hidden: the loss's backward agrees with central differences of its forward",
          "[task5][gradcheck][hidden]") {
  const Shape sizes[] = {{1, 2}, {33, 10}, {4, 100}, {64, 10}};
  uint64_t seed = 300;
  for (const auto& s : sizes) {
    Rng rng(seed++);
    Tensor logits = Tensor::randn(s, rng) * 3.0f;
    const std::vector<int32_t> labels = random_labels(s[0], s[1], rng);
    const Tensor d = lab0::softmax_cross_entropy_backward(logits, labels);
    int failures = 0;
    for (int64_t k = 0; k < logits.numel(); ++k) {
      const float v = logits[k];
      const float h = 1e-2f;
      logits[k] = v + h;
      const double up = lab0::softmax_cross_entropy_forward(logits, labels);
      logits[k] = v - h;
      const double down = lab0::softmax_cross_entropy_forward(logits, labels);
      logits[k] = v;
      const double expected = (up - down) / (static_cast<double>(v + h) - (v - h));
      if (!(std::fabs(expected - d[k]) <= 1e-4 + 1e-2 * std::fabs(expected)) && ++failures <= 3) {
        FAIL_CHECK("(N, C) = " << effml::shape_str(s) << ", flat index " << k
                               << ": central difference " << expected << ", backward " << d[k]);
      }
    }
    CHECK(failures == 0);
  }
}

// ---- agreement with the core ----------------------------------------------------------------

TEST_CASE("hidden: linear_forward and linear_backward agree with effml::Linear",
          "[task1][task2][hidden]") {
  Rng rng(400);
  effml::Linear core(784, 300);
  effml::testing::randomize_parameters(core, rng, 0.05f);
  const Tensor x = Tensor::randn({64, 784}, rng);
  const Tensor dy = Tensor::randn({64, 300}, rng);
  const Tensor y_core = core.forward(x);
  core.zero_grad();
  const Tensor dx_core = core.backward(dy);
  const Tensor y = lab0::linear_forward(x, core.weight.value, core.bias.value);
  const lab0::LinearGrads g = lab0::linear_backward(dy, x, core.weight.value);
  // Sums over 784 (forward), 300 (dx) and 64 (dweight) terms in another order than Eigen's:
  // measured largest differences 3.5e-6 (y), 1.7e-6 (dx) and 7.6e-6 (dweight); dbias is exact.
  CHECK(y.allclose(y_core, 1e-4f, 1e-4f));
  CHECK(g.dx.allclose(dx_core, 1e-4f, 1e-4f));
  CHECK(g.dweight.allclose(core.weight.grad, 1e-4f, 1e-4f));
  CHECK(g.dbias.allclose(core.bias.grad, 1e-4f, 1e-4f));
}

TEST_CASE("hidden: the loss agrees with effml::SoftmaxCrossEntropy", "[task4][task5][hidden]") {
  Rng rng(401);
  for (const Shape& s : {Shape{1, 1}, Shape{7, 3}, Shape{64, 10}, Shape{17, 33}}) {
    INFO("logits " << effml::shape_str(s));
    const Tensor logits = Tensor::randn(s, rng) * 4.0f;
    const std::vector<int32_t> labels = random_labels(s[0], s[1], rng);
    effml::SoftmaxCrossEntropy core;
    const float loss_core = core.forward(logits, labels);
    CHECK(lab0::softmax_cross_entropy_forward(logits, labels) ==
          Approx(loss_core).epsilon(1e-5).margin(1e-6));
    CHECK(lab0::softmax_cross_entropy_backward(logits, labels).allclose(core.backward(), 1e-4f,
                                                                          1e-6f));
  }
}

TEST_CASE("hidden: sgd_momentum_step agrees with effml::SGD over ten steps",
          "[task6][hidden]") {
  Rng rng(402);
  effml::Linear layer(5, 3);
  effml::testing::randomize_parameters(layer, rng, 1.0f);
  Tensor w = layer.weight.value;
  Tensor v(w.shape());
  effml::SGD sgd(layer.named_parameters(), 0.1f, 0.9f, 5e-3f);
  for (int step = 0; step < 10; ++step) {
    const Tensor grad = Tensor::randn(w.shape(), rng);
    layer.weight.grad = grad;
    layer.bias.grad.zero_();
    sgd.step();
    lab0::sgd_momentum_step(w, grad, v, 0.1f, 0.9f, 5e-3f);
    INFO("after step " << step + 1);
    CHECK(w.allclose(layer.weight.value, 1e-5f, 1e-6f));
  }
}

// ---- error messages ---------------------------------------------------------------------------

TEST_CASE("hidden: wrong shapes throw effml::Error naming the shapes", "[hidden][errors]") {
  Rng rng(500);
  const Tensor x = Tensor::randn({4, 3}, rng);
  const Tensor w = Tensor::randn({5, 3}, rng);
  const Tensor b = Tensor::randn({5}, rng);
  CHECK_THROWS_WITH(lab0::linear_forward(x, Tensor::randn({5, 4}, rng), b), Contains("(5, 4)"));
  CHECK_THROWS_WITH(lab0::linear_forward(x, w, Tensor::randn({6}, rng)), Contains("(6,)"));
  CHECK_THROWS_WITH(lab0::linear_forward(Tensor::randn({2, 2, 3}, rng), w, b),
                    Contains("(2, 2, 3)"));
  CHECK_THROWS_WITH(lab0::linear_backward(Tensor::randn({4, 6}, rng), x, w), Contains("(4, 6)"));
  CHECK_THROWS_WITH(lab0::linear_backward(Tensor::randn({4, 5}, rng), x, Tensor::randn({5, 2}, rng)),
                    Contains("(5, 2)"));
  CHECK_THROWS_WITH(lab0::relu_backward(Tensor::randn({3, 4}, rng), x), Contains("(3, 4)"));
  Tensor weight = w;
  Tensor velocity(w.shape());
  CHECK_THROWS_WITH(
      lab0::sgd_momentum_step(weight, Tensor::randn({3, 5}, rng), velocity, 0.1f, 0.9f, 0.0f),
      Contains("(3, 5)"));
  Tensor short_velocity({5});
  CHECK_THROWS_WITH(
      lab0::sgd_momentum_step(weight, Tensor::randn({5, 3}, rng), short_velocity, 0.1f, 0.9f, 0.0f),
      Contains("(5,)"));
  CHECK_THROWS_WITH(lab0::linear_forward(x, w, b.reshape({1, 5})), Contains("(1, 5)"));
}

TEST_CASE("hidden: bad labels throw effml::Error naming the label", "[hidden][errors]") {
  const Tensor logits = Tensor::zeros({3, 4});
  check_error_names([&] { lab0::softmax_cross_entropy_forward(logits, {0, 4, 1}); }, "4");
  check_error_names([&] { lab0::softmax_cross_entropy_backward(logits, {0, 1, -2}); }, "-2");
  CHECK_THROWS_WITH(lab0::softmax_cross_entropy_forward(logits, {0, 1}), Contains("(3, 4)"));
  CHECK_THROWS_WITH(lab0::softmax_cross_entropy_forward(Tensor::zeros({0, 4}), {}),
                    Contains("(0, 4)"));
  CHECK_THROWS_WITH(lab0::softmax_cross_entropy_backward(Tensor::zeros({12}), {0}),
                    Contains("(12,)"));
}

// ---- stub and solution stay in step -----------------------------------------------------------

TEST_CASE("hidden: the stub is the solution with each solution region replaced by a throw",
          "[hidden][stub]") {
  const std::string root = EFFML_SOURCE_DIR;
  // Same text outside the regions, as many regions in both.
  const effml::testing::StubAndSolution files = effml::testing::check_stub_matches_solution(
      root + "/labs/lab0_tensor/lab0.cpp", root + "/reference/lab0_tensor/lab0.cpp");
  const effml::testing::SplitSource& stub = files.stub;
  REQUIRE(stub.regions.size() == 6);
  const std::regex throw_only(
      "throw effml::NotImplemented\\(\"Task [0-9]+: [a-z_]+\"\\);\n");
  for (std::size_t k = 0; k < stub.regions.size(); ++k) {
    INFO("solution region " << k + 1 << " of the stub:\n" << stub.regions[k]);
    CHECK(std::regex_match(stub.regions[k], throw_only));
  }
  // Task numbers in order, one per region: Task 1 ... Task 6.
  for (std::size_t k = 0; k < stub.regions.size(); ++k) {
    CHECK_THAT(stub.regions[k], Contains("\"Task " + std::to_string(k + 1) + ": "));
  }
}
