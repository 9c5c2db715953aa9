/// \file quantized.h
/// \brief The integer-only VGG: the file format of a quantized make_vgg(cfg) and the trusted
/// int8 inference that the grader and the benchmarks run on it.
///
/// A quantized VGG is the fp32 VGG with each conv's batch norm folded into it (a conv with a
/// bias), every weight int8 with one scale per output channel, every bias int32, and every
/// activation int8 with one scale and zero point per tensor:
///
/// | step       | integer operation (per image)                                                 |
/// |------------|-------------------------------------------------------------------------------|
/// | input      | \f$ q = p - 128 \f$ for each pixel \f$ p \in [0, 255] \f$ (pixels_to_int8())   |
/// | conv3x3    | \f$ a = q_b[o] + \sum (x - Z_x)\,w \f$ in int32 (padding 1, holding \f$ Z_x \f$) |
/// | requantize | \f$ y = \mathrm{clamp}(\mathrm{mbqm}(a, M_0[o], n[o]) + Z_y, -128, 127) \f$       |
/// | max-pool   | 2x2 maximum of int8 values (same scale and zero point in and out)             |
/// | classifier | the same arithmetic as a conv, on the flattened int8 map; int8 logits         |
///
/// mbqm is the fixed-point multiply of TFLite (gemmlowp's saturating rounding doubling high
/// multiply, then a rounding right shift): Lab 2's Task 5. There is **no ReLU**: a block's
/// output scale and zero point come from the range of its ReLU's output, which starts at 0, so
/// \f$ Z_y = -128 \f$ and the clamp at -128 is the ReLU. The arithmetic is that of Lab 2's
/// quantized_conv2d() and quantized_linear(); this is the grader's own copy, so that a student's
/// model is measured by code the student did not write.
///
/// **File format**: a safetensors file (see safetensors.h) holding
///
/// | tensor                        | dtype | shape           | meaning                         |
/// |-------------------------------|-------|-----------------|---------------------------------|
/// | `cfg`                         | I32   | (L)             | make_vgg()'s cfg, 0 for a pool  |
/// | `<layer>.weight`              | I8    | (O, C, 3, 3) or (10, I) | \f$ q_w \f$, zero point 0 |
/// | `<layer>.bias`                | I32   | (O)             | \f$ q_b \f$, scale \f$ S_x S_w[o] \f$ |
/// | `<layer>.multiplier`          | I32   | (O)             | \f$ M_0 \f$, in \f$ [2^{30}, 2^{31}) \f$ or 0 |
/// | `<layer>.shift`               | I32   | (O)             | \f$ n \f$, in [0, 31]           |
/// | `<layer>.input_zero_point`    | I32   | ()              | \f$ Z_x \f$, in [-128, 127]     |
/// | `<layer>.output_zero_point`   | I32   | ()              | \f$ Z_y \f$, in [-128, 127]     |
/// | `<layer>.weight_scale`        | F32   | (O)             | \f$ S_w[o] \f$ (reporting only) |
/// | `<layer>.input_scale`         | F32   | ()              | \f$ S_x \f$ (reporting only)    |
/// | `<layer>.output_scale`        | F32   | ()              | \f$ S_y \f$ (dequantizes logits) |
///
/// `<layer>` is `features.<i>` for the conv blocks, with \f$ i \f$ the index of the conv in the
/// fp32 VGG's `features` (so Lab 1's names still apply), and `classifier`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "effml/tensor.h"

namespace effml {

/// One integer-only layer: a folded conv3x3 (stride 1, padding 1) or the linear classifier.
struct QuantizedLayer {
  std::string name;           ///< "features.<i>" or "classifier"
  Tensor weight;              ///< int8, (O, C, 3, 3) for a conv, (O, I) for the classifier
  Tensor bias;                ///< int32 (O), in the accumulator's scale \f$ S_x S_w[o] \f$
  Tensor multiplier;          ///< int32 (O), \f$ M_0 \f$ of \f$ S_x S_w[o] / S_y \f$
  Tensor shift;               ///< int32 (O), \f$ n \f$ >= 0
  int32_t input_zero_point = 0;   ///< \f$ Z_x \f$
  int32_t output_zero_point = 0;  ///< \f$ Z_y \f$
  Tensor weight_scale;        ///< float32 (O): \f$ S_w[o] \f$; not used by the integer pass
  float input_scale = 1.0f;   ///< \f$ S_x \f$; not used by the integer pass
  float output_scale = 1.0f;  ///< \f$ S_y \f$; not used by the integer pass
};

/// The int8 convolution kernel that QuantizedVgg::forward() runs. Both compute the same int32
/// sums exactly, so the outputs are identical; only the speed differs.
enum class Int8Kernel {
  /// The VNNI kernel (AVX-512 `vpdpbusd`: four unsigned-by-signed byte products summed into each
  /// int32 lane) when this build targets a CPU that has it (see int8_vnni_available()), else
  /// Portable.
  Best,
  /// Plain C++: patches widened to int16, products in int32. Any CPU.
  Portable,
};

/// Whether this build has the VNNI kernel (compiled with AVX-512 VNNI and BW, as
/// `-march=native` does on a CPU that has them).
bool int8_vnni_available();

namespace detail {
struct Int8Packs;  // the convolutions' weights as a kernel reads them (quantized.cpp)

/// QuantizedVgg::forward()'s packed weights, kept between calls with a copy of what they were
/// packed from (internal). Packing costs about a third of a batch-1 call; a call whose weights
/// and zero points are unchanged reuses the packs after one comparison. A copy starts empty.
struct Int8PackCache {
  Int8PackCache() = default;
  Int8PackCache(const Int8PackCache&) {}
  Int8PackCache& operator=(const Int8PackCache&) {
    std::lock_guard<std::mutex> lock(mutex);
    packs.reset();
    return *this;
  }
  std::mutex mutex;                         ///< forward() may run in several threads at once
  std::shared_ptr<const Int8Packs> packs;  ///< null until the first forward()
};
}  // namespace detail

/// A VGG of make_vgg(cfg) quantized for integer-only inference (see the file's description).
struct QuantizedVgg {
  std::vector<int64_t> cfg;           ///< output channels of each conv block, 0 for a pool
  std::vector<QuantizedLayer> convs;  ///< one per non-zero entry of cfg, in order
  QuantizedLayer classifier;          ///< (10, C * S * S)

  /// Checks every shape, dtype and range against cfg and each other.
  /// \throws effml::Error naming the layer, tensor, shape or value that is wrong
  void validate() const;

  /// Integer-only forward pass: int8 images (N, 1, 28, 28) as pixels_to_int8() makes them to
  /// int8 logits (N, 10). No floating point. Parallel over images (OpenMP).
  /// `kernel` picks the convolution kernel (tests and benchmarks compare them).
  /// \throws effml::Error naming the shape or dtype of a wrong input
  Tensor forward(const Tensor& x_q, Int8Kernel kernel = Int8Kernel::Best) const;

  /// Bytes of the integer model's parameters as stored for inference: int8 weights, and
  /// int32 biases, multipliers and shifts (8 bits of shift counted as 32 for simplicity), zero
  /// points as int32.
  int64_t parameter_bytes() const;

  /// forward()'s packed weights (internal; repacked whenever the weights or zero points change).
  mutable detail::Int8PackCache pack_cache;
};

/// The integer input of a quantized VGG: each pixel \f$ p = \mathrm{round}(255 v) \f$ of an
/// image scaled to [0, 1] (load_fashion_mnist() with `normalize` false) becomes
/// \f$ p - 128 \f$. This is the only step that reads a float, and it is exact: \f$ p \f$ is an
/// integer stored exactly by \f$ v = p / 255 \f$.
/// \param images01 float32 (N, 1, 28, 28), every value in [0, 1]
/// \returns int8 (N, 1, 28, 28)
/// \throws effml::Error naming the value or shape otherwise
Tensor pixels_to_int8(const Tensor& images01);

/// TFLite's MultiplyByQuantizedMultiplier: \f$ a \cdot M_0 2^{-31} 2^{-n} \f$, rounded (see
/// Lab 2's Task 5 for the two rounding steps). `multiplier` >= 0, `shift` in [0, 31].
int32_t requantize(int32_t acc, int32_t multiplier, int32_t shift);

/// The tensors of the file format above, named as there, in order (`cfg` first). Exact tasks
/// compare these, and save_quantized_vgg() writes them.
std::vector<std::pair<std::string, Tensor>> quantized_vgg_tensors(const QuantizedVgg& model);

/// Writes `model` (validated first) to `path` in the format above, with `metadata`.
void save_quantized_vgg(const std::string& path, const QuantizedVgg& model,
                        const std::map<std::string, std::string>& metadata = {});

/// Reads and validates a quantized VGG.
/// \throws effml::Error naming the file and the missing or wrong tensor
QuantizedVgg load_quantized_vgg(const std::string& path);

/// Test accuracy of the integer-only model on images scaled to [0, 1]: argmax of the int8
/// logits, ties to the lowest class (the logits of two classes can quantize to the same
/// integer).
/// \param model    a validated integer-only VGG
/// \param images01 float32 (N, 1, 28, 28) in [0, 1]
/// \param labels   N labels in [0, 9]
double quantized_accuracy(const QuantizedVgg& model, const Tensor& images01,
                          const std::vector<int32_t>& labels);

/// Post-training linear quantization of a weight, simulated in float: each output channel
/// \f$ c \f$ (index of dimension 0) gets \f$ S_c = \max |w_c| / q_{max} \f$ (1 for a channel of
/// zeros) and becomes \f$ S_c\, \mathrm{clamp}(\mathrm{round}(w_c / S_c), q_{min}, q_{max}) \f$,
/// symmetric, \f$ q_{max} = 2^{b-1} - 1 \f$ (Lab 2's Task 3 followed by dequantization). The
/// grader's baseline for quantization-aware training.
/// \param w    float32 with at least 2 dimensions
/// \param bits in [2, 8]
Tensor fake_quantize_per_channel(const Tensor& w, int bits);

/// The largest number of distinct values in one output channel (index of dimension 0) of `w`:
/// at most \f$ 2^b \f$ for a weight quantized to \f$ b \f$ bits per channel.
int64_t max_levels_per_channel(const Tensor& w);

}  // namespace effml
