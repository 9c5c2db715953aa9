/// \file batchnorm2d.h
/// \brief Batch normalization over (N, H, W) per channel, as torch.nn.BatchNorm2d.
#pragma once

#include "effml/module.h"

namespace effml {

/// Batch normalization of a (N, C, H, W) tensor, one mean and variance per channel, as
/// torch.nn.BatchNorm2d (affine, with running statistics).
///
/// Training mode, with \f$ m = N H W \f$ values per channel c:
/// \f[ \mu_c = \frac{1}{m} \sum x, \quad \sigma^2_c = \frac{1}{m} \sum (x - \mu_c)^2, \quad
///     \hat{x} = \frac{x - \mu_c}{\sqrt{\sigma^2_c + \epsilon}}, \quad
///     y = \gamma_c \hat{x} + \beta_c \f]
/// and the running statistics move towards the batch's:
/// \f$ \bar\mu \leftarrow (1 - \alpha) \bar\mu + \alpha \mu_c \f$,
/// \f$ \bar\sigma^2 \leftarrow (1 - \alpha) \bar\sigma^2 + \alpha \frac{m}{m-1} \sigma^2_c \f$
/// (momentum \f$ \alpha \f$; the running variance takes the unbiased estimate, as PyTorch).
/// Evaluation mode normalizes with \f$ \bar\mu, \bar\sigma^2 \f$ instead: an affine map per
/// channel, which is what BN folding merges into the preceding convolution.
///
/// Backward in training mode goes through the batch mean and variance:
/// \f[ dx = \frac{\gamma_c}{m \sqrt{\sigma^2_c + \epsilon}}
///     \Big( m\,dy - \sum dy - \hat{x} \sum dy\,\hat{x} \Big) \f]
/// and in evaluation mode it is the affine map's,
/// \f$ dx = dy\,\gamma_c / \sqrt{\bar\sigma^2_c + \epsilon} \f$. In both,
/// \f$ d\gamma_c \mathrel{+}= \sum dy\,\hat{x} \f$ and \f$ d\beta_c \mathrel{+}= \sum dy \f$.
/// Unlike the other layers, forward caches \f$ \hat{x} \f$ in evaluation mode too, so that the
/// evaluation-mode backward is available.
///
/// Checkpoints hold weight, bias, running_mean and running_var; PyTorch's integer
/// `num_batches_tracked` counter is not kept (it only matters when momentum is None).
class BatchNorm2d : public Module {
 public:
  /// gamma = 1, beta = 0, running mean 0 and running variance 1, as PyTorch.
  explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f);

  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  /// "BatchNorm2d(16)"; eps and momentum are named when they differ from the defaults.
  std::string describe() const override;
  /// The input's shape; throws unless it is (N, C, H, W) with C = num_features.
  Shape output_shape(const Shape& in) const override;
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override;
  std::vector<std::pair<std::string, Tensor*>> local_buffers() override;

  int64_t num_features() const { return c_; }  ///< C
  float eps() const { return eps_; }            ///< \f$ \epsilon \f$, added to the variance
  float momentum() const { return momentum_; }  ///< \f$ \alpha \f$ of the running averages

  Parameter weight;     ///< \f$ \gamma \f$, (C)
  Parameter bias;       ///< \f$ \beta \f$, (C)
  Tensor running_mean;  ///< \f$ \bar\mu \f$, (C)
  Tensor running_var;   ///< \f$ \bar\sigma^2 \f$, (C)

 private:
  int64_t c_;
  float eps_, momentum_;
  // Cached by forward for backward: the normalized input (N, C, H, W), 1/sqrt(var + eps) per
  // channel (C), and whether those came from batch statistics.
  Tensor xhat_;
  std::vector<float> invstd_;
  bool batch_stats_ = false;
};

}  // namespace effml
