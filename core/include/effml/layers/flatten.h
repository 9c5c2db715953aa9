/// \file flatten.h
/// \brief Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...), as torch.nn.Flatten.
#pragma once

#include "effml/module.h"

namespace effml {

/// Keeps the batch dimension and merges the rest. Backward restores the input's shape.
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::string describe() const override { return "Flatten()"; }
  Shape output_shape(const Shape& in) const override;

 private:
  Shape in_shape_;
};

}  // namespace effml
