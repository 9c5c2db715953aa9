/// \file module.h
/// \brief Module (a layer with forward and backward), Parameter, and Sequential.
///
/// Every layer computes `forward` and, from the gradient of the loss with respect to its output,
/// `backward`: it returns the gradient with respect to its input and *accumulates* (`+=`) the
/// gradients of its parameters. Parameters and buffers carry PyTorch-style dotted names
/// (`features.0.weight`) so checkpoints match PyTorch's `state_dict` and so pruning masks and fake
/// quantization can find a weight by name.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "effml/tensor.h"

namespace effml {

class Conv2d;
class MaxPool2d;

/// A trainable tensor and its gradient (same shape, zeroed by `zero_grad`).
struct Parameter {
  Tensor value;  ///< the trainable values
  Tensor grad;   ///< dL/dvalue, same shape as value; backward adds into it

  /// Empty value and gradient (shape (0)).
  Parameter() = default;
  /// Takes `v` as the value; the gradient is float32 zeros of the same shape.
  explicit Parameter(Tensor v) : value(std::move(v)), grad(Tensor::zeros(value.shape())) {}
};

/// A parameter as seen by a visitor: its full dotted name and the parameter itself.
struct NamedParameter {
  std::string name;  ///< dotted name, e.g. "features.0.weight"
  Parameter* param;  ///< not owned: points into the module that holds the parameter
};

/// A non-trainable state tensor (batch-norm running statistics) with its full dotted name.
struct NamedBuffer {
  std::string name;  ///< dotted name, e.g. "features.1.running_mean"
  Tensor* tensor;    ///< not owned: points into the module that holds the buffer
};

/// Base class of every layer and model.
///
/// Contract: `forward(x)` in training mode caches whatever `backward` needs; `backward(dy)` must
/// follow the matching `forward`, has `dy` of the output's shape, returns `dx` of the input's shape
/// and adds the parameter gradients into `Parameter::grad`.
class Module {
 public:
  /// Destroys the module and, for containers, the sub-modules it owns.
  virtual ~Module() = default;
  /// A module in training mode.
  Module() = default;
  /// Not copyable: layers cache activations and are referred to by address.
  Module(const Module&) = delete;
  /// Not copyable.
  Module& operator=(const Module&) = delete;

  /// y = f(x).
  virtual Tensor forward(const Tensor& x) = 0;
  /// forward(x) for a caller that has no further use for x: the layer may write y into x's
  /// storage, or keep x for backward without copying it. Sequential hands its intermediate
  /// results on this way. The default calls forward(x); an override gives the same y and leaves
  /// the same state for backward.
  virtual Tensor forward_owned(Tensor&& x) { return forward(x); }
  /// dx from dy; parameter gradients are accumulated (+=).
  virtual Tensor backward(const Tensor& dy) = 0;
  /// backward(dy) for a caller that has no further use for dy: the layer may write dx into dy's
  /// storage. The default calls backward(dy); an override gives the same dx and gradients.
  virtual Tensor backward_owned(Tensor&& dy) { return backward(dy); }
  /// Short description, e.g. "Linear(784, 300)".
  virtual std::string describe() const = 0;
  /// Output shape for an input of shape `in` (batch dimension included). Throws on a bad shape.
  virtual Shape output_shape(const Shape& in) const = 0;
  /// Multiply-accumulate operations of one forward pass of an input of shape `in` (batch
  /// included), this module alone. Zero for layers without multiplications by weights.
  virtual int64_t macs(const Shape& in) const {
    (void)in;
    return 0;
  }

  /// This module's own parameters with their local names ("weight", "bias"), PyTorch's order.
  virtual std::vector<std::pair<std::string, Parameter*>> local_parameters() { return {}; }
  /// This module's own buffers with their local names ("running_mean", ...).
  virtual std::vector<std::pair<std::string, Tensor*>> local_buffers() { return {}; }
  /// Sub-modules with their names, in order ("0", "1", ... or "features", "classifier").
  virtual std::vector<std::pair<std::string, Module*>> children() { return {}; }

  /// Every parameter of this module and its descendants, depth first, with dotted names.
  std::vector<NamedParameter> named_parameters(const std::string& prefix = "");
  /// Every buffer, depth first, with dotted names.
  std::vector<NamedBuffer> named_buffers(const std::string& prefix = "");
  /// Every (name, module) pair below and including this one ("" names this module).
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");
  /// The parameter with this dotted name; throws naming the known names when absent.
  Parameter& parameter(const std::string& name);
  /// Total number of trainable values.
  int64_t num_parameters();
  /// Sets every parameter's gradient to zero.
  void zero_grad();

  /// Training mode (batch-norm uses batch statistics, dropout drops) for this module and below.
  void train(bool on = true);
  /// Evaluation mode: the same as train(false).
  void eval() { train(false); }
  /// True in training mode (the default), false after eval() or train(false).
  bool is_training() const { return training_; }

  /// When false, backward may skip computing dx (the first layer of a network) and return an
  /// empty tensor. Parameter gradients are still computed.
  bool needs_input_grad = true;

 protected:
  /// The mode set by train() and eval(); forward reads it to decide what to cache.
  bool training_ = true;

  /// Empties a tensor a forward cached for backward, unless it is empty already (assigning an
  /// empty tensor allocates, and an evaluation-mode forward drops its cache at every call).
  static void drop(Tensor& cache) {
    if (cache.numel() != 0) cache = Tensor();
  }
  /// What a forward keeps of its input x for backward: x in training mode; nothing in evaluation
  /// mode, where an input kept earlier is dropped so that a backward after it fails.
  void keep_input(Tensor& cache, const Tensor& x) const {
    if (training_)
      cache = x;
    else
      drop(cache);
  }
  /// The same for an input the caller no longer needs: kept without a copy.
  void keep_input(Tensor& cache, Tensor&& x) const {
    if (training_)
      cache = std::move(x);
    else
      drop(cache);
  }
};

/// Modules applied in order; backward runs them in reverse.
class Sequential : public Module {
 public:
  /// An empty sequence: forward returns its input unchanged.
  Sequential() = default;
  /// Appends a module under the name `name` (default: its index, as PyTorch's nn.Sequential).
  Module& add(std::unique_ptr<Module> m, std::string name = "");
  /// Appends a module constructed in place: `seq.emplace<Linear>(784, 300)`.
  template <typename M, typename... Args>
  M& emplace(Args&&... args) {
    auto p = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *p;
    add(std::move(p));
    return ref;
  }
  /// Same, with a name: `seq.emplace_named<Sequential>("features")`.
  template <typename M, typename... Args>
  M& emplace_named(std::string name, Args&&... args) {
    auto p = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *p;
    add(std::move(p), std::move(name));
    return ref;
  }

  /// Number of modules in the sequence.
  std::size_t size() const { return layers_.size(); }
  /// Module `i` (0-based); throws std::out_of_range when i >= size().
  Module& operator[](std::size_t i) { return *layers_.at(i).second; }
  /// Name of module `i` ("0", "1", ... unless named); throws std::out_of_range when i >= size().
  const std::string& name_at(std::size_t i) const { return layers_.at(i).first; }
  /// Replaces module i (channel pruning swaps in smaller layers); keeps its name.
  void replace(std::size_t i, std::unique_ptr<Module> m);

  /// Runs the modules in order. In training mode it first sets each module's needs_input_grad:
  /// false when no module before it has parameters and this Sequential's own needs_input_grad is
  /// false, so the backward of the first layers skips computing dx. A ReLU followed by a max
  /// pool that can compute it (MaxPool2d::fuses_relu) runs as one pass,
  /// MaxPool2d::forward_relu, and a Conv2d, a ReLU and a max pool in a row as one when the
  /// convolution can compute the other two (Conv2d::fuses_relu_pool), with the same outputs and
  /// gradients; backward then skips that ReLU.
  Tensor forward(const Tensor& x) override;
  /// The same, x handed to the first module as forward_owned.
  Tensor forward_owned(Tensor&& x) override;
  /// Runs the modules' backward in reverse order; after a module whose needs_input_grad is false
  /// it stops and returns an empty tensor. The modules before the last get their dy as
  /// backward_owned.
  Tensor backward(const Tensor& dy) override;
  /// The same, dy handed to the last module as backward_owned.
  Tensor backward_owned(Tensor&& dy) override;
  /// "Sequential(" followed by the modules' descriptions, comma-separated, and ")".
  std::string describe() const override;
  /// The input shape passed through every module's output_shape in order.
  Shape output_shape(const Shape& in) const override;
  /// Sum of the modules' MACs, each at the shape that reaches it.
  int64_t macs(const Shape& in) const override;
  /// The modules with their names, in order.
  std::vector<std::pair<std::string, Module*>> children() override;

 private:
  // In training mode, sets each module's needs_input_grad as forward describes.
  void set_input_grads();
  // Runs backward_owned from module last - 1 down to module 0, as backward describes.
  Tensor backward_from(std::size_t last, Tensor g);
  // Whether module i is a ReLU (exactly that class) that the max pool after it can compute
  // (MaxPool2d::fuses_relu).
  bool fusing_pool(std::size_t i) const;
  // Module i when modules i, i + 1 and i + 2 are a Conv2d, a ReLU and a MaxPool2d (exactly those
  // classes) and the convolution can compute the other two on an input of shape `in`
  // (Conv2d::fuses_relu_pool), else null.
  Conv2d* fusing_conv(std::size_t i, const Shape& in);
  // For fusing_conv(i) (count 3) or fusing_pool(i) (count 2): moves i past the `count` fused
  // modules, records the ReLU among them (the second last) as fused and returns the pool (the
  // last).
  MaxPool2d& fuse(std::size_t& i, std::size_t count);
  // Module i's forward on x, or, when fusing_conv(i) or fusing_pool(i), the modules it fuses in
  // one pass; i moves past the modules that ran.
  Tensor step(std::size_t& i, const Tensor& x);
  // The same with forward_owned, for an intermediate result.
  Tensor step_owned(std::size_t& i, Tensor&& h);

  std::vector<std::pair<std::string, std::unique_ptr<Module>>> layers_;
  std::vector<char> relu_fused_;  // per module: a ReLU that the last forward fused into the next
};

}  // namespace effml
