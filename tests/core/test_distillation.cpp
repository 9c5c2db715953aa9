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
#include "effml/loss.h"
#include "effml/models.h"
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
