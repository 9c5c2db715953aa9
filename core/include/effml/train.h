/// \file train.h
/// \brief The training loop and evaluation shared by `effml train` and every lab.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/module.h"

namespace effml {

/// Hyper-parameters of a training run. Defaults train LeNet-300-100 well in 10 epochs.
struct TrainConfig {
  int epochs = 10;                 ///< passes over the training set (>= 0)
  int64_t batch_size = 64;         ///< samples per optimizer step (> 0; the last may have fewer)
  std::string optimizer = "sgd";   ///< "sgd" (with momentum) or "adam"
  float lr = 0.05f;                ///< initial learning rate
  float momentum = 0.9f;           ///< SGD only
  float weight_decay = 5e-4f;      ///< L2 penalty added to the gradient
  std::string schedule = "cosine"; ///< "cosine", "step" (x0.1 every third of the run) or "constant"
  uint64_t seed = 0;               ///< shuffling (and dropout) seed
  bool progress = true;            ///< draw a progress bar on stderr
  /// Knowledge distillation: with a teacher and distill_alpha > 0 the loss whose gradient
  /// trains the model is \f$ (1 - \alpha) \f$ cross-entropy + \f$ \alpha \f$
  /// distillation_loss() against the teacher's logits (the teacher runs in evaluation mode and
  /// is not trained; it must outlive the call). The teacher's logits for every training sample
  /// are computed once, before the first epoch, and reused in every epoch. The reported loss
  /// stays the cross-entropy.
  Module* teacher = nullptr;
  float distill_alpha = 0.0f;        ///< \f$ \alpha \f$ in [0, 1]
  float distill_temperature = 4.0f;  ///< \f$ T \f$ > 0
};

/// Metrics of one epoch.
struct EpochStats {
  int epoch = 0;              ///< 1-based
  float lr = 0;               ///< learning rate used in this epoch
  double train_loss = 0;      ///< mean cross-entropy per sample over the epoch
  double train_accuracy = 0;  ///< in [0, 1], on the fly (training mode)
  double test_loss = 0;       ///< after the epoch, evaluation mode (0 without a test set)
  double test_accuracy = 0;   ///< in [0, 1], after the epoch (0 without a test set)
  double seconds = 0;         ///< wall time of the training part of the epoch
};

/// Loss and accuracy over a dataset.
struct EvalResult {
  double loss = 0;      ///< mean cross-entropy per sample (0 for an empty dataset)
  double accuracy = 0;  ///< in [0, 1]
  int64_t count = 0;    ///< number of samples evaluated
};

/// Callbacks into the loop: the pruning lab re-applies its masks after every optimizer step.
struct TrainHooks {
  std::function<void()> after_step;                   ///< after each optimizer step
  std::function<void(const EpochStats&)> after_epoch; ///< after each epoch's evaluation
};

/// Evaluates `model` in evaluation mode (restoring its mode afterwards).
EvalResult evaluate(Module& model, const Dataset& data, int64_t batch_size = 256);

/// Trains `model` on `train` for config.epochs, evaluating on `test` after each epoch when given.
/// Deterministic for a given model initialisation, seed and thread count.
std::vector<EpochStats> train(Module& model, const Dataset& train, const Dataset* test,
                              const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace effml
