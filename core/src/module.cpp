#include "effml/module.h"

#include <sstream>
#include <typeinfo>

#include "effml/layers/activation.h"
#include "effml/layers/conv2d.h"
#include "effml/layers/pooling.h"

namespace effml {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}
}  // namespace

std::vector<NamedParameter> Module::named_parameters(const std::string& prefix) {
  std::vector<NamedParameter> out;
  for (auto& [name, p] : local_parameters()) out.push_back({join(prefix, name), p});
  for (auto& [name, child] : children()) {
    auto sub = child->named_parameters(join(prefix, name));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<NamedBuffer> Module::named_buffers(const std::string& prefix) {
  std::vector<NamedBuffer> out;
  for (auto& [name, b] : local_buffers()) out.push_back({join(prefix, name), b});
  for (auto& [name, child] : children()) {
    auto sub = child->named_buffers(join(prefix, name));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out{{prefix, this}};
  for (auto& [name, child] : children()) {
    auto sub = child->named_modules(join(prefix, name));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

Parameter& Module::parameter(const std::string& name) {
  auto all = named_parameters();
  for (auto& np : all)
    if (np.name == name) return *np.param;
  std::ostringstream os;
  os << "no parameter named '" << name << "'; the model has:";
  for (auto& np : all) os << " " << np.name;
  throw Error(os.str());
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (auto& np : named_parameters()) n += np.param->value.numel();
  return n;
}

void Module::zero_grad() {
  for (auto& np : named_parameters()) np.param->grad.zero_();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children()) child->train(on);
}

// ---- Sequential -------------------------------------------------------------------------------

Module& Sequential::add(std::unique_ptr<Module> m, std::string name) {
  EFFML_CHECK(m != nullptr, "Sequential::add: null module");
  if (name.empty()) name = std::to_string(layers_.size());
  for (auto& [n, l] : layers_)
    EFFML_CHECK(n != name, "Sequential::add: duplicate name '" << name << "'");
  m->train(training_);
  layers_.emplace_back(std::move(name), std::move(m));
  return *layers_.back().second;
}

void Sequential::replace(std::size_t i, std::unique_ptr<Module> m) {
  EFFML_CHECK(i < layers_.size() && m != nullptr,
              "Sequential::replace: index " << i << " of " << layers_.size());
  m->train(training_);
  layers_[i].second = std::move(m);
}

void Sequential::set_input_grads() {
  if (!training_) return;
  // A layer needs dx only if something before it does: a trainable layer, or our own caller.
  bool upstream = needs_input_grad;
  for (auto& [name, layer] : layers_) {
    layer->needs_input_grad = upstream;
    if (!layer->named_parameters().empty()) upstream = true;
  }
}

// Each intermediate result goes to the next module as forward_owned: a layer may then compute in
// place (ReLU, Flatten) or keep its input for backward without a copy (Conv2d, Linear).
Tensor Sequential::forward(const Tensor& x) {
  if (layers_.empty()) return x;
  set_input_grads();
  relu_fused_.assign(layers_.size(), 0);
  std::size_t i = 0;
  Tensor h = step(i, x);
  while (i < layers_.size()) h = step_owned(i, std::move(h));
  return h;
}

Tensor Sequential::forward_owned(Tensor&& x) {
  set_input_grads();
  relu_fused_.assign(layers_.size(), 0);
  Tensor h = std::move(x);
  for (std::size_t i = 0; i < layers_.size();) h = step_owned(i, std::move(h));
  return h;
}

bool Sequential::fusing_pool(std::size_t i) const {
  if (i + 1 >= layers_.size() || typeid(*layers_[i].second) != typeid(ReLU)) return false;
  const Module& next = *layers_[i + 1].second;
  return typeid(next) == typeid(MaxPool2d) && static_cast<const MaxPool2d&>(next).fuses_relu();
}

Conv2d* Sequential::fusing_conv(std::size_t i, const Shape& in) {
  if (i + 2 >= layers_.size() || typeid(*layers_[i].second) != typeid(Conv2d) ||
      typeid(*layers_[i + 1].second) != typeid(ReLU) ||
      typeid(*layers_[i + 2].second) != typeid(MaxPool2d))
    return nullptr;
  auto& conv = static_cast<Conv2d&>(*layers_[i].second);
  return conv.fuses_relu_pool(in, static_cast<MaxPool2d&>(*layers_[i + 2].second)) ? &conv
                                                                                    : nullptr;
}

MaxPool2d& Sequential::fuse(std::size_t& i, std::size_t count) {
  i += count;  // the ReLU and the pool are the last two of the fused modules
  static_cast<ReLU&>(*layers_[i - 2].second).fused_into_next();
  relu_fused_[i - 2] = 1;
  return static_cast<MaxPool2d&>(*layers_[i - 1].second);
}

Tensor Sequential::step(std::size_t& i, const Tensor& x) {
  if (Conv2d* conv = fusing_conv(i, x.shape())) return conv->forward_relu_pool(x, fuse(i, 3));
  if (fusing_pool(i)) return fuse(i, 2).forward_relu(x);
  return layers_[i++].second->forward(x);
}

Tensor Sequential::step_owned(std::size_t& i, Tensor&& h) {
  if (Conv2d* conv = fusing_conv(i, h.shape()))
    return conv->forward_relu_pool(std::move(h), fuse(i, 3));
  if (fusing_pool(i)) return fuse(i, 2).forward_relu(h);
  return layers_[i++].second->forward_owned(std::move(h));
}

Tensor Sequential::backward(const Tensor& dy) {
  if (layers_.empty()) return dy;
  Module& last = *layers_.back().second;
  Tensor g = last.backward(dy);
  // Nothing before a layer that needs no dx has parameters or a caller wanting dx: stop.
  if (!last.needs_input_grad) return Tensor(Shape{0});
  return backward_from(layers_.size() - 1, std::move(g));
}

Tensor Sequential::backward_owned(Tensor&& dy) {
  return backward_from(layers_.size(), std::move(dy));
}

Tensor Sequential::backward_from(std::size_t last, Tensor g) {
  for (std::size_t i = last; i-- > 0;) {
    Module& layer = *layers_[i].second;
    // A ReLU fused into the pool after it: the pool's backward covered both.
    if (i >= relu_fused_.size() || !relu_fused_[i]) g = layer.backward_owned(std::move(g));
    if (!layer.needs_input_grad) return Tensor(Shape{0});
  }
  return g;
}

std::string Sequential::describe() const {
  std::string s = "Sequential(";
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (i) s += ", ";
    s += layers_[i].second->describe();
  }
  return s + ")";
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (auto& [name, layer] : layers_) s = layer->output_shape(s);
  return s;
}

int64_t Sequential::macs(const Shape& in) const {
  int64_t total = 0;
  Shape s = in;
  for (auto& [name, layer] : layers_) {
    total += layer->macs(s);
    s = layer->output_shape(s);
  }
  return total;
}

std::vector<std::pair<std::string, Module*>> Sequential::children() {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& [name, layer] : layers_) out.emplace_back(name, layer.get());
  return out;
}

}  // namespace effml
