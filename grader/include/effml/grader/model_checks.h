/// \file model_checks.h
/// \brief What the grader measures on a model a runner returns (model tasks, see manifest.h):
/// per-layer sparsity, stored size, MACs, channel order and widths, and a latency ratio. All of
/// it is trusted core code running in the grader's process on weights loaded from a file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "effml/module.h"

namespace effml::grader {

/// One weight tensor (two or more dimensions) of a measured model.
struct LayerSparsity {
  std::string name;      ///< e.g. "features.4.weight"
  int64_t numel = 0;     ///< values
  int64_t nonzeros = 0;  ///< values not exactly zero
  int64_t distinct = 0;  ///< distinct values (a k-means codebook's size, at most)
  /// Fraction of zeros, in [0, 1].
  double sparsity() const {
    return numel ? 1.0 - static_cast<double>(nonzeros) / static_cast<double>(numel) : 0.0;
  }
};

/// Sizes and counts of a model (no accuracy: that needs the test set).
struct ModelFigures {
  int64_t parameters = 0;          ///< trainable values
  int64_t nonzeros = 0;            ///< trainable values not exactly zero
  double dense_bytes = 0;          ///< effml::model_size_bytes at 32 bits
  double sparse_bytes = 0;         ///< effml::sparse_model_size_bytes at 32 bits
  int64_t macs = 0;                ///< per image (1, 1, 28, 28)
  std::vector<LayerSparsity> layers;  ///< weights of two or more dimensions, in order
};

/// Measures `model` for one 28x28 image.
ModelFigures measure_figures(Module& model);

/// The widths of the VGG stored in `checkpoint`: `baseline_cfg` (see effml::make_vgg) with each
/// conv's channel count read from the shape of its weight (`features.<i>.weight`). The caller
/// then loads the file into make_vgg(result), which checks every other shape.
/// \throws effml::Error naming the tensor when a conv weight is missing or not 4-D
std::vector<int64_t> vgg_widths_from(const std::string& checkpoint,
                                     const std::vector<int64_t>& baseline_cfg);

/// The cfg of `cfg` after channel pruning at `ratio`: every conv but the last keeps
/// max(1, round(C (1 - ratio))) channels (round halves away from zero); pools stay.
std::vector<int64_t> vgg_pruned_config(const std::vector<int64_t>& cfg, double ratio);

/// MACs per 28x28 image of make_vgg(cfg), from the closed form: each conv3x3 (padding 1) at
/// H x W gives Cout * Cin * 9 * H * W, each pool halves H and W (rounding down), and the
/// classifier C * S * S * 10. Independent of the layers' own macs().
int64_t vgg_macs_formula(const std::vector<int64_t>& cfg);

/// "" when, for every conv of a VGG followed by another, the next conv's input-channel
/// importance (Frobenius norm over its output channels and kernel) never increases from one
/// channel to the next; else which layer and channels break the order.
std::string check_channel_order(Sequential& vgg);

/// Batch-1 latency of two models measured in turn, `rounds` times, on one thread: each round
/// times `repeats` forward passes of each (after a few untimed ones) and keeps the median; the
/// result is each model's smallest median, in milliseconds. Interleaving makes a busy spell of
/// the machine hit both.
struct LatencyPair {
  double baseline_ms = 0;  ///< the baseline's smallest median
  double model_ms = 0;     ///< the measured model's smallest median
};
/// See LatencyPair. Restores the core's thread count afterwards.
LatencyPair measure_latency_pair(Module& baseline, Module& model, int rounds = 5,
                                 int repeats = 60);

}  // namespace effml::grader
