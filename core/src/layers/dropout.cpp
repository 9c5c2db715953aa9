#include "effml/layers/dropout.h"

#include <sstream>

namespace effml {

Dropout::Dropout(float p, uint64_t seed) : p_(p), rng_(seed) {
  EFFML_CHECK(p >= 0.0f && p <= 1.0f, "Dropout(p=" << p << "): p must be in [0, 1]");
}

Tensor Dropout::forward(const Tensor& x) {
  in_shape_ = x.shape();
  have_forward_ = true;
  identity_ = !training_ || p_ == 0.0f;
  if (identity_) {
    drop(mask_);
    return x;
  }
  // The mask is drawn serially: one stream, the same masks whatever the thread count.
  const float keep_scale = p_ < 1.0f ? 1.0f / (1.0f - p_) : 0.0f;
  Tensor mask(x.shape());
  Tensor y(x.shape());
  const float* px = x.data();
  float* pm = mask.data();
  float* py = y.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    pm[i] = rng_.uniform() >= p_ ? keep_scale : 0.0f;
    py[i] = px[i] * pm[i];
  }
  mask_ = std::move(mask);
  return y;
}

Tensor Dropout::forward_owned(Tensor&& x) {
  if (!training_ || p_ == 0.0f) {
    in_shape_ = x.shape();
    have_forward_ = true;
    identity_ = true;
    drop(mask_);
    return std::move(x);
  }
  return forward(x);
}

Tensor Dropout::backward(const Tensor& dy) {
  EFFML_CHECK(have_forward_, describe() << ": backward called before forward");
  check_shape(dy, in_shape_, describe() + " backward: dy");
  if (!needs_input_grad) return Tensor(Shape{0});
  if (identity_) return dy;
  return dy * mask_;
}

Tensor Dropout::backward_owned(Tensor&& dy) {
  EFFML_CHECK(have_forward_, describe() << ": backward called before forward");
  check_shape(dy, in_shape_, describe() + " backward: dy");
  if (!needs_input_grad) return Tensor(Shape{0});
  if (!identity_) dy.mul_(mask_);
  return std::move(dy);
}

std::string Dropout::describe() const {
  std::ostringstream os;
  os << "Dropout(p=" << p_ << ")";
  return os.str();
}

}  // namespace effml
