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

}  // namespace effml
