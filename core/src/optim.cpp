#include "effml/optim.h"

#include <cmath>

namespace effml {

Optimizer::Optimizer(std::vector<NamedParameter> params, float lr)
    : params_(std::move(params)), lr_(lr) {
  EFFML_CHECK(lr >= 0.0f && std::isfinite(lr), "optimizer: learning rate " << lr
                                                                           << " must be >= 0");
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.param->grad.zero_();
}

SGD::SGD(std::vector<NamedParameter> params, float lr, float momentum, float weight_decay,
         bool nesterov)
    : Optimizer(std::move(params), lr),
      momentum_(momentum),
      weight_decay_(weight_decay),
      nesterov_(nesterov) {
  EFFML_CHECK(momentum >= 0.0f && weight_decay >= 0.0f,
              "SGD: momentum " << momentum << " and weight decay " << weight_decay
                               << " must be >= 0");
  for (auto& p : params_) buf_.emplace_back(p.param->value.shape());
}

// The settings are copied into locals and each case has its own loop: read through `this` they
// would be reloaded after every store (a float store may alias them), and the per-element
// branches kept the loop from vectorizing (3% of a LeNet-5 training epoch).
void SGD::step() {
  const float lr = lr_, mu = momentum_, wd = weight_decay_;
  const bool first = first_, nesterov = nesterov_;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i].param;
    float* w = p.value.data();
    const float* dw = p.grad.data();
    float* b = buf_[i].data();
    const int64_t n = p.value.numel();
    if (mu == 0.0f) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) w[j] -= lr * (dw[j] + wd * w[j]);
    } else if (first) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const float g = dw[j] + wd * w[j];
        b[j] = g;
        w[j] -= lr * (nesterov ? g + mu * g : g);
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const float g = dw[j] + wd * w[j];
        const float m = mu * b[j] + g;
        b[j] = m;
        w[j] -= lr * (nesterov ? g + mu * m : m);
      }
    }
  }
  first_ = false;
}

Adam::Adam(std::vector<NamedParameter> params, float lr, float beta1, float beta2, float eps,
           float weight_decay)
    : Optimizer(std::move(params), lr),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay) {
  EFFML_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
              "Adam: betas (" << beta1 << ", " << beta2 << ") must be in [0, 1)");
  for (auto& p : params_) {
    m_.emplace_back(p.param->value.shape());
    v_.emplace_back(p.param->value.shape());
  }
}

void Adam::step() {
  ++t_;
  const float bc1 = 1.0f - std::pow(beta1_, static_cast<float>(t_));
  const float bc2 = 1.0f - std::pow(beta2_, static_cast<float>(t_));
  const float step_size = lr_ / bc1;
  const float sqrt_bc2 = std::sqrt(bc2);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i].param;
    float* w = p.value.data();
    const float* dw = p.grad.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = p.value.numel();
    for (int64_t j = 0; j < n; ++j) {
      const float g = dw[j] + weight_decay_ * w[j];
      m[j] = beta1_ * m[j] + (1.0f - beta1_) * g;
      v[j] = beta2_ * v[j] + (1.0f - beta2_) * g * g;
      // PyTorch's order of operations: denom = sqrt(v) / sqrt(bc2) + eps.
      const float denom = std::sqrt(v[j]) / sqrt_bc2 + eps_;
      w[j] -= step_size * m[j] / denom;
    }
  }
}

CosineLr::CosineLr(float base_lr, int epochs, float min_lr)
    : base_(base_lr), min_(min_lr), epochs_(epochs) {
  EFFML_CHECK(epochs > 0, "CosineLr: epochs must be positive, got " << epochs);
}

float CosineLr::lr_at(int epoch) const {
  const double pi = 3.14159265358979323846;
  return static_cast<float>(min_ + 0.5 * (base_ - min_) * (1.0 + std::cos(pi * epoch / epochs_)));
}

StepLr::StepLr(float base_lr, int step_size, float gamma)
    : base_(base_lr), step_(step_size), gamma_(gamma) {
  EFFML_CHECK(step_size > 0, "StepLr: step size must be positive, got " << step_size);
}

float StepLr::lr_at(int epoch) const {
  return base_ * static_cast<float>(std::pow(gamma_, epoch / step_));
}

}  // namespace effml
