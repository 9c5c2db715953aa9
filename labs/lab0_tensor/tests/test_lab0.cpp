// Public tests of Lab 0. Run them all with `ctest -R lab0`, or one task with the test program's
// tag, e.g. `build/tests/lab0_tensor_tests "[task2]"`.
//
// Three kinds of checks:
// - fixtures: your function on the inputs of labs/lab0_tensor/fixtures/<task>*.safetensors must
//   give the expected outputs stored there (written by the reference solution); the same
//   comparison, with the same tolerances, as `effml grade lab0`;
// - small cases worked out by hand, to read when a fixture fails;
// - gradient checks: your backward functions against central differences of your forward
//   functions, (L(v + h) - L(v - h)) / 2h, at awkward sizes.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/models.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/tensor.h"
#include "lab0.h"
#include "multi_index.h"
#include "student_model.h"

namespace {

using effml::Rng;
using effml::Shape;
using effml::Tensor;
using effml::testing::multi_index;

const std::string kFixtures = std::string(EFFML_SOURCE_DIR) + "/labs/lab0_tensor/fixtures/";

// The fixture files of a task: <task>.safetensors, then <task>.0.safetensors, <task>.1...
std::vector<std::string> fixture_files(const std::string& task) {
  std::vector<std::string> files;
  auto exists = [](const std::string& p) { return std::ifstream(p).good(); };
  if (exists(kFixtures + task + ".safetensors")) files.push_back(kFixtures + task + ".safetensors");
  for (int k = 0; exists(kFixtures + task + "." + std::to_string(k) + ".safetensors"); ++k) {
    files.push_back(kFixtures + task + "." + std::to_string(k) + ".safetensors");
  }
  return files;
}

// Checks |got - expected| <= atol + rtol * |expected| everywhere (NaN fails); on failure the
// message names the output, the shapes, the first differing element and the count.
void check_close(const std::string& what, const Tensor& expected, const Tensor& got,
                 double rtol = 1e-4, double atol = 1e-5) {
  INFO(what << ": expected shape " << expected.shape_str() << ", got " << got.shape_str());
  REQUIRE(got.shape() == expected.shape());
  int64_t bad = 0;
  int64_t first = -1;
  for (int64_t k = 0; k < expected.numel(); ++k) {
    const double e = expected[k];
    const double g = got[k];
    if (!(std::fabs(g - e) <= atol + rtol * std::fabs(e))) {
      if (first < 0) first = k;
      ++bad;
    }
  }
  if (bad > 0) {
    FAIL_CHECK(what << " " << expected.shape_str() << ": " << bad << " of " << expected.numel()
                    << " elements differ; first at " << multi_index(expected.shape(), first)
                    << " (flat index " << first << "): expected " << expected[first] << ", got "
                    << got[first]);
  }
}

// Passes when `call` throws effml::Error. NotImplemented is an effml::Error too, but it does not
// count: a stub must not pass a test.
void check_rejects(const std::string& what, const std::function<void()>& call) {
  try {
    call();
  } catch (const effml::NotImplemented& e) {
    FAIL_CHECK(what << ": " << e.what());
    return;
  } catch (const effml::Error&) {
    SUCCEED(what);
    return;
  }
  FAIL_CHECK(what << ": expected an effml::Error, but nothing was thrown");
}

std::vector<int32_t> labels_of(const Tensor& t) {
  return std::vector<int32_t>(t.data_i32(), t.data_i32() + t.numel());
}

// Runs `check` on every fixture of `task`, with the fixture's file name in the messages.
void for_each_fixture(const std::string& task,
                      const std::function<void(const effml::SafetensorsFile&)>& check) {
  const std::vector<std::string> files = fixture_files(task);
  INFO("fixtures of " << task << " in " << kFixtures);
  REQUIRE(!files.empty());
  for (const auto& file : files) {
    INFO("fixture " << file);
    check(effml::load_safetensors(file));
  }
}

// Central difference of a scalar function of one tensor at element k, in double where it
// matters: (L(v + h) - L(v - h)) / (the step actually taken in float32).
double central_difference(const std::function<double(const Tensor&)>& loss, Tensor& at,
                          int64_t k, float h) {
  const float v = at[k];
  const float up = v + h;
  const float down = v - h;
  at[k] = up;
  const double l_up = loss(at);
  at[k] = down;
  const double l_down = loss(at);
  at[k] = v;
  return (l_up - l_down) / (static_cast<double>(up) - static_cast<double>(down));
}

// Compares an analytic gradient with central differences of `loss` at every element of `at`;
// the message names the argument, the element, and both values.
void gradcheck(const std::string& what, const std::function<double(const Tensor&)>& loss,
               Tensor at, const Tensor& analytic, float h = 1e-2f, double rtol = 1e-2,
               double atol = 1e-3) {
  INFO(what << ": the gradient has shape " << analytic.shape_str() << ", the argument "
            << at.shape_str());
  REQUIRE(analytic.shape() == at.shape());
  int failures = 0;
  for (int64_t k = 0; k < at.numel(); ++k) {
    const double expected = central_difference(loss, at, k, h);
    const double got = analytic[k];
    if (!(std::fabs(expected - got) <= atol + rtol * std::fabs(expected)) && ++failures <= 3) {
      FAIL_CHECK(what << " at " << multi_index(at.shape(), k) << ": central difference gives "
                      << expected << ", your backward gives " << got);
    }
  }
  CHECK(failures == 0);
}

// sum(y * g) in double: a scalar whose gradient with respect to y is g.
double dot(const Tensor& y, const Tensor& g) {
  double s = 0.0;
  for (int64_t k = 0; k < y.numel(); ++k) s += static_cast<double>(y[k]) * g[k];
  return s;
}

}  // namespace

// ---- Task 1 -------------------------------------------------------------------------------------

TEST_CASE("Task 1: linear_forward matches the fixtures", "[task1][fixtures]") {
  for_each_fixture("linear_forward", [](const effml::SafetensorsFile& f) {
    const Tensor y = lab0::linear_forward(f.at("input.x"), f.at("input.weight"), f.at("input.bias"));
    check_close("y", f.at("expected.y"), y);
  });
}

TEST_CASE("Task 1: linear_forward on a case worked by hand", "[task1]") {
  // x = [[1, 2]], W = [[1, 0], [0, 1], [1, 1]], b = [0.5, 0, -1]:
  // y = [1*1 + 2*0 + 0.5, 1*0 + 2*1 + 0, 1*1 + 2*1 - 1] = [1.5, 2, 2].
  const Tensor x({1, 2}, {1, 2});
  const Tensor w({3, 2}, {1, 0, 0, 1, 1, 1});
  const Tensor b({3}, {0.5f, 0, -1});
  check_close("y", Tensor({1, 3}, {1.5f, 2, 2}), lab0::linear_forward(x, w, b));
}

TEST_CASE("Task 1: linear_forward rejects shapes that do not fit", "[task1]") {
  Rng rng(1);
  const Tensor x = Tensor::randn({4, 3}, rng);
  const Tensor w = Tensor::randn({5, 3}, rng);
  const Tensor b = Tensor::randn({5}, rng);
  const Tensor w_wrong = Tensor::randn({5, 4}, rng);
  const Tensor b_wrong = Tensor::randn({4}, rng);
  const Tensor x_wrong = Tensor::randn({12}, rng);
  check_rejects("weight (5, 4) for x (4, 3)", [&] { lab0::linear_forward(x, w_wrong, b); });
  check_rejects("bias (4) for weight (5, 3)", [&] { lab0::linear_forward(x, w, b_wrong); });
  check_rejects("x (12) that is not 2-D", [&] { lab0::linear_forward(x_wrong, w, b); });
}

// ---- Task 2 -------------------------------------------------------------------------------------

TEST_CASE("Task 2: linear_backward matches the fixtures", "[task2][fixtures]") {
  for_each_fixture("linear_backward", [](const effml::SafetensorsFile& f) {
    const lab0::LinearGrads g =
        lab0::linear_backward(f.at("input.dy"), f.at("input.x"), f.at("input.weight"));
    check_close("dx", f.at("expected.dx"), g.dx);
    check_close("dweight", f.at("expected.dweight"), g.dweight);
    check_close("dbias", f.at("expected.dbias"), g.dbias);
  });
}

TEST_CASE("Task 2: linear_backward on a case worked by hand", "[task2]") {
  // x = [[1, 2]], W = [[1, 0], [0, 1], [1, 1]], dy = [[1, -1, 2]]:
  // dx = dy W = [1 - 0 + 2, 0 - 1 + 2] = [3, 1]; dW = dy^T x = [[1, 2], [-1, -2], [2, 4]];
  // db = dy summed over the batch (one row) = [1, -1, 2].
  const Tensor x({1, 2}, {1, 2});
  const Tensor w({3, 2}, {1, 0, 0, 1, 1, 1});
  const Tensor dy({1, 3}, {1, -1, 2});
  const lab0::LinearGrads g = lab0::linear_backward(dy, x, w);
  check_close("dx", Tensor({1, 2}, {3, 1}), g.dx);
  check_close("dweight", Tensor({3, 2}, {1, 2, -1, -2, 2, 4}), g.dweight);
  check_close("dbias", Tensor({3}, {1, -1, 2}), g.dbias);
}

TEST_CASE("Task 2: linear_backward agrees with central differences of linear_forward",
          "[task2][gradcheck]") {
  const Shape sizes[] = {{1, 1, 1}, {3, 7, 1}, {1, 17, 3}, {7, 3, 17}, {17, 33, 7}};
  uint64_t seed = 10;
  for (const auto& s : sizes) {
    const int64_t n = s[0], in = s[1], out = s[2];
    Rng rng(seed++);
    const Tensor x = Tensor::randn({n, in}, rng);
    const Tensor w = Tensor::randn({out, in}, rng);
    const Tensor b = Tensor::randn({out}, rng);
    const Tensor g = Tensor::randn({n, out}, rng);  // L = sum(y * g), so dL/dy = g
    const lab0::LinearGrads grads = lab0::linear_backward(g, x, w);
    const std::string at = " (N, I, O) = (" + std::to_string(n) + ", " + std::to_string(in) +
                           ", " + std::to_string(out) + ")";
    gradcheck("dx" + at, [&](const Tensor& v) { return dot(lab0::linear_forward(v, w, b), g); },
              x, grads.dx);
    gradcheck("dweight" + at,
              [&](const Tensor& v) { return dot(lab0::linear_forward(x, v, b), g); }, w,
              grads.dweight);
    gradcheck("dbias" + at, [&](const Tensor& v) { return dot(lab0::linear_forward(x, w, v), g); },
              b, grads.dbias);
  }
}

// ---- Task 3 -------------------------------------------------------------------------------------

TEST_CASE("Task 3: relu_backward matches the fixtures", "[task3][fixtures]") {
  for_each_fixture("relu_backward", [](const effml::SafetensorsFile& f) {
    check_close("dx", f.at("expected.dx"), lab0::relu_backward(f.at("input.dy"), f.at("input.x")),
                0.0, 0.0);
  });
}

TEST_CASE("Task 3: relu_backward passes dy where x > 0 only (0 at x == 0)", "[task3]") {
  const Tensor x({2, 3}, {-1, 0, 2, 3, -0.5f, 1e-30f});
  const Tensor dy({2, 3}, {10, 20, 30, 40, 50, 60});
  check_close("dx", Tensor({2, 3}, {0, 0, 30, 40, 0, 60}), lab0::relu_backward(dy, x), 0.0, 0.0);
}

TEST_CASE("Task 3: relu_backward works on any shape and checks it", "[task3]") {
  Rng rng(3);
  const Tensor x = Tensor::randn({2, 3, 4, 5}, rng);
  const Tensor dy = Tensor::randn({2, 3, 4, 5}, rng);
  const Tensor dx = lab0::relu_backward(dy, x);
  REQUIRE(dx.shape() == x.shape());
  for (int64_t k = 0; k < x.numel(); ++k) {
    INFO("element " << k);
    CHECK(dx[k] == (x[k] > 0 ? dy[k] : 0.0f));
  }
  const Tensor dy_wrong = Tensor::randn({2, 3}, rng);
  const Tensor x_other = Tensor::randn({3, 2}, rng);
  check_rejects("dy (2, 3) for x (3, 2)", [&] { lab0::relu_backward(dy_wrong, x_other); });
}

// ---- Task 4 -------------------------------------------------------------------------------------

TEST_CASE("Task 4: softmax_cross_entropy_forward matches the fixtures", "[task4][fixtures]") {
  for_each_fixture("softmax_cross_entropy_forward", [](const effml::SafetensorsFile& f) {
    const float loss = lab0::softmax_cross_entropy_forward(f.at("input.logits"),
                                                           labels_of(f.at("input.labels")));
    check_close("loss", f.at("expected.loss"), Tensor(Shape{}, {loss}));
  });
}

TEST_CASE("Task 4: softmax cross-entropy of equal logits is log C", "[task4]") {
  // Every class has probability 1/C, so every row's loss is -log(1/C) = log C.
  const Tensor logits = Tensor::full({3, 7}, 2.5f);
  const float loss = lab0::softmax_cross_entropy_forward(logits, {0, 3, 6});
  CHECK(loss == Approx(std::log(7.0)).epsilon(1e-6));
}

TEST_CASE("Task 4: softmax cross-entropy on a case worked by hand", "[task4]") {
  // Row 0: z = [0, ln 3], label 1: p = [1/4, 3/4], loss -ln(3/4).
  // Row 1: z = [ln 2, 0], label 1: p = [2/3, 1/3], loss -ln(1/3) = ln 3.
  const float ln2 = std::log(2.0f), ln3 = std::log(3.0f);
  const Tensor logits({2, 2}, {0, ln3, ln2, 0});
  const double expected = 0.5 * (-std::log(0.75) + std::log(3.0));
  CHECK(lab0::softmax_cross_entropy_forward(logits, {1, 1}) == Approx(expected).epsilon(1e-5));
}

TEST_CASE("Task 4: softmax cross-entropy stays finite for large logits", "[task4]") {
  // exp(1000) is infinite in float32: subtract each row's maximum first.
  const Tensor logits({2, 3}, {1000, 0, -1000, 500, 1000, 0});
  const float loss = lab0::softmax_cross_entropy_forward(logits, {0, 0});
  // Row 0: the label has the largest logit, loss about 0; row 1: loss = 1000 - 500 = 500.
  CHECK(loss == Approx(250.0).epsilon(1e-5));
}

TEST_CASE("Task 4: softmax cross-entropy rejects bad labels", "[task4]") {
  const Tensor logits = Tensor::zeros({2, 3});
  check_rejects("label 3 of 3 classes",
                [&] { lab0::softmax_cross_entropy_forward(logits, {0, 3}); });
  check_rejects("label -1", [&] { lab0::softmax_cross_entropy_forward(logits, {0, -1}); });
  check_rejects("1 label for 2 rows", [&] { lab0::softmax_cross_entropy_forward(logits, {0}); });
}

// ---- Task 5 -------------------------------------------------------------------------------------

TEST_CASE("Task 5: softmax_cross_entropy_backward matches the fixtures", "[task5][fixtures]") {
  for_each_fixture("softmax_cross_entropy_backward", [](const effml::SafetensorsFile& f) {
    const Tensor d = lab0::softmax_cross_entropy_backward(f.at("input.logits"),
                                                          labels_of(f.at("input.labels")));
    check_close("dlogits", f.at("expected.dlogits"), d);
  });
}

TEST_CASE("Task 5: softmax cross-entropy backward agrees with central differences",
          "[task5][gradcheck]") {
  const Shape sizes[] = {{1, 1}, {1, 3}, {3, 7}, {7, 17}, {17, 10}};
  uint64_t seed = 20;
  for (const auto& s : sizes) {
    Rng rng(seed++);
    const Tensor logits = Tensor::randn(s, rng) * 2.0f;
    std::vector<int32_t> labels(static_cast<std::size_t>(s[0]));
    for (auto& y : labels) y = static_cast<int32_t>(rng.randint(static_cast<uint64_t>(s[1])));
    const Tensor d = lab0::softmax_cross_entropy_backward(logits, labels);
    gradcheck("dlogits at (N, C) = " + effml::shape_str(s),
              [&](const Tensor& z) { return lab0::softmax_cross_entropy_forward(z, labels); },
              logits, d, 1e-2f, 1e-2, 1e-4);
  }
}

TEST_CASE("Task 5: each row of dlogits sums to zero and is finite for large logits", "[task5]") {
  // sum_c (p_c - [c = y]) / N = (1 - 1) / N = 0.
  const Tensor logits({2, 3}, {1000, 0, -1000, 500, 1000, 0});
  const Tensor d = lab0::softmax_cross_entropy_backward(logits, {0, 0});
  REQUIRE(d.shape() == logits.shape());
  CHECK_FALSE(d.has_nonfinite());
  for (int64_t n = 0; n < 2; ++n) {
    INFO("row " << n);
    CHECK(d[n * 3] + d[n * 3 + 1] + d[n * 3 + 2] == Approx(0.0).margin(1e-6));
  }
  // Row 1: p = [0, 1, 0] (to float precision), label 0: dz = [-1, 1, 0] / 2.
  CHECK(d[3] == Approx(-0.5).margin(1e-6));
  CHECK(d[4] == Approx(0.5).margin(1e-6));
}

// ---- Task 6 -------------------------------------------------------------------------------------

TEST_CASE("Task 6: sgd_momentum_step matches the fixtures", "[task6][fixtures]") {
  for_each_fixture("sgd_momentum_step", [](const effml::SafetensorsFile& f) {
    Tensor weight = f.at("input.weight");
    Tensor velocity = f.at("input.velocity");
    lab0::sgd_momentum_step(weight, f.at("input.grad"), velocity, f.at("input.lr").item(),
                            f.at("input.momentum").item(), f.at("input.weight_decay").item());
    check_close("weight", f.at("expected.weight"), weight);
    check_close("velocity", f.at("expected.velocity"), velocity);
  });
}

TEST_CASE("Task 6: SGD with momentum on a case worked by hand", "[task6]") {
  // w = 1, grad = 0.5, v = 2, lr = 0.1, mu = 0.9, wd = 0.01:
  // g = 0.5 + 0.01 * 1 = 0.51; v = 0.9 * 2 + 0.51 = 2.31; w = 1 - 0.1 * 2.31 = 0.769.
  Tensor w({1}, {1});
  Tensor v({1}, {2});
  lab0::sgd_momentum_step(w, Tensor({1}, {0.5f}), v, 0.1f, 0.9f, 0.01f);
  CHECK(v[0] == Approx(2.31).epsilon(1e-6));
  CHECK(w[0] == Approx(0.769).epsilon(1e-6));
}

TEST_CASE("Task 6: two steps from zero velocity, and shape checks", "[task6]") {
  // Step 1: v = g1; step 2: v = mu g1 + g2 (no weight decay).
  Tensor w({2}, {1, -1});
  Tensor v({2});
  lab0::sgd_momentum_step(w, Tensor({2}, {1, 2}), v, 0.5f, 0.5f, 0.0f);
  check_close("velocity after step 1", Tensor({2}, {1, 2}), v);
  check_close("weight after step 1", Tensor({2}, {0.5f, -2}), w);
  lab0::sgd_momentum_step(w, Tensor({2}, {-1, 0}), v, 0.5f, 0.5f, 0.0f);
  check_close("velocity after step 2", Tensor({2}, {-0.5f, 1}), v);
  check_close("weight after step 2", Tensor({2}, {0.75f, -2.5f}), w);
  Tensor wrong({3});
  check_rejects("grad (3) for weight (2)",
                [&] { lab0::sgd_momentum_step(w, Tensor({3}), v, 0.1f, 0.9f, 0.0f); });
  check_rejects("velocity (3) for weight (2)",
                [&] { lab0::sgd_momentum_step(w, Tensor({2}), wrong, 0.1f, 0.9f, 0.0f); });
}

// ---- Task 7 -------------------------------------------------------------------------------------

TEST_CASE("Task 7: your LeNet-300-100 computes what the core's computes", "[task7]") {
  // Same seed, same parameter names and initial weights as effml::make_model("lenet300").
  auto mine = lab0::make_student_lenet300(5);
  auto core = effml::make_model("lenet300", 5);
  const auto mine_params = mine->named_parameters();
  const auto core_params = core->named_parameters();
  REQUIRE(mine_params.size() == core_params.size());
  for (std::size_t k = 0; k < mine_params.size(); ++k) {
    CHECK(mine_params[k].name == core_params[k].name);
    CHECK(mine_params[k].param->value.equal(core_params[k].param->value));
  }
  Rng rng(6);
  const Tensor images = Tensor::randn(effml::image_input_shape(9), rng);
  mine->eval();
  core->eval();
  check_close("logits", core->forward(images), mine->forward(images), 1e-4, 1e-4);
}

TEST_CASE("Task 7: a short training with your functions lowers the loss", "[task7]") {
  // 2,000 training images, one epoch of 32 steps of 64 images with Task 7's settings. Measured
  // with the reference (seed 0): the loss on these images is 3.24 before and 0.61 after.
  const effml::Dataset train = effml::load_fashion_mnist("train").subset(0, 2000);
  auto model = lab0::make_student_lenet300(0);
  const double before = effml::evaluate(*model, train).loss;
  lab0::StudentTrainConfig config;
  config.epochs = 1;
  config.progress = false;
  lab0::train_student_model(*model, train, nullptr, config);
  const double after = effml::evaluate(*model, train).loss;
  INFO("loss before " << before << ", after one epoch " << after);
  CHECK(before > 1.5);
  CHECK(after < 1.0);
}
