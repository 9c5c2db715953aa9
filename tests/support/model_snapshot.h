/// \file model_snapshot.h
/// \brief A copy of every parameter and buffer of a module, by name, to compare a model with
/// itself before and after a call.
#pragma once

#include <map>
#include <string>

#include "effml/module.h"
#include "effml/tensor.h"

namespace effml::testing {

/// Every parameter value and every buffer of `model` (its named_parameters() and
/// named_buffers(), with their dotted names), as copies that later changes to the model do not
/// reach. Gradients are not included. A buffer whose name is also a parameter's is dropped
/// (the parameter is kept).
inline std::map<std::string, Tensor> snapshot(Module& model) {
  std::map<std::string, Tensor> s;
  for (const auto& p : model.named_parameters()) s.emplace(p.name, p.param->value);
  for (const auto& b : model.named_buffers()) s.emplace(b.name, *b.tensor);
  return s;
}

}  // namespace effml::testing
