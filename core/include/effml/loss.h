/// \file loss.h
/// \brief Softmax cross-entropy: the classification loss of every lab.
#pragma once

#include <cstdint>
#include <vector>

#include "effml/tensor.h"

namespace effml {

/// Mean softmax cross-entropy over a batch, as torch.nn.functional.cross_entropy.
///
/// Shapes: logits z (N, C), labels y (N) with values in [0, C).
/// \f$ p_{n,c} = \frac{e^{z_{n,c}}}{\sum_k e^{z_{n,k}}} \f$,
/// \f$ L = -\frac{1}{N} \sum_n \log p_{n,y_n} \f$,
/// \f$ \frac{\partial L}{\partial z_{n,c}} = \frac{1}{N}\left(p_{n,c} - [c = y_n]\right) \f$.
/// The softmax subtracts each row's maximum first, so large logits do not overflow.
class SoftmaxCrossEntropy {
 public:
  /// Returns the mean loss and caches the probabilities for backward.
  /// Throws on a shape mismatch, a label out of range, or a non-finite logit.
  float forward(const Tensor& logits, const std::vector<int32_t>& labels);
  /// dL/dlogits (N, C) for the last forward.
  Tensor backward() const;
  /// Probabilities (N, C) from the last forward.
  const Tensor& probabilities() const { return probs_; }

 private:
  Tensor probs_;
  std::vector<int32_t> labels_;
};

/// Row-wise softmax of (N, C) logits (max-subtracted).
Tensor softmax(const Tensor& logits);

/// Knowledge-distillation loss (Hinton et al. 2015): how far the student's softened predictions
/// are from the teacher's, \f$ L = \frac{T^2}{N} \sum_n \mathrm{KL}(q_n \,\|\, p_n) \f$ with
/// \f$ q = \mathrm{softmax}(t / T) \f$ from the teacher's logits and
/// \f$ p = \mathrm{softmax}(s / T) \f$ from the student's. The factor \f$ T^2 \f$ keeps the
/// gradient's scale independent of the temperature.
/// \param student_logits s, (N, C)
/// \param teacher_logits t, (N, C)
/// \param temperature    \f$ T \f$ > 0
/// \throws effml::Error naming the shapes or the value otherwise
float distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                        float temperature);

/// Gradient of distillation_loss() with respect to the student's logits:
/// \f$ \frac{\partial L}{\partial s} = \frac{T}{N} (p - q) \f$, (N, C).
/// \throws effml::Error as distillation_loss()
Tensor distillation_grad(const Tensor& student_logits, const Tensor& teacher_logits,
                         float temperature);

}  // namespace effml
