/// \file linear.h
/// \brief Linear (fully connected) layer: \f$ y = x W^T + b \f$.
#pragma once

#include "effml/module.h"

namespace effml {

/// Fully connected layer, as torch.nn.Linear.
///
/// Shapes: x (N, in), W (out, in), b (out), y (N, out).
/// Backward: \f$ dx = dy\,W \f$, \f$ dW \mathrel{+}= dy^T x \f$, \f$ db \mathrel{+}= \sum_n dy_n \f$.
class Linear : public Module {
 public:
  /// Weights start at zero; call init_kaiming (init.h) or load a checkpoint.
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  int64_t macs(const Shape& in) const override;
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }

  Parameter weight;  ///< (out, in)
  Parameter bias;    ///< (out); shape (0) when the layer has no bias

 private:
  int64_t in_, out_;
  bool has_bias_;
  Tensor x_;  // input cached by forward, (N, in)
};

}  // namespace effml
