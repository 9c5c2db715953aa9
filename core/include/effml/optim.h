/// \file optim.h
/// \brief Optimizers (SGD with momentum and weight decay, Adam) and learning-rate schedules.
///
/// Both follow PyTorch's update rules exactly, so a step here equals a step of torch.optim with
/// the same hyper-parameters (checked against PyTorch's values in a test).
#pragma once

#include <vector>

#include "effml/module.h"

namespace effml {

/// Base class: holds the parameters it updates and the current learning rate.
class Optimizer {
 public:
  /// Keeps `params` (not owned: they must outlive it); throws effml::Error unless 0 <= lr < inf.
  explicit Optimizer(std::vector<NamedParameter> params, float lr);
  /// Releases the optimizer's state; the parameters are not owned and stay as they are.
  virtual ~Optimizer() = default;
  /// One update of every parameter from its accumulated gradient.
  virtual void step() = 0;
  /// Sets every gradient to zero (call before each backward).
  void zero_grad();
  /// The learning rate the next step uses.
  float lr() const { return lr_; }
  /// Sets the learning rate of the following steps (not checked); train() sets it each epoch.
  void set_lr(float lr) { lr_ = lr; }
  /// The parameters this optimizer updates, in the order given to the constructor.
  const std::vector<NamedParameter>& params() const { return params_; }

 protected:
  std::vector<NamedParameter> params_;  ///< updated in place by step()
  float lr_;                            ///< learning rate \f$ \eta \f$
};

/// SGD with momentum and (L2) weight decay, as torch.optim.SGD:
/// \f$ g = \nabla w + \lambda w \f$; \f$ b \leftarrow \mu b + g \f$ (\f$ b = g \f$ on the first
/// step); \f$ w \leftarrow w - \eta b \f$ (Nesterov: \f$ w \leftarrow w - \eta (g + \mu b) \f$).
class SGD : public Optimizer {
 public:
  /// `momentum` \f$ \mu \f$ (0: plain SGD, no buffer used), `weight_decay` \f$ \lambda \f$,
  /// `nesterov` selects the Nesterov update.
  /// Throws effml::Error when lr is negative or not finite, or momentum or weight_decay is
  /// negative.
  SGD(std::vector<NamedParameter> params, float lr, float momentum = 0.0f,
      float weight_decay = 0.0f, bool nesterov = false);
  /// One SGD update of every parameter, as in the class description.
  void step() override;

 private:
  float momentum_, weight_decay_;
  bool nesterov_;
  std::vector<Tensor> buf_;
  bool first_ = true;
};

/// Adam, as torch.optim.Adam (weight decay added to the gradient, bias-corrected moments):
/// \f$ m \leftarrow \beta_1 m + (1-\beta_1) g \f$, \f$ v \leftarrow \beta_2 v + (1-\beta_2) g^2 \f$,
/// \f$ w \leftarrow w - \eta \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon} \f$.
class Adam : public Optimizer {
 public:
  /// Defaults are PyTorch's. Throws effml::Error when lr is negative or not finite, or a beta
  /// is outside [0, 1).
  Adam(std::vector<NamedParameter> params, float lr = 1e-3f, float beta1 = 0.9f,
       float beta2 = 0.999f, float eps = 1e-8f, float weight_decay = 0.0f);
  /// One Adam update of every parameter (t counts the steps from 1), as in the class description.
  void step() override;

 private:
  float beta1_, beta2_, eps_, weight_decay_;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;
};

/// A learning rate as a function of the epoch (0-based), stepped once per epoch.
class LrSchedule {
 public:
  /// Destroys the schedule.
  virtual ~LrSchedule() = default;
  /// The learning rate of epoch `epoch` (0-based).
  virtual float lr_at(int epoch) const = 0;
};

/// Constant learning rate.
class ConstantLr : public LrSchedule {
 public:
  /// Every epoch uses `lr`.
  explicit ConstantLr(float lr) : lr_(lr) {}
  /// `lr`, whatever the epoch.
  float lr_at(int) const override { return lr_; }

 private:
  float lr_;
};

/// Cosine annealing from base_lr at epoch 0 to min_lr at epoch `epochs`, as
/// torch.optim.lr_scheduler.CosineAnnealingLR(T_max = epochs):
/// \f$ \eta_e = \eta_{min} + \frac{1}{2}(\eta_0 - \eta_{min})(1 + \cos(\pi e / E)) \f$.
class CosineLr : public LrSchedule {
 public:
  /// \f$ \eta_0 \f$ = base_lr, \f$ E \f$ = epochs, \f$ \eta_{min} \f$ = min_lr. Throws
  /// effml::Error unless epochs > 0.
  CosineLr(float base_lr, int epochs, float min_lr = 0.0f);
  /// \f$ \eta_e \f$ above; for e > E the formula is applied as is, so the rate rises again.
  float lr_at(int epoch) const override;

 private:
  float base_, min_;
  int epochs_;
};

/// Multiply by gamma every step_size epochs, as torch.optim.lr_scheduler.StepLR.
class StepLr : public LrSchedule {
 public:
  /// Throws effml::Error unless step_size > 0.
  StepLr(float base_lr, int step_size, float gamma = 0.1f);
  /// base_lr * gamma^floor(epoch / step_size).
  float lr_at(int epoch) const override;

 private:
  float base_;
  int step_;
  float gamma_;
};

}  // namespace effml
