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

namespace {

void check_distillation(const Tensor& s, const Tensor& t, float temperature, const char* what) {
  EFFML_CHECK(s.dim() == 2 && s.shape() == t.shape(),
              what << ": student logits " << s.shape_str() << " and teacher logits "
                   << t.shape_str() << " must both be (N, C)");
  EFFML_CHECK(temperature > 0.0f && std::isfinite(temperature),
              what << ": temperature must be > 0, got " << temperature);
}

}  // namespace

float distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                        float temperature) {
  check_distillation(student_logits, teacher_logits, temperature, "distillation_loss");
  const Tensor p = softmax(student_logits / temperature);
  const Tensor q = softmax(teacher_logits / temperature);
  double kl = 0.0;
  for (int64_t i = 0; i < q.numel(); ++i) {
    if (q[i] > 0.0f) {
      kl += q[i] * (std::log(static_cast<double>(q[i])) - std::log(static_cast<double>(p[i])));
    }
  }
  const auto n = static_cast<double>(std::max<int64_t>(student_logits.size(0), 1));
  return static_cast<float>(static_cast<double>(temperature) * temperature * kl / n);
}

Tensor distillation_grad(const Tensor& student_logits, const Tensor& teacher_logits,
                         float temperature) {
  check_distillation(student_logits, teacher_logits, temperature, "distillation_grad");
  Tensor g = softmax(student_logits / temperature) - softmax(teacher_logits / temperature);
  const auto n = static_cast<float>(std::max<int64_t>(student_logits.size(0), 1));
  return g * (temperature / n);
}

}  // namespace effml
