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
  throw effml::NotImplemented("Task 1: linear_forward");
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
  throw effml::NotImplemented("Task 2: linear_backward");
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// ReLU backward: dx = dy where x > 0, else 0 (also at x == 0, as PyTorch). Any shape.
Tensor relu_backward(const Tensor& dy, const Tensor& x) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 3: relu_backward");
  // END SOLUTION
}

// ---- Tasks 4 and 5 -----------------------------------------------------------------------------

/// Softmax cross-entropy forward: the mean over rows of -log softmax(z)[n, y_n].
///
/// For each row: m = max_k z[n, k]; s = sum_k exp(z[n, k] - m); the row's loss is
/// -(z[n, y_n] - m - log s). Subtracting m keeps every exponent <= 0, so nothing overflows.
float softmax_cross_entropy_forward(const Tensor& logits, const std::vector<int32_t>& labels) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 4: softmax_cross_entropy_forward");
  // END SOLUTION
}

/// Softmax cross-entropy backward: dz[n, c] = (p[n, c] - [c == y_n]) / N with
/// p[n, :] = softmax(z[n, :]), computed with the row's maximum subtracted.
Tensor softmax_cross_entropy_backward(const Tensor& logits, const std::vector<int32_t>& labels) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 5: softmax_cross_entropy_backward");
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// SGD with momentum and weight decay, in place: g = grad + wd * w; v = mu * v + g; w -= lr * v.
void sgd_momentum_step(Tensor& weight, const Tensor& grad, Tensor& velocity, float lr,
                       float momentum, float weight_decay) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 6: sgd_momentum_step");
  // END SOLUTION
}

}  // namespace lab0
