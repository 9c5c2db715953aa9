#include "effml/layers/activation.h"

#include "../parallel_for.h"

namespace effml {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t{1} << 16;
}  // namespace

// Backward needs only where y > 0 (exactly where x > 0), so a training-mode forward caches that
// mask, one byte per element, in y_ (an int8 tensor of y's shape), instead of a copy of y: a
// quarter of the memory traffic, on the largest activations of a network. The mask's storage is
// reused from call to call while the shape stays the same.

Tensor ReLU::forward(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  apply(x.data(), y.data(), x.numel(), x.shape());
  return y;
}

Tensor ReLU::forward_owned(Tensor&& x) {
  float* p = x.data();
  apply(p, p, x.numel(), x.shape());
  return std::move(x);
}

// Each element is read before it is written, at the same index, so px == py is safe.
void ReLU::apply(const float* px, float* py, int64_t n, const Shape& shape) {
  if (!training_) {
    drop(y_);
    parallel_for(n, n > kParallelMin, [px, py](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
    });
    return;
  }
  if (y_.dtype() != DType::Int8 || y_.shape() != shape) y_ = Tensor::empty(shape, DType::Int8);
  int8_t* positive = y_.data_i8();
  // The pointers are captured by value: a store through int8_t* may alias anything, captured
  // references included, which keeps a loop from vectorizing.
  parallel_for(n, n > kParallelMin, [px, py, positive](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const bool p = px[i] > 0.0f;
      py[i] = p ? px[i] : 0.0f;
      positive[i] = static_cast<int8_t>(p);
    }
  });
}

Tensor ReLU::backward(const Tensor& dy) {
  check_shape(dy, y_.shape(), "ReLU backward: dy");
  Tensor dx = Tensor::empty(dy.shape());
  mask(dy.data(), dx.data());
  return dx;
}

Tensor ReLU::backward_owned(Tensor&& dy) {
  check_shape(dy, y_.shape(), "ReLU backward: dy");
  float* p = dy.data();
  mask(p, p);
  return std::move(dy);
}

void ReLU::mask(const float* pdy, float* pdx) const {
  const int64_t n = y_.numel();
  const int8_t* positive = n > 0 ? y_.data_i8() : nullptr;
  parallel_for(n, n > kParallelMin, [positive, pdy, pdx](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) pdx[i] = positive[i] ? pdy[i] : 0.0f;
  });
}

}  // namespace effml
