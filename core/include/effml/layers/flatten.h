/// \file flatten.h
/// \brief Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...), as torch.nn.Flatten.
#pragma once

#include "effml/module.h"

namespace effml {

/// Keeps the batch dimension and merges the rest. Backward restores the input's shape.
class Flatten : public Module {
 public:
  /// (N, d1, d2, ...) -> (N, d1 * d2 * ...); remembers the input shape for backward.
  Tensor forward(const Tensor& x) override;
  /// The same, without a copy: x's storage under the new shape.
  Tensor forward_owned(Tensor&& x) override;
  /// dy reshaped to the last forward's input shape, or an empty tensor when needs_input_grad is
  /// false. Throws when dy's numel does not match that shape.
  Tensor backward(const Tensor& dy) override;
  /// The same, without a copy.
  Tensor backward_owned(Tensor&& dy) override;
  /// "Flatten()".
  std::string describe() const override { return "Flatten()"; }
  /// (N, d1, d2, ...) -> (N, d1 * d2 * ...); throws on a shape without a batch dimension ({}).
  Shape output_shape(const Shape& in) const override;

 private:
  Shape in_shape_;
};

}  // namespace effml
