// Lab 1: the functions declared in lab1.h. Each task's body goes between its BEGIN SOLUTION and
// END SOLUTION markers; the contracts (shapes, formulas, errors to throw) are the doc comments in
// lab1.h.
//
// Useful pieces of the core: Tensor::abs, kthvalue, count_nonzero, index_select(dim, indices),
// argsort(descending) (stable), mul_(mask); Module::named_parameters() and named_buffers();
// effml::evaluate(model, data).accuracy; effml::make_vgg(cfg) and effml::vgg_config(model);
// effml::bitmask_size_bits, effml::model_size_bytes; the layer classes Conv2d and BatchNorm2d
// (public `weight`, `bias`, `running_mean`, `running_var`).

#include "lab1.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "effml/error.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/train.h"

namespace lab1 {

namespace {

// The parameter called `name` in `model`, or an error naming it.
[[maybe_unused]] effml::Parameter& find_parameter(effml::Module& model, const std::string& name,
                                 const char* caller) {
  for (const effml::NamedParameter& p : model.named_parameters()) {
    if (p.name == name) return *p.param;
  }
  throw effml::Error(std::string(caller) + ": the model has no parameter named '" + name + "'");
}

// The VGG's layers that channel pruning touches: each conv and the batch-norm right after it.
struct ConvBlock {
  effml::Conv2d* conv;
  effml::BatchNorm2d* bn;
};

[[maybe_unused]] std::vector<ConvBlock> conv_blocks(effml::Sequential& model, const char* caller) {
  effml::vgg_config(model);  // throws unless the model is a VGG
  auto& features = dynamic_cast<effml::Sequential&>(model[0]);
  std::vector<ConvBlock> blocks;
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (auto* conv = dynamic_cast<effml::Conv2d*>(&features[i])) {
      auto* bn = i + 1 < features.size() ? dynamic_cast<effml::BatchNorm2d*>(&features[i + 1])
                                         : nullptr;
      EFFML_CHECK(bn != nullptr, caller << ": features." << i
                                        << " (a conv) is not followed by a BatchNorm2d");
      blocks.push_back({conv, bn});
    }
  }
  return blocks;
}

[[maybe_unused]] std::vector<int64_t> first_n(int64_t n) {
  std::vector<int64_t> index(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) index[static_cast<std::size_t>(i)] = i;
  return index;
}

}  // namespace

// ---- Task 1 ------------------------------------------------------------------------------------

/// Magnitude pruning: z = round(n * s) values with the smallest |w| become 0 (ties with the
/// threshold too); returns the mask of kept values.
Tensor fine_grained_prune(Tensor& weight, double sparsity) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 1: fine_grained_prune");
  // END SOLUTION
}

// ---- Task 2 ------------------------------------------------------------------------------------

/// Prunes each named parameter and keeps its mask.
FineGrainedPruner::FineGrainedPruner(effml::Module& model,
                                     const std::map<std::string, double>& sparsities) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 2: FineGrainedPruner");
  // END SOLUTION
}

/// Re-applies every mask: pruned values back to exactly 0.
void FineGrainedPruner::apply(effml::Module& model) const {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 2: FineGrainedPruner::apply");
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// Prunes one parameter at a time at each sparsity, measures accuracy, restores it.
std::vector<SensitivityCurve> sensitivity_scan(effml::Module& model, const effml::Dataset& data,
                                               const std::vector<double>& sparsities) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 3: sensitivity_scan");
  // END SOLUTION
}

// ---- Task 4 ------------------------------------------------------------------------------------

/// Allows every layer the same accuracy loss d on the scan (interpolated between grid points)
/// and finds, by bisection, the smallest d whose sparsities meet the size target.
std::map<std::string, double> choose_sparsities(effml::Module& model,
                                                const std::vector<SensitivityCurve>& scan,
                                                const std::vector<double>& sparsities,
                                                double dense_accuracy, double max_size_fraction) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 4: choose_sparsities");
  // END SOLUTION
}

// ---- Task 5 ------------------------------------------------------------------------------------

/// max(1, round(c * (1 - r))).
int64_t get_num_channels_to_keep(int64_t channels, double prune_ratio) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 5: get_num_channels_to_keep");
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// I[c] = sqrt(sum over o, i, j of W[o, c, i, j]^2).
Tensor get_input_channel_importance(const Tensor& weight) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 6: get_input_channel_importance");
  // END SOLUTION
}

// ---- Task 7 ------------------------------------------------------------------------------------

/// Orders each conv's output channels by the next conv's input-channel importance.
void apply_channel_sorting(effml::Sequential& model) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 7: apply_channel_sorting");
  // END SOLUTION
}

// ---- Task 8 ------------------------------------------------------------------------------------

/// Keeps the first round(C (1 - r)) output channels of every conv but the last.
std::unique_ptr<effml::Sequential> channel_prune(effml::Sequential& model, double prune_ratio) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 8: channel_prune");
  // END SOLUTION
}

}  // namespace lab1
