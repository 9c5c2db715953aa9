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
  EFFML_CHECK(sparsity >= 0.0 && sparsity <= 1.0,
              "fine_grained_prune: sparsity must be in [0, 1], got " << sparsity);
  const int64_t n = weight.numel();
  const int64_t zeros = std::lround(static_cast<double>(n) * sparsity);
  Tensor mask = Tensor::ones(weight.shape());
  if (zeros == 0) return mask;
  const Tensor magnitude = weight.abs();
  const float threshold = magnitude.kthvalue(zeros);
  for (int64_t k = 0; k < n; ++k) {
    if (magnitude[k] <= threshold) mask[k] = 0.0f;
  }
  weight.mul_(mask);
  return mask;
  // END SOLUTION
}

// ---- Task 2 ------------------------------------------------------------------------------------

/// Prunes each named parameter and keeps its mask.
FineGrainedPruner::FineGrainedPruner(effml::Module& model,
                                     const std::map<std::string, double>& sparsities) {
  // BEGIN SOLUTION
  for (const auto& [name, sparsity] : sparsities) {
    effml::Parameter& p = find_parameter(model, name, "FineGrainedPruner");
    masks_[name] = fine_grained_prune(p.value, sparsity);
  }
  // END SOLUTION
}

/// Re-applies every mask: pruned values back to exactly 0.
void FineGrainedPruner::apply(effml::Module& model) const {
  // BEGIN SOLUTION
  for (const auto& [name, mask] : masks_) {
    effml::Parameter& p = find_parameter(model, name, "FineGrainedPruner::apply");
    EFFML_CHECK(p.value.shape() == mask.shape(), "FineGrainedPruner::apply: "
                                                     << name << " is " << p.value.shape_str()
                                                     << ", its mask " << mask.shape_str());
    p.value.mul_(mask);
  }
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// Prunes one parameter at a time at each sparsity, measures accuracy, restores it.
std::vector<SensitivityCurve> sensitivity_scan(effml::Module& model, const effml::Dataset& data,
                                               const std::vector<double>& sparsities) {
  // BEGIN SOLUTION
  std::vector<SensitivityCurve> curves;
  for (const effml::NamedParameter& p : model.named_parameters()) {
    if (p.param->value.dim() < 2) continue;
    const Tensor original = p.param->value;  // a copy, to restore from
    SensitivityCurve curve{p.name, {}};
    for (double sparsity : sparsities) {
      p.param->value.copy_(original);
      fine_grained_prune(p.param->value, sparsity);
      curve.accuracy.push_back(effml::evaluate(model, data).accuracy);
    }
    p.param->value.copy_(original);
    curves.push_back(std::move(curve));
  }
  return curves;
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
  EFFML_CHECK(max_size_fraction > 0 && max_size_fraction <= 1,
              "choose_sparsities: max_size_fraction must be in (0, 1], got " << max_size_fraction);
  std::map<std::string, int64_t> numel;
  double dense_bits = 0;
  for (const effml::NamedParameter& p : model.named_parameters()) {
    numel[p.name] = p.param->value.numel();
    dense_bits += 32.0 * static_cast<double>(p.param->value.numel());
  }
  const double budget_bits = max_size_fraction * dense_bits;
  // The largest sparsity at which a layer's scan curve, interpolated linearly, still reaches
  // `target`: the curve starts at (0, dense_accuracy) and is followed until it first drops below.
  auto largest_sparsity_above = [&](const SensitivityCurve& curve, double target) {
    double s0 = 0, a0 = dense_accuracy;
    if (a0 < target) return 0.0;
    for (std::size_t i = 0; i < sparsities.size(); ++i) {
      const double s1 = sparsities[i], a1 = curve.accuracy[i];
      if (s1 <= s0) continue;
      if (a1 < target) return a0 == a1 ? s0 : s0 + (s1 - s0) * (a0 - target) / (a0 - a1);
      s0 = s1;
      a0 = a1;
    }
    return s0;
  };

  auto choice_for = [&](double loss) {
    std::map<std::string, double> choice;
    for (const SensitivityCurve& curve : scan) {
      EFFML_CHECK(curve.accuracy.size() == sparsities.size(),
                  "choose_sparsities: " << curve.name << " has " << curve.accuracy.size()
                                        << " accuracies for " << sparsities.size()
                                        << " sparsities");
      choice[curve.name] = largest_sparsity_above(curve, dense_accuracy - loss);
    }
    return choice;
  };
  auto size_bits = [&](const std::map<std::string, double>& choice) {
    double bits = dense_bits;
    for (const auto& [name, sparsity] : choice) {
      const int64_t n = numel.at(name);
      const int64_t kept = n - std::lround(static_cast<double>(n) * sparsity);
      bits += effml::bitmask_size_bits(n, kept) - 32.0 * static_cast<double>(n);
    }
    return bits;
  };

  double low = 0, high = 1;  // accuracy losses: low misses the budget, high meets it
  if (size_bits(choice_for(low)) <= budget_bits) return choice_for(low);
  for (int i = 0; i < 50; ++i) {
    const double mid = 0.5 * (low + high);
    (size_bits(choice_for(mid)) <= budget_bits ? high : low) = mid;
  }
  return choice_for(high);
  // END SOLUTION
}

// ---- Task 5 ------------------------------------------------------------------------------------

/// max(1, round(c * (1 - r))).
int64_t get_num_channels_to_keep(int64_t channels, double prune_ratio) {
  // BEGIN SOLUTION
  EFFML_CHECK(channels >= 1, "get_num_channels_to_keep: channels must be >= 1, got " << channels);
  EFFML_CHECK(prune_ratio >= 0.0 && prune_ratio < 1.0,
              "get_num_channels_to_keep: prune_ratio must be in [0, 1), got " << prune_ratio);
  const int64_t keep = std::lround(static_cast<double>(channels) * (1.0 - prune_ratio));
  return std::max<int64_t>(1, keep);
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// I[c] = sqrt(sum over o, i, j of W[o, c, i, j]^2).
Tensor get_input_channel_importance(const Tensor& weight) {
  // BEGIN SOLUTION
  EFFML_CHECK(weight.dim() == 4, "get_input_channel_importance: expected a conv weight "
                                 "(Cout, Cin, K, K), got "
                                     << weight.shape_str());
  const int64_t out = weight.size(0), in = weight.size(1);
  const int64_t kk = weight.size(2) * weight.size(3);
  Tensor importance({in});
  for (int64_t c = 0; c < in; ++c) {
    double sum = 0;
    for (int64_t o = 0; o < out; ++o) {
      const float* w = weight.data() + (o * in + c) * kk;  // W[o, c, :, :]
      for (int64_t k = 0; k < kk; ++k) sum += static_cast<double>(w[k]) * w[k];
    }
    importance[c] = static_cast<float>(std::sqrt(sum));
  }
  return importance;
  // END SOLUTION
}

// ---- Task 7 ------------------------------------------------------------------------------------

/// Orders each conv's output channels by the next conv's input-channel importance.
void apply_channel_sorting(effml::Sequential& model) {
  // BEGIN SOLUTION
  std::vector<ConvBlock> blocks = conv_blocks(model, "apply_channel_sorting");
  for (std::size_t j = 0; j + 1 < blocks.size(); ++j) {
    effml::Conv2d& conv = *blocks[j].conv;
    effml::BatchNorm2d& bn = *blocks[j].bn;
    effml::Conv2d& next = *blocks[j + 1].conv;
    const std::vector<int64_t> order =
        get_input_channel_importance(next.weight.value).argsort(/*descending=*/true);
    conv.weight.value = conv.weight.value.index_select(0, order);
    if (conv.has_bias()) conv.bias.value = conv.bias.value.index_select(0, order);
    bn.weight.value = bn.weight.value.index_select(0, order);
    bn.bias.value = bn.bias.value.index_select(0, order);
    bn.running_mean = bn.running_mean.index_select(0, order);
    bn.running_var = bn.running_var.index_select(0, order);
    next.weight.value = next.weight.value.index_select(1, order);
  }
  // END SOLUTION
}

// ---- Task 8 ------------------------------------------------------------------------------------

/// Keeps the first round(C (1 - r)) output channels of every conv but the last.
std::unique_ptr<effml::Sequential> channel_prune(effml::Sequential& model, double prune_ratio) {
  // BEGIN SOLUTION
  std::vector<ConvBlock> blocks = conv_blocks(model, "channel_prune");
  std::vector<int64_t> cfg = effml::vgg_config(model);
  std::vector<int64_t> keep;  // output channels kept by each conv
  for (std::size_t j = 0; j < blocks.size(); ++j) {
    const int64_t c = blocks[j].conv->out_channels();
    keep.push_back(j + 1 < blocks.size() ? get_num_channels_to_keep(c, prune_ratio) : c);
  }
  for (std::size_t i = 0, j = 0; i < cfg.size(); ++i) {
    if (cfg[i] != 0) cfg[i] = keep[j++];
  }
  std::unique_ptr<effml::Sequential> pruned = effml::make_vgg(cfg);
  std::vector<ConvBlock> new_blocks = conv_blocks(*pruned, "channel_prune");
  for (std::size_t j = 0; j < blocks.size(); ++j) {
    const std::vector<int64_t> out = first_n(keep[j]);
    Tensor w = blocks[j].conv->weight.value.index_select(0, out);
    if (j > 0) w = w.index_select(1, first_n(keep[j - 1]));
    new_blocks[j].conv->weight.value = w;
    const effml::BatchNorm2d& bn = *blocks[j].bn;
    effml::BatchNorm2d& new_bn = *new_blocks[j].bn;
    new_bn.weight.value = bn.weight.value.index_select(0, out);
    new_bn.bias.value = bn.bias.value.index_select(0, out);
    new_bn.running_mean = bn.running_mean.index_select(0, out);
    new_bn.running_var = bn.running_var.index_select(0, out);
  }
  auto& classifier = dynamic_cast<effml::Linear&>(model[2]);
  auto& new_classifier = dynamic_cast<effml::Linear&>((*pruned)[2]);
  new_classifier.weight.value = classifier.weight.value;
  new_classifier.bias.value = classifier.bias.value;
  return pruned;
  // END SOLUTION
}

}  // namespace lab1
