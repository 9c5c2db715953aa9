// Knowledge distillation (effml::distillation_loss, distillation_grad, and train() with a
// teacher): the loss against a hand-computed value, the gradient against central differences of
// the loss, and a teacher actually pulling the student's predictions towards its own.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/layers.h"
#include "effml/loss.h"
#include "effml/models.h"
#include "effml/optim.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "effml/train.h"
#include "error_checks.h"

using effml::Tensor;
using effml::testing::error_of;

TEST_CASE("distillation_loss is T^2 times the mean KL divergence", "[distillation]") {
  // One row, two classes, T = 2: q = softmax((0, 2) / 2) = softmax(0, 1),
  // p = softmax((0, 0) / 2) = (1/2, 1/2). KL(q || p) = sum q log(2 q).
  const Tensor s({1, 2}, std::vector<float>{0.0f, 0.0f});
  const Tensor t({1, 2}, std::vector<float>{0.0f, 2.0f});
  const double e = std::exp(1.0);
  const double q0 = 1.0 / (1.0 + e), q1 = e / (1.0 + e);
  const double kl = q0 * std::log(2.0 * q0) + q1 * std::log(2.0 * q1);
  CHECK(effml::distillation_loss(s, t, 2.0f) == Approx(4.0 * kl).epsilon(1e-6));
  // Equal logits: no distance, no gradient.
  CHECK(effml::distillation_loss(t, t, 3.0f) == Approx(0.0).margin(1e-7));
  const Tensor g = effml::distillation_grad(t, t, 3.0f);
  for (int64_t i = 0; i < g.numel(); ++i) CHECK(g[i] == Approx(0.0).margin(1e-7));
}

TEST_CASE("distillation_grad matches central differences of distillation_loss",
          "[distillation]") {
  effml::Rng rng(7);
  double worst = 0.0, largest = 0.0;
  for (float temperature : {1.0f, 4.0f, 8.0f}) {
    const Tensor s = Tensor::randn({3, 5}, rng) * 3.0f;
    const Tensor t = Tensor::randn({3, 5}, rng) * 3.0f;
    const Tensor g = effml::distillation_grad(s, t, temperature);
    // Central differences of the float loss with steps of 1e-2: the truncation error
    // (h^2 times the third derivative) and the loss's float rounding (~1e-7 relative, over h)
    // stay below the margin of 5e-4.
    const float h = 1e-2f;
    for (int64_t i = 0; i < s.numel(); ++i) {
      Tensor up = s, down = s;
      up[i] += h;
      down[i] -= h;
      const double numeric = (static_cast<double>(effml::distillation_loss(up, t, temperature)) -
                              effml::distillation_loss(down, t, temperature)) /
                             (2.0 * h);
      INFO("T " << temperature << ", logit " << i << ": analytic " << g[i] << ", numeric "
                << numeric);
      CHECK(g[i] == Approx(numeric).margin(5e-4));
      worst = std::max(worst, std::abs(g[i] - numeric));
      largest = std::max(largest, static_cast<double>(std::abs(g[i])));
    }
  }
  // Measured: worst difference 1.2e-4 against gradients up to 0.74 (a factor T too many or too
  // few would be off by 0.1 or more).
  CHECK(largest > 0.1);
}

TEST_CASE("distillation errors name the shapes and the temperature", "[distillation]") {
  const Tensor a = Tensor::zeros({2, 3});
  const Tensor b = Tensor::zeros({2, 4});
  const std::string shapes = error_of([&] { effml::distillation_loss(a, b, 2.0f); });
  CHECK_THAT(shapes, Catch::Matchers::Contains("(2, 3)") && Catch::Matchers::Contains("(2, 4)"));
  const std::string temperature = error_of([&] { effml::distillation_grad(a, a, 0.0f); });
  CHECK_THAT(temperature, Catch::Matchers::Contains("temperature must be > 0, got 0"));
  effml::TrainConfig config;
  config.distill_alpha = 1.5f;
  auto model = effml::make_model("lenet300", 0);
  effml::Dataset empty;
  empty.images = Tensor::zeros({0, 1, 28, 28});
  const std::string alpha = error_of([&] { effml::train(*model, empty, nullptr, config); });
  CHECK_THAT(alpha, Catch::Matchers::Contains("distill_alpha must be in [0, 1], got 1.5"));

  // A teacher whose output is not one row of logits per image (here a convolution's maps).
  effml::Sequential conv_teacher;
  conv_teacher.emplace<effml::Conv2d>(1, 2, 3);
  config.distill_alpha = 0.5f;
  config.teacher = &conv_teacher;
  config.epochs = 1;
  config.progress = false;
  const effml::Dataset few = effml::load_fashion_mnist("train").subset(0, 5);
  const std::string teacher = error_of([&] { effml::train(*model, few, nullptr, config); });
  CHECK_THAT(teacher, Catch::Matchers::Contains(
                          "the teacher's logits are (5, 2, 26, 26) for a batch of 5 images; "
                          "expected (5, classes)"));
}

TEST_CASE("train with a teacher pulls the student towards the teacher's predictions",
          "[distillation]") {
  // A student trained only to imitate (alpha 1) a teacher that always predicts class 3 ends up
  // predicting class 3, whatever the labels say; without the teacher it learns the labels.
  effml::Dataset data = effml::load_fashion_mnist("train").subset(0, 512);
  auto teacher = effml::make_model("lenet300", 1);
  auto& fc3 = *teacher->named_parameters().back().param;  // fc3.bias
  fc3.value.zero_();
  fc3.value[3] = 20.0f;
  effml::TrainConfig config;
  config.epochs = 3;
  config.progress = false;
  config.lr = 0.05f;
  config.teacher = teacher.get();
  config.distill_alpha = 1.0f;
  config.distill_temperature = 2.0f;
  auto student = effml::make_model("lenet300", 2);
  effml::train(*student, data, nullptr, config);
  const Tensor logits = student->forward(data.images);
  int64_t threes = 0;
  for (int64_t i = 0; i < logits.size(0); ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < 10; ++c) {
      if (logits.at({i, c}) > logits.at({i, best})) best = c;
    }
    threes += best == 3;
  }
  // Measured: 512 of 512 (class 3 is about a tenth of the labels).
  CHECK(threes >= 500);
}

TEST_CASE("train gives the teacher's logits of each batch's own samples, in every epoch",
          "[distillation]") {
  // train() computes the teacher's logits once and gathers them in each epoch's shuffled order.
  // The same training with the teacher run on every batch, written out here, must give the same
  // parameters: a wrong row, a stale order or a last batch cut short would not. 300 samples make
  // a last batch of 44; two epochs draw two orders. The teacher is an untrained LeNet-300-100,
  // whose logits differ from sample to sample.
  const effml::Dataset data = effml::load_fashion_mnist("train").subset(1000, 300);
  auto teacher = effml::make_model("lenet300", 7);
  effml::TrainConfig config;
  config.epochs = 2;
  config.batch_size = 64;
  config.lr = 0.05f;
  config.schedule = "constant";
  config.seed = 11;
  config.progress = false;
  config.teacher = teacher.get();
  config.distill_alpha = 0.7f;
  config.distill_temperature = 3.0f;
  auto student = effml::make_model("lenet300", 2);
  effml::train(*student, data, nullptr, config);

  auto manual = effml::make_model("lenet300", 2);
  teacher->eval();
  effml::SGD opt(manual->named_parameters(), config.lr, config.momentum, config.weight_decay);
  effml::Batcher batcher(data, config.batch_size, /*shuffle=*/true, config.seed);
  effml::SoftmaxCrossEntropy ce;
  Tensor images;
  std::vector<int32_t> labels;
  manual->train();
  for (int e = 0; e < config.epochs; ++e) {
    batcher.start_epoch();
    while (batcher.next(images, labels)) {
      opt.zero_grad();
      const Tensor logits = manual->forward(images);
      ce.forward(logits, labels);
      Tensor g = ce.backward() * (1.0f - config.distill_alpha);
      g.add_(effml::distillation_grad(logits, teacher->forward(images),
                                      config.distill_temperature),
             config.distill_alpha);
      manual->backward(g);
      opt.step();
    }
  }
  const auto got = student->named_parameters();
  const auto want = manual->named_parameters();
  REQUIRE(got.size() == want.size());
  double worst = 0, moved = 0;
  const auto start = effml::make_model("lenet300", 2);
  const auto initial = start->named_parameters();
  for (std::size_t p = 0; p < got.size(); ++p) {
    const Tensor& a = got[p].param->value;
    const Tensor& b = want[p].param->value;
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
      moved = std::max(moved, static_cast<double>(std::fabs(b[i] - initial[p].param->value[i])));
    }
  }
  // Measured: no difference at all, while training moved a parameter by 0.20. Gathering the
  // rows in dataset order instead of the shuffled order made a difference of 0.036. The bound
  // leaves room for the teacher's logits summed in another order (computed at batch 256).
  INFO("largest difference " << worst << ", largest change from the start " << moved);
  CHECK(worst <= 1e-6);
  CHECK(moved > 1e-2);
}
