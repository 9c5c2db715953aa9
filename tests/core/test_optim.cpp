// Optimizers and schedules: update rules written out by hand for a few steps.
#include <catch2/catch.hpp>
#include <cmath>

#include "effml/optim.h"

using namespace effml;

namespace {
struct One : Module {
  Parameter w{Tensor({2}, std::vector<float>{1.0f, -2.0f})};
  Tensor forward(const Tensor& x) override { return x; }
  Tensor backward(const Tensor& dy) override { return dy; }
  std::string describe() const override { return "One()"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override {
    return {{"w", &w}};
  }
};
}  // namespace

TEST_CASE("optim: SGD with momentum and weight decay follows torch.optim.SGD", "[optim]") {
  One m;
  SGD opt(m.named_parameters(), 0.1f, 0.9f, 0.01f);
  double w = 1.0, buf = 0.0;
  for (int step = 0; step < 3; ++step) {
    m.w.grad.fill_(0.5f);
    opt.step();
    const double g = 0.5 + 0.01 * w;
    buf = step == 0 ? g : 0.9 * buf + g;
    w -= 0.1 * buf;
    CHECK(m.w.value[0] == Approx(w).epsilon(1e-6));
  }
}

TEST_CASE("optim: SGD with Nesterov momentum, and without momentum, follows torch.optim.SGD",
          "[optim]") {
  for (const bool nesterov : {true, false}) {
    INFO((nesterov ? "nesterov, momentum 0.9" : "momentum 0"));
    One m;
    const double mu = nesterov ? 0.9 : 0.0;
    SGD opt(m.named_parameters(), 0.1f, static_cast<float>(mu), 0.01f, nesterov);
    double w[2] = {1.0, -2.0}, buf[2] = {0.0, 0.0};
    for (int step = 0; step < 3; ++step) {
      m.w.grad.fill_(0.5f);
      opt.step();
      for (int i = 0; i < 2; ++i) {
        double g = 0.5 + 0.01 * w[i];
        if (mu != 0.0) {
          buf[i] = step == 0 ? g : mu * buf[i] + g;
          g = g + mu * buf[i];  // Nesterov
        }
        w[i] -= 0.1 * g;
        CHECK(m.w.value[i] == Approx(w[i]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("optim: Adam follows torch.optim.Adam", "[optim]") {
  One m;
  Adam opt(m.named_parameters(), 0.01f);
  double w = -2.0, mo = 0, v = 0;
  for (int t = 1; t <= 4; ++t) {
    const double g = 0.3 * t;
    m.w.grad.fill_(static_cast<float>(g));
    opt.step();
    mo = 0.9 * mo + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const double mhat = mo / (1 - std::pow(0.9, t)), vhat = v / (1 - std::pow(0.999, t));
    w -= 0.01 * mhat / (std::sqrt(vhat) + 1e-8);
    CHECK(m.w.value[1] == Approx(w).epsilon(1e-5));
  }
}

TEST_CASE("optim: schedules", "[optim]") {
  CosineLr cos(0.1f, 10);
  CHECK(cos.lr_at(0) == Approx(0.1f));
  CHECK(cos.lr_at(5) == Approx(0.05f));
  CHECK(cos.lr_at(10) == Approx(0.0f).margin(1e-7));
  StepLr step(1.0f, 3, 0.5f);
  CHECK(step.lr_at(2) == Approx(1.0f));
  CHECK(step.lr_at(3) == Approx(0.5f));
  CHECK(step.lr_at(7) == Approx(0.25f));
  CHECK_THROWS_WITH(SGD({}, -1.0f), Catch::Contains("-1"));
}
