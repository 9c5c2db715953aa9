#include "effml/layers/activation.h"

namespace effml {

Tensor ReLU::forward(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
  y_ = training_ ? y : Tensor();
  return y;
}

Tensor ReLU::backward(const Tensor& dy) {
  check_shape(dy, y_.shape(), "ReLU backward: dy");
  Tensor dx = Tensor::empty(dy.shape());
  const float* py = y_.data();
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t n = dy.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) pdx[i] = py[i] > 0.0f ? pdy[i] : 0.0f;
  return dx;
}

}  // namespace effml
