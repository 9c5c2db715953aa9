#include "effml/layers/linear.h"

#include "effml/gemm.h"

namespace effml {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : weight(Tensor::zeros({out_features, in_features})),
      bias(Tensor::zeros({bias ? out_features : 0})),
      in_(in_features),
      out_(out_features),
      has_bias_(bias) {
  EFFML_CHECK(in_features > 0 && out_features > 0,
              "Linear(" << in_features << ", " << out_features << "): sizes must be positive");
}

Shape Linear::output_shape(const Shape& in) const {
  EFFML_CHECK(in.size() == 2 && in[1] == in_,
              describe() << ": expected input (N, " << in_ << "), got " << shape_str(in));
  return {in[0], out_};
}

int64_t Linear::macs(const Shape& in) const { return output_shape(in)[0] * in_ * out_; }

Tensor Linear::forward(const Tensor& x) {
  Tensor y = apply(x);
  keep_input(x_, x);
  return y;
}

Tensor Linear::forward_owned(Tensor&& x) {
  Tensor y = apply(x);
  keep_input(x_, std::move(x));
  return y;
}

Tensor Linear::apply(const Tensor& x) const {
  Tensor y = Tensor::empty(output_shape(x.shape()));  // (N, out)
  const int64_t n = y.size(0);
  // y (N, out) = x (N, in) * W^T (in, out)
  gemm(false, true, n, out_, in_, 1.0f, x.data(), in_, weight.value.data(), in_, 0.0f, y.data(),
       out_);
  if (has_bias_) {
    const float* b = bias.value.data();
    float* py = y.data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out_; ++o) py[i * out_ + o] += b[o];
  }
  return y;
}

Tensor Linear::backward(const Tensor& dy) {
  EFFML_CHECK(x_.dim() == 2, describe() << ": backward called without a training-mode forward");
  const int64_t n = x_.size(0);
  check_shape(dy, {n, out_}, describe() + " backward: dy");
  // dW (out, in) += dy^T (out, N) * x (N, in)
  gemm(true, false, out_, in_, n, 1.0f, dy.data(), out_, x_.data(), in_, 1.0f,
       weight.grad.data(), in_);
  if (has_bias_) {
    float* db = bias.grad.data();
    const float* pdy = dy.data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out_; ++o) db[o] += pdy[i * out_ + o];
  }
  if (!needs_input_grad) return Tensor(Shape{0});
  Tensor dx = Tensor::empty({n, in_});
  // dx (N, in) = dy (N, out) * W (out, in)
  gemm(false, false, n, in_, out_, 1.0f, dy.data(), out_, weight.value.data(), in_, 0.0f,
       dx.data(), in_);
  return dx;
}

std::string Linear::describe() const {
  return "Linear(" + std::to_string(in_) + ", " + std::to_string(out_) +
         (has_bias_ ? "" : ", bias=false") + ")";
}

std::vector<std::pair<std::string, Parameter*>> Linear::local_parameters() {
  if (has_bias_) return {{"weight", &weight}, {"bias", &bias}};
  return {{"weight", &weight}};
}

}  // namespace effml
