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

  /// x (N, in) -> y (N, out); caches x in training mode. Throws on any other input shape.
  Tensor forward(const Tensor& x) override;
  /// The same; in training mode x itself is kept for backward instead of a copy.
  Tensor forward_owned(Tensor&& x) override;
  /// dy (N, out) -> dx (N, in), or an empty tensor when needs_input_grad is false; adds into
  /// weight.grad (and bias.grad). Throws without a training-mode forward or on a wrong dy shape.
  Tensor backward(const Tensor& dy) override;
  /// "Linear(in, out)", or "Linear(in, out, bias=false)".
  std::string describe() const override;
  /// (N, in) -> (N, out); throws on any other shape.
  Shape output_shape(const Shape& in) const override;
  /// N * in * out.
  int64_t macs(const Shape& in) const override;
  /// "weight", then "bias" when the layer has one.
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override;

  int64_t in_features() const { return in_; }    ///< size of each input row
  int64_t out_features() const { return out_; }  ///< size of each output row
  bool has_bias() const { return has_bias_; }    ///< false when built with bias = false

  Parameter weight;  ///< (out, in)
  Parameter bias;    ///< (out); shape (0) when the layer has no bias

 private:
  int64_t in_, out_;
  bool has_bias_;
  Tensor x_;  // input cached by forward, (N, in)

  // y = x W^T + b, without caching anything.
  Tensor apply(const Tensor& x) const;
};

}  // namespace effml
