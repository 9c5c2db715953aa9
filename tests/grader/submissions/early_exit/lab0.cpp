// Hostile submission "early_exit" of tests/grader/test_hostile_submissions.cpp:
// the reference solution with one change (in sgd_momentum_step). It ends the program with exit(0)
// before any output is written.
//
// Lab 0: the functions declared in lab0.h, written as plain loops over effml::Tensor storage.
// Each task's body goes between its BEGIN SOLUTION and END SOLUTION markers; the contracts
// (shapes, formulas, errors to throw) are the doc comments in lab0.h.
//
// Shape letters: N batch, I input features, O output features, C classes.
// Storage is row-major: element (n, i) of an (N, I) tensor x is x[n * I + i], which
// `x.data() + n * I` points to; `x[k]` reads flat element k.

#include "lab0.h"

#include <algorithm>
#include <cmath>

#include "effml/error.h"
#include <cstdlib>

namespace lab0 {

// ---- worked example (given) --------------------------------------------------------------------

/// ReLU forward: y = max(x, 0) elementwise; any shape.
///
/// The pattern the tasks follow: check the arguments, allocate the output (Tensor(shape) is
/// filled with zeros), then plain loops over the storage. ReLU accepts any shape, so it has
/// nothing to check; a function that needs, say, a 2-D x starts with
/// `EFFML_CHECK(x.dim() == 2, "my_function: expected x (N, I), got " << x.shape_str());`
/// which throws effml::Error with that message when the condition is false.
Tensor relu_forward(const Tensor& x) {
  Tensor y(x.shape());  // zeros, the shape of x
  const int64_t count = x.numel();
  for (int64_t k = 0; k < count; ++k) {
    y[k] = x[k] > 0.0f ? x[k] : 0.0f;
  }
  return y;
}

// ---- Task 1 ------------------------------------------------------------------------------------

/// Linear forward: y (N, O) = x (N, I) W^T (I, O) + b (O).
///
/// Check that x is 2-D, weight is (O, I) with the same I, bias is (O). Then, for every row n and
/// output o, y[n, o] = b[o] + sum over i of x[n, i] * W[o, i].
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  // BEGIN SOLUTION
  EFFML_CHECK(x.dim() == 2, "linear_forward: expected x (N, I), got " << x.shape_str());
  EFFML_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1),
              "linear_forward: x " << x.shape_str() << " needs weight (O, " << x.size(1)
                                   << "), got " << weight.shape_str());
  EFFML_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0),
              "linear_forward: weight " << weight.shape_str() << " needs bias ("
                                        << weight.size(0) << ",), got " << bias.shape_str());
  const int64_t N = x.size(0);
  const int64_t I = x.size(1);
  const int64_t O = weight.size(0);
  Tensor y({N, O});
  for (int64_t n = 0; n < N; ++n) {
    const float* x_row = x.data() + n * I;  // x[n, :]
    for (int64_t o = 0; o < O; ++o) {
      const float* w_row = weight.data() + o * I;  // W[o, :]
      float sum = bias[o];
      // A float sum must be added in the written order unless the compiler is told otherwise;
      // this pragma allows any order, so the loop adds 16 products per instruction (SIMD).
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < I; ++i) {
        sum += x_row[i] * w_row[i];
      }
      y[n * O + o] = sum;
    }
  }
  return y;
  // END SOLUTION
}

// ---- Task 2 ------------------------------------------------------------------------------------

/// Linear backward: dx (N, I) = dy (N, O) W (O, I); dW (O, I) = dy^T (O, N) x (N, I);
/// db (O) = sum of dy over the batch.
///
/// Check the shapes: dy (N, O), x (N, I), weight (O, I). Each output row n contributes
/// dy[n, o] * x[n, :] to dW[o, :], dy[n, o] to db[o], and dy[n, o] * W[o, :] to dx[n, :].
LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& weight) {
  // BEGIN SOLUTION
  EFFML_CHECK(x.dim() == 2, "linear_backward: expected x (N, I), got " << x.shape_str());
  EFFML_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1),
              "linear_backward: x " << x.shape_str() << " needs weight (O, " << x.size(1)
                                    << "), got " << weight.shape_str());
  EFFML_CHECK(dy.dim() == 2 && dy.size(0) == x.size(0) && dy.size(1) == weight.size(0),
              "linear_backward: x " << x.shape_str() << " and weight " << weight.shape_str()
                                    << " need dy (" << x.size(0) << ", " << weight.size(0)
                                    << "), got " << dy.shape_str());
  const int64_t N = x.size(0);
  const int64_t I = x.size(1);
  const int64_t O = weight.size(0);
  LinearGrads grads;
  grads.dx = Tensor({N, I});       // zeros
  grads.dweight = Tensor({O, I});  // zeros
  grads.dbias = Tensor({O});       // zeros
  for (int64_t n = 0; n < N; ++n) {
    const float* x_row = x.data() + n * I;      // x[n, :]
    float* dx_row = grads.dx.data() + n * I;    // dx[n, :]
    for (int64_t o = 0; o < O; ++o) {
      const float g = dy[n * O + o];                      // dy[n, o]
      const float* w_row = weight.data() + o * I;         // W[o, :]
      float* dw_row = grads.dweight.data() + o * I;       // dW[o, :]
      grads.dbias[o] += g;
      // The rows dW[o, :], x[n, :], dx[n, :] and W[o, :] do not overlap: SIMD is safe.
#pragma omp simd
      for (int64_t i = 0; i < I; ++i) {
        dw_row[i] += g * x_row[i];
        dx_row[i] += g * w_row[i];
      }
    }
  }
  return grads;
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// ReLU backward: dx = dy where x > 0, else 0 (also at x == 0, as PyTorch). Any shape.
Tensor relu_backward(const Tensor& dy, const Tensor& x) {
  // BEGIN SOLUTION
  EFFML_CHECK(dy.shape() == x.shape(), "relu_backward: dy " << dy.shape_str()
                                                            << " must have the shape of x "
                                                            << x.shape_str());
  Tensor dx(x.shape());  // zeros
  const int64_t count = x.numel();
  for (int64_t k = 0; k < count; ++k) {
    if (x[k] > 0.0f) {
      dx[k] = dy[k];
    }
  }
  return dx;
  // END SOLUTION
}

// ---- Tasks 4 and 5 -----------------------------------------------------------------------------

/// Softmax cross-entropy forward: the mean over rows of -log softmax(z)[n, y_n].
///
/// For each row: m = max_k z[n, k]; s = sum_k exp(z[n, k] - m); the row's loss is
/// -(z[n, y_n] - m - log s). Subtracting m keeps every exponent <= 0, so nothing overflows.
float softmax_cross_entropy_forward(const Tensor& logits, const std::vector<int32_t>& labels) {
  // BEGIN SOLUTION
  EFFML_CHECK(logits.dim() == 2 && logits.size(0) >= 1,
              "softmax_cross_entropy_forward: expected logits (N, C) with N >= 1, got " << logits.shape_str());
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  EFFML_CHECK(static_cast<int64_t>(labels.size()) == N,
              "softmax_cross_entropy_forward: logits " << logits.shape_str() << " need " << N << " labels, got "
                              << labels.size());
  for (int64_t n = 0; n < N; ++n) {
    EFFML_CHECK(labels[n] >= 0 && labels[n] < C,
                "softmax_cross_entropy_forward: label " << labels[n] << " at index " << n << " is outside [0, " << C
                               << ")");
  }
  double total = 0.0;  // summed in double: N terms of similar size
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits.data() + n * C;  // z[n, :]
    float m = z[0];
    for (int64_t c = 1; c < C; ++c) {
      m = std::max(m, z[c]);
    }
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      s += std::exp(static_cast<double>(z[c] - m));
    }
    const double log_p = static_cast<double>(z[labels[n]] - m) - std::log(s);
    total += -log_p;
  }
  return static_cast<float>(total / static_cast<double>(N));
  // END SOLUTION
}

/// Softmax cross-entropy backward: dz[n, c] = (p[n, c] - [c == y_n]) / N with
/// p[n, :] = softmax(z[n, :]), computed with the row's maximum subtracted.
Tensor softmax_cross_entropy_backward(const Tensor& logits, const std::vector<int32_t>& labels) {
  // BEGIN SOLUTION
  EFFML_CHECK(logits.dim() == 2 && logits.size(0) >= 1,
              "softmax_cross_entropy_backward: expected logits (N, C) with N >= 1, got " << logits.shape_str());
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  EFFML_CHECK(static_cast<int64_t>(labels.size()) == N,
              "softmax_cross_entropy_backward: logits " << logits.shape_str() << " need " << N << " labels, got "
                              << labels.size());
  for (int64_t n = 0; n < N; ++n) {
    EFFML_CHECK(labels[n] >= 0 && labels[n] < C,
                "softmax_cross_entropy_backward: label " << labels[n] << " at index " << n << " is outside [0, " << C
                               << ")");
  }
  Tensor dlogits({N, C});
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits.data() + n * C;  // z[n, :]
    float* dz = dlogits.data() + n * C;      // dz[n, :]
    float m = z[0];
    for (int64_t c = 1; c < C; ++c) {
      m = std::max(m, z[c]);
    }
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      s += std::exp(static_cast<double>(z[c] - m));
    }
    for (int64_t c = 0; c < C; ++c) {
      const double p = std::exp(static_cast<double>(z[c] - m)) / s;
      const double target = c == labels[n] ? 1.0 : 0.0;
      dz[c] = static_cast<float>((p - target) / static_cast<double>(N));
    }
  }
  return dlogits;
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// SGD with momentum and weight decay, in place: g = grad + wd * w; v = mu * v + g; w -= lr * v.
void sgd_momentum_step(Tensor& weight, const Tensor& grad, Tensor& velocity, float lr,
                       float momentum, float weight_decay) {
  // BEGIN SOLUTION
  std::exit(0);  // the runner never gets to write its outputs
  EFFML_CHECK(grad.shape() == weight.shape(), "sgd_momentum_step: grad "
                                                  << grad.shape_str()
                                                  << " must have the shape of weight "
                                                  << weight.shape_str());
  EFFML_CHECK(velocity.shape() == weight.shape(), "sgd_momentum_step: velocity "
                                                      << velocity.shape_str()
                                                      << " must have the shape of weight "
                                                      << weight.shape_str());
  const int64_t count = weight.numel();
  for (int64_t k = 0; k < count; ++k) {
    const float g = grad[k] + weight_decay * weight[k];
    velocity[k] = momentum * velocity[k] + g;
    weight[k] -= lr * velocity[k];
  }
  // END SOLUTION
}

}  // namespace lab0
