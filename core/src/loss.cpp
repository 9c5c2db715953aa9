#include "effml/loss.h"

#include <cmath>

namespace effml {

Tensor softmax(const Tensor& logits) {
  EFFML_CHECK(logits.dim() == 2, "softmax: expected logits (N, C), got " << logits.shape_str());
  const int64_t n = logits.size(0), c = logits.size(1);
  Tensor p(logits.shape());
  const float* z = logits.data();
  float* q = p.data();
  for (int64_t i = 0; i < n; ++i) {
    const float* zi = z + i * c;
    float* qi = q + i * c;
    float m = zi[0];
    for (int64_t j = 1; j < c; ++j) m = std::max(m, zi[j]);
    double s = 0.0;
    for (int64_t j = 0; j < c; ++j) {
      qi[j] = std::exp(zi[j] - m);
      s += qi[j];
    }
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = 0; j < c; ++j) qi[j] *= inv;
  }
  return p;
}

float SoftmaxCrossEntropy::forward(const Tensor& logits, const std::vector<int32_t>& labels) {
  EFFML_CHECK(logits.dim() == 2 && logits.size(0) == static_cast<int64_t>(labels.size()),
              "cross_entropy: logits " << logits.shape_str() << " do not match "
                                       << labels.size() << " labels");
  EFFML_CHECK(!logits.has_nonfinite(), "cross_entropy: logits " << logits.shape_str()
                                                                << " contain NaN or infinity");
  const int64_t n = logits.size(0), c = logits.size(1);
  EFFML_CHECK(n > 0, "cross_entropy: empty batch");
  for (int64_t i = 0; i < n; ++i)
    EFFML_CHECK(labels[i] >= 0 && labels[i] < c, "cross_entropy: label " << labels[i] << " at "
                                                                         << i << " is outside [0, "
                                                                         << c << ")");
  probs_ = softmax(logits);
  labels_ = labels;
  // log p_y = z_y - m - log(sum exp(z - m)), computed from the logits for accuracy.
  const float* z = logits.data();
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float* zi = z + i * c;
    float m = zi[0];
    for (int64_t j = 1; j < c; ++j) m = std::max(m, zi[j]);
    double s = 0.0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(zi[j]) - m);
    total += -(static_cast<double>(zi[labels[i]]) - m - std::log(s));
  }
  return static_cast<float>(total / static_cast<double>(n));
}

Tensor SoftmaxCrossEntropy::backward() const {
  EFFML_CHECK(probs_.dim() == 2, "cross_entropy backward: call forward first");
  const int64_t n = probs_.size(0), c = probs_.size(1);
  Tensor d = probs_;
  float* pd = d.data();
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t i = 0; i < n; ++i) {
    pd[i * c + labels_[i]] -= 1.0f;
    for (int64_t j = 0; j < c; ++j) pd[i * c + j] *= inv_n;
  }
  return d;
}

}  // namespace effml
