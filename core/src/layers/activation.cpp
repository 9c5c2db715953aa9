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
  const float* px = x.data();
  float* py = y.data();
  const int64_t n = x.numel();
  if (!training_) {
    y_ = Tensor();
    parallel_for(n, n > kParallelMin, [px, py](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
    });
    return y;
  }
  if (y_.dtype() != DType::Int8 || y_.shape() != x.shape())
    y_ = Tensor::empty(x.shape(), DType::Int8);
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
  return y;
}

Tensor ReLU::backward(const Tensor& dy) {
  check_shape(dy, y_.shape(), "ReLU backward: dy");
  Tensor dx = Tensor::empty(dy.shape());
  const int8_t* positive = y_.numel() > 0 ? y_.data_i8() : nullptr;
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t n = dy.numel();
  parallel_for(n, n > kParallelMin, [positive, pdy, pdx](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) pdx[i] = positive[i] ? pdy[i] : 0.0f;
  });
  return dx;
}

}  // namespace effml
