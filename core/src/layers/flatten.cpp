#include "effml/layers/flatten.h"

namespace effml {

Shape Flatten::output_shape(const Shape& in) const {
  EFFML_CHECK(!in.empty(), "Flatten: input must have a batch dimension, got " << shape_str(in));
  int64_t rest = 1;
  for (std::size_t i = 1; i < in.size(); ++i) rest *= in[i];
  return {in[0], rest};
}

Tensor Flatten::forward(const Tensor& x) {
  in_shape_ = x.shape();
  return x.reshape(output_shape(x.shape()));
}

Tensor Flatten::forward_owned(Tensor&& x) {
  in_shape_ = x.shape();
  x.reshape_(output_shape(x.shape()));
  return std::move(x);
}

Tensor Flatten::backward(const Tensor& dy) {
  if (!needs_input_grad) return Tensor(Shape{0});
  return dy.reshape(in_shape_);
}

Tensor Flatten::backward_owned(Tensor&& dy) {
  if (!needs_input_grad) return Tensor(Shape{0});
  dy.reshape_(in_shape_);
  return std::move(dy);
}

}  // namespace effml
