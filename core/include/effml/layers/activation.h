/// \file activation.h
/// \brief ReLU: \f$ y = \max(x, 0) \f$.
#pragma once

#include "effml/module.h"

namespace effml {

/// Rectified linear unit, elementwise, any shape. Backward: \f$ dx = dy \cdot [x > 0] \f$.
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::string describe() const override { return "ReLU()"; }
  Shape output_shape(const Shape& in) const override { return in; }

 private:
  Tensor y_;  // output cached by forward: y > 0 exactly where x > 0
};

}  // namespace effml
