/// \file metrics.h
/// \brief What the labs measure: parameters, non-zeros, size at a bit-width, MACs, latency.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "effml/module.h"

namespace effml {

/// One leaf layer of a model, as `effml info` prints it.
struct LayerInfo {
  std::string name;         ///< dotted module name, e.g. "features.0"
  std::string description;  ///< e.g. "Conv2d(1, 16, kernel_size=3, stride=1, padding=1)"
  Shape input_shape;        ///< with the batch dimension
  Shape output_shape;       ///< with the batch dimension
  int64_t parameters = 0;   ///< trainable values of this layer
  int64_t nonzeros = 0;     ///< trainable values that are not exactly zero
  int64_t macs = 0;         ///< multiply-accumulates of one forward pass of input_shape
  /// Fraction of zero parameters (0 when the layer has none).
  double sparsity() const {
    return parameters ? 1.0 - static_cast<double>(nonzeros) / static_cast<double>(parameters) : 0.0;
  }
};

/// Every leaf layer of `model` (Sequentials are walked, not listed) for an input of `input_shape`.
std::vector<LayerInfo> profile_layers(Module& model, const Shape& input_shape);

/// Number of trainable values.
int64_t count_parameters(Module& model);
/// Number of trainable values that are not exactly zero.
int64_t count_nonzeros(Module& model);
/// Multiply-accumulates of one forward pass of `input_shape` (batch included).
int64_t count_macs(Module& model, const Shape& input_shape);
/// Dense storage of the parameters at `bits` bits each, in bytes: parameters * bits / 8.
double model_size_bytes(Module& model, int bits = 32);
/// Storage if only non-zeros were kept at `bits` bits each (no index cost: a lower bound on
/// what a sparse format stores): nonzeros * bits / 8.
double nonzero_size_bytes(Module& model, int bits = 32);

/// Bits a tensor of `numel` values with `nonzeros` non-zero ones takes in the bitmask sparse
/// format: one bit per position (is it stored?) plus `bits` per non-zero value, or the dense
/// `numel * bits` when that is smaller (a real store keeps whichever is smaller):
/// \f$ \min(n b,\; n + z b) \f$. Throws unless 0 <= nonzeros <= numel and bits in [1, 64].
double bitmask_size_bits(int64_t numel, int64_t nonzeros, int bits = 32);

/// Storage of `model`'s parameters with every weight of two or more dimensions (convolution and
/// linear weights) in the bitmask format of bitmask_size_bits() and every other parameter
/// (biases, batch-norm scales and shifts) dense, at `bits` bits per value, in bytes. This is
/// what the pruning lab's grader reports as a pruned model's size; compare it with
/// model_size_bytes() of the dense model.
double sparse_model_size_bytes(Module& model, int bits = 32);

/// Latency statistics in milliseconds (p90: the sorted time at index floor(0.9 * repeats)).
struct LatencyStats {
  ///@{
  double median_ms = 0, min_ms = 0, p90_ms = 0;  ///< median, fastest and 90th-percentile run
  ///@}
  int repeats = 0;  ///< number of timed runs
};

/// Runs `fn` `warmup` times untimed, then `repeats` times timed (steady clock); the median is the
/// figure to report, since it ignores the occasional pre-emption that skews a mean. Throws
/// effml::Error unless repeats > 0 and warmup >= 0.
LatencyStats measure_latency(const std::function<void()>& fn, int warmup = 10, int repeats = 50);

/// Top-1 accuracy of (N, C) logits against labels, in [0, 1].
double accuracy(const Tensor& logits, const std::vector<int32_t>& labels);

/// "266,610" (thousands separators) for tables.
std::string with_commas(int64_t n);

}  // namespace effml
