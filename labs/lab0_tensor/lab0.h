/// \file lab0.h
/// \brief Lab 0: the functions you write. A linear layer, ReLU, the softmax cross-entropy loss
/// and an SGD-with-momentum step, as plain functions on effml::Tensor.
///
/// Shape letters used throughout:
///
/// | letter | meaning                                        |
/// |--------|------------------------------------------------|
/// | N      | batch size (rows of the input)                 |
/// | I      | input features of a linear layer (`in`)        |
/// | O      | output features of a linear layer (`out`)      |
/// | C      | classes (columns of the logits)                |
///
/// All tensors are float32, contiguous and row-major: element \f$ (n, i) \f$ of an (N, I)
/// tensor `x` is `x[n * I + i]` (or `x.at({n, i})`, which checks bounds). Every function checks
/// its arguments' shapes first and throws effml::Error with a message that names them (use
/// `EFFML_CHECK` from `effml/error.h` and `Tensor::shape_str()`).
///
/// The functions are stateless: a backward function receives what it needs (the forward's
/// inputs) as arguments and returns fresh gradients; the layers in student_model.h keep the
/// cache and accumulate parameter gradients.
///
/// See \ref lab0_tensor "the lecture-companion page" for the derivations.
#pragma once

#include <cstdint>
#include <vector>

#include "effml/tensor.h"

/// \brief Lab 0 (the tensor core): the functions students implement, and the layers built on
/// them.
namespace lab0 {

using effml::Tensor;

/// The three gradients of a linear layer, returned by linear_backward().
struct LinearGrads {
  Tensor dx;       ///< \f$ \partial L / \partial x \f$, shape (N, I)
  Tensor dweight;  ///< \f$ \partial L / \partial W \f$, shape (O, I)
  Tensor dbias;    ///< \f$ \partial L / \partial b \f$, shape (O)
};

// ---- worked example (given) --------------------------------------------------------------------

/// ReLU forward (given, as a worked example of the style the tasks follow):
/// \f$ y = \max(x, 0) \f$ elementwise.
///
/// \param x any shape
/// \returns y, the shape of x
Tensor relu_forward(const Tensor& x);

// ---- Task 1 ------------------------------------------------------------------------------------

/// **Task 1.** Linear layer forward: \f$ y = x W^\top + b \f$, that is
/// \f$ y_{n,o} = b_o + \sum_{i} x_{n,i} W_{o,i} \f$.
///
/// \param x      input, (N, I)
/// \param weight W, (O, I) (PyTorch's layout: one row per output feature)
/// \param bias   b, (O)
/// \returns y, (N, O)
/// \throws effml::Error when x is not 2-D, weight is not (O, I) with I the columns of x, or bias
///         is not (O); the message names the shapes
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- Task 2 ------------------------------------------------------------------------------------

/// **Task 2.** Linear layer backward. Given \f$ dy = \partial L / \partial y \f$ for
/// \f$ y = x W^\top + b \f$:
/// \f$ dx = dy\,W \f$, \f$ dW = dy^\top x \f$, \f$ db = \sum_n dy_{n,:} \f$, that is
/// \f$ dx_{n,i} = \sum_o dy_{n,o} W_{o,i} \f$, \f$ dW_{o,i} = \sum_n dy_{n,o} x_{n,i} \f$,
/// \f$ db_o = \sum_n dy_{n,o} \f$.
///
/// The bias does not enter any gradient, so it is not an argument.
///
/// \param dy     upstream gradient, (N, O)
/// \param x      the forward's input, (N, I)
/// \param weight the forward's W, (O, I)
/// \returns dx (N, I), dweight (O, I), dbias (O): fresh tensors (nothing is accumulated here)
/// \throws effml::Error when the shapes do not fit together; the message names them
LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& weight);

// ---- Task 3 ------------------------------------------------------------------------------------

/// **Task 3.** ReLU backward: \f$ dx = dy \cdot [x > 0] \f$ elementwise.
///
/// Where \f$ x = 0 \f$ exactly, ReLU has no derivative; use 0 there, as PyTorch does.
///
/// \param dy upstream gradient, the shape of x
/// \param x  the forward's input, any shape
/// \returns dx, the shape of x
/// \throws effml::Error when dy and x differ in shape
Tensor relu_backward(const Tensor& dy, const Tensor& x);

// ---- Task 4 ------------------------------------------------------------------------------------

/// **Task 4.** Softmax cross-entropy forward: the mean over the batch of
/// \f$ -\log p_{n,y_n} \f$ with \f$ p_{n,c} = e^{z_{n,c}} / \sum_k e^{z_{n,k}} \f$, as
/// `torch.nn.functional.cross_entropy(z, y)`.
///
/// Compute \f$ \log p_{n,y_n} = z_{n,y_n} - m_n - \log \sum_k e^{z_{n,k} - m_n} \f$ with
/// \f$ m_n = \max_k z_{n,k} \f$: the result is the same, but no exponential overflows when a
/// logit is large (\f$ e^{89} \f$ is already infinite in float32).
///
/// \param logits z, (N, C), N >= 1
/// \param labels y, N class indices in [0, C)
/// \returns the mean loss \f$ L = -\frac{1}{N} \sum_n \log p_{n,y_n} \f$
/// \throws effml::Error when logits is not 2-D, the label count is not N, or a label is outside
///         [0, C)
float softmax_cross_entropy_forward(const Tensor& logits, const std::vector<int32_t>& labels);

// ---- Task 5 ------------------------------------------------------------------------------------

/// **Task 5.** Softmax cross-entropy backward: the gradient of the mean loss of Task 4 with
/// respect to the logits, \f$ \partial L / \partial z_{n,c} = \frac{1}{N}(p_{n,c} - [c = y_n]) \f$.
///
/// The softmax must not overflow either: subtract each row's maximum before exponentiating.
///
/// \param logits z, (N, C), N >= 1
/// \param labels y, N class indices in [0, C)
/// \returns dlogits, (N, C)
/// \throws effml::Error as softmax_cross_entropy_forward()
Tensor softmax_cross_entropy_backward(const Tensor& logits, const std::vector<int32_t>& labels);

// ---- Task 6 ------------------------------------------------------------------------------------

/// **Task 6.** One step of SGD with momentum and weight decay, in place, as `torch.optim.SGD`:
/// \f[ g = \nabla w + \lambda w, \qquad v \leftarrow \mu v + g, \qquad w \leftarrow w - \eta v \f]
/// with learning rate \f$ \eta \f$ (`lr`), momentum \f$ \mu \f$ and weight decay \f$ \lambda \f$.
///
/// The velocity starts at zero, so after the first step \f$ v = g \f$, which is PyTorch's first
/// step too. With \f$ \mu = 0 \f$ this is plain SGD.
///
/// \param weight       w, any shape; updated in place
/// \param grad         \f$ \nabla w \f$, the shape of weight
/// \param velocity     v, the shape of weight; updated in place
/// \param lr           \f$ \eta \ge 0 \f$
/// \param momentum     \f$ \mu \ge 0 \f$
/// \param weight_decay \f$ \lambda \ge 0 \f$
/// \throws effml::Error when grad or velocity differ in shape from weight
void sgd_momentum_step(Tensor& weight, const Tensor& grad, Tensor& velocity, float lr,
                       float momentum, float weight_decay);

}  // namespace lab0
