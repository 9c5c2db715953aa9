/// \file activation.h
/// \brief ReLU: \f$ y = \max(x, 0) \f$.
#pragma once

#include "effml/module.h"

namespace effml {

/// Rectified linear unit, elementwise, any shape. Backward: \f$ dx = dy \cdot [x > 0] \f$.
class ReLU : public Module {
 public:
  /// y = max(x, 0), same shape as x; caches the mask [y > 0] in training mode.
  Tensor forward(const Tensor& x) override;
  /// The same, computed in x's storage.
  Tensor forward_owned(Tensor&& x) override;
  /// dx = dy where the cached mask is set, else 0. Throws unless dy has the shape of the last
  /// training-mode output.
  Tensor backward(const Tensor& dy) override;
  /// The same, computed in dy's storage.
  Tensor backward_owned(Tensor&& dy) override;
  /// "ReLU()".
  std::string describe() const override { return "ReLU()"; }
  /// `in` unchanged.
  Shape output_shape(const Shape& in) const override { return in; }
  /// For Sequential, when the next layer computed this ReLU inside its own forward
  /// (MaxPool2d::forward_relu) and will return the gradient through both: drops the cached
  /// mask, so that a backward of this layer alone throws instead of using an old one.
  void fused_into_next() { drop(y_); }

 private:
  // py[i] = max(px[i], 0) for the n elements; py may be px. In training mode it also caches the
  // mask in y_.
  void apply(const float* px, float* py, int64_t n, const Shape& shape);
  // pdx[i] = pdy[i] where the mask is set, else 0, for every element of the mask; pdx may be pdy.
  void mask(const float* pdy, float* pdx) const;

  Tensor y_;  // int8 mask [y > 0] cached by forward (y > 0 exactly where x > 0)
};

}  // namespace effml
