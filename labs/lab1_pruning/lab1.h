/// \file lab1.h
/// \brief Lab 1: the functions you write. Fine-grained (magnitude) pruning with masks kept
/// through fine-tuning, a sensitivity scan, a per-layer sparsity choice that meets a size
/// target, and channel pruning of the VGG-style CNN.
///
/// Terms used throughout:
///
/// | term        | meaning                                                                  |
/// |-------------|--------------------------------------------------------------------------|
/// | sparsity    | fraction of a tensor's values that are zero, in [0, 1]                   |
/// | mask        | float32 tensor of 0s and 1s, the shape of the weight it belongs to       |
/// | prunable    | a parameter of two or more dimensions: convolution and linear weights    |
/// | VGG         | effml::make_vgg(cfg): conv3x3-BN-ReLU blocks and 2x2 pools, then a linear |
/// | prune ratio | fraction of a convolution's output channels removed, in [0, 1)           |
///
/// Parameters are named as in PyTorch (`features.0.weight`, `classifier.weight`); see
/// effml::Module::named_parameters(). See \ref lab1_pruning "the lecture-companion page" for
/// the ideas behind each task.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/module.h"
#include "effml/tensor.h"

/// \brief Lab 1 (pruning): the functions students implement.
namespace lab1 {

using effml::Tensor;

// ---- Task 1 ------------------------------------------------------------------------------------

/// **Task 1.** Fine-grained magnitude pruning of one tensor, in place.
///
/// With \f$ n \f$ = `weight.numel()` and \f$ z = \mathrm{round}(n \cdot s) \f$ (`std::lround`:
/// halves away from zero), the threshold \f$ t \f$ is the \f$ z \f$-th smallest magnitude
/// \f$ |w| \f$ (Tensor::kthvalue). Every value with \f$ |w| \le t \f$ is set to 0 (so ties with
/// the threshold are pruned too) and the others are kept. With \f$ z = 0 \f$ nothing is pruned.
///
/// \param weight   any shape, float32; modified in place
/// \param sparsity \f$ s \f$ in [0, 1]; throws effml::Error naming the value otherwise (NaN too)
/// \returns the mask: 1 where the value was kept, 0 where it was pruned; the shape of weight
Tensor fine_grained_prune(Tensor& weight, double sparsity);

// ---- Task 2 ------------------------------------------------------------------------------------

/// **Task 2.** Keeps a pruned model pruned while it is fine-tuned.
///
/// An optimizer step moves pruned weights away from zero again (their gradients are not zero),
/// so the masks are re-applied after every step: `effml::TrainHooks::after_step` calls apply().
class FineGrainedPruner {
 public:
  /// Prunes each parameter named in `sparsities` with fine_grained_prune() and keeps its mask.
  /// \param model      the model to prune, in place
  /// \param sparsities parameter name (e.g. `features.0.weight`) -> sparsity in [0, 1]
  /// \throws effml::Error naming a parameter the model does not have
  FineGrainedPruner(effml::Module& model, const std::map<std::string, double>& sparsities);

  /// Multiplies each masked parameter of `model` by its mask (pruned values back to 0).
  /// \throws effml::Error naming a masked parameter `model` lacks or whose shape differs
  void apply(effml::Module& model) const;

  /// Parameter name -> mask, one per entry of the constructor's `sparsities`.
  const std::map<std::string, Tensor>& masks() const { return masks_; }

 private:
  std::map<std::string, Tensor> masks_;
};

// ---- Task 3 ------------------------------------------------------------------------------------

/// One layer's row of a sensitivity scan.
struct SensitivityCurve {
  std::string name;               ///< the parameter pruned, e.g. `features.4.weight`
  std::vector<double> accuracy;   ///< accuracy in [0, 1] at each sparsity of the scan's grid
};

/// **Task 3.** Sensitivity scan: for every prunable parameter of `model` (two or more
/// dimensions), in named_parameters() order, and every sparsity of `sparsities` in order, the
/// accuracy on `data` (effml::evaluate) with that one parameter pruned by fine_grained_prune()
/// and every other parameter as it was. The model's parameters are exactly as before when the
/// function returns.
///
/// \param model      a trained model; evaluated in evaluation mode
/// \param data       images and labels to measure accuracy on
/// \param sparsities the grid, each in [0, 1]
/// \returns one curve per prunable parameter, each with `sparsities.size()` accuracies
std::vector<SensitivityCurve> sensitivity_scan(effml::Module& model, const effml::Dataset& data,
                                               const std::vector<double>& sparsities);

// ---- Task 4 ------------------------------------------------------------------------------------

/// **Task 4.** Chooses a sparsity for each prunable parameter so that the pruned model's size
/// (effml::sparse_model_size_bytes: pruned weights in the bitmask format, everything else dense)
/// is at most `max_size_fraction` of the dense size (effml::model_size_bytes), losing as little
/// accuracy as possible. Use the scan: sensitive layers should be pruned less. Predict a
/// layer's pruned size with effml::bitmask_size_bits(numel, numel - round(numel * s)).
///
/// Graded on the outcome: the grader prunes the dense VGG with your choice (Task 2), fine-tunes
/// it and measures size and accuracy itself.
///
/// \param model             the dense model (not modified)
/// \param scan              sensitivity_scan() of `model` over `sparsities`
/// \param sparsities        the scan's grid
/// \param dense_accuracy    accuracy of the unpruned model on the scan's data
/// \param max_size_fraction size target, in (0, 1]
/// \returns parameter name -> sparsity, for the parameters you prune
std::map<std::string, double> choose_sparsities(effml::Module& model,
                                                const std::vector<SensitivityCurve>& scan,
                                                const std::vector<double>& sparsities,
                                                double dense_accuracy, double max_size_fraction);

// ---- Task 5 ------------------------------------------------------------------------------------

/// **Task 5.** Output channels a convolution keeps after removing a fraction of them:
/// \f$ \max(1, \mathrm{round}(c \cdot (1 - r))) \f$ (`std::lround`: halves away from zero).
///
/// \param channels    \f$ c \f$ >= 1
/// \param prune_ratio \f$ r \f$ in [0, 1)
/// \throws effml::Error naming the value when an argument is out of range
int64_t get_num_channels_to_keep(int64_t channels, double prune_ratio);

// ---- Task 6 ------------------------------------------------------------------------------------

/// **Task 6.** Importance of each input channel of a convolution: the Frobenius norm of the
/// weights that read it, \f$ I_c = \sqrt{\sum_{o,i,j} W_{o,c,i,j}^2} \f$.
///
/// \param weight (Cout, Cin, K, K)
/// \returns (Cin)
Tensor get_input_channel_importance(const Tensor& weight);

// ---- Task 7 ------------------------------------------------------------------------------------

/// **Task 7.** Sorts the channels of a VGG in place so that channel pruning can keep the first
/// ones. For each convolution followed by another (every conv but the last): order its output
/// channels by the importance (Task 6) of the *next* conv's input channels, most important
/// first (ties keep their order: a stable sort), and permute consistently the conv's weight
/// (dimension 0), the batch-norm after it (weight, bias, running mean and running variance)
/// and the next conv's weight (dimension 1). The function the model computes does not change.
///
/// \param model a VGG from effml::make_vgg (features, flatten, classifier)
void apply_channel_sorting(effml::Sequential& model);

// ---- Task 8 ------------------------------------------------------------------------------------

/// **Task 8.** Channel pruning of a VGG: a new, smaller VGG that keeps the first
/// get_num_channels_to_keep(C, prune_ratio) output channels of every conv but the last (the
/// last conv feeds the classifier and keeps all its channels), with the batch-norm after each
/// pruned conv and the input channels of the next conv sliced to match. Other parameters and
/// buffers are copied. Build the result with effml::make_vgg(cfg) and copy the kept slices in.
///
/// \param model       a VGG from effml::make_vgg (not modified)
/// \param prune_ratio in [0, 1)
/// \returns the pruned VGG, parameter names unchanged
std::unique_ptr<effml::Sequential> channel_prune(effml::Sequential& model, double prune_ratio);

}  // namespace lab1
