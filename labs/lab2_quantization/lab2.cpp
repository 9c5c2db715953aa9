// Lab 2: the functions declared in lab2.h. Each task's body goes between its BEGIN SOLUTION and
// END SOLUTION markers; the contracts (shapes, formulas, rounding, errors to throw) are the doc
// comments in lab2.h. qmin_of, qmax_of, quantize_multiplier and dequantize are given.
//
// Useful pieces of the core: Tensor::min, max, abs, numel, dim, size, has_nonfinite, data(),
// data_i8(), data_i32(), Tensor::zeros(shape, DType::Int8), effml::check_dtype, check_shape;
// std::nearbyint (rounds halves to even in the default rounding mode).

#include "lab2.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "effml/data.h"
#include "effml/error.h"
#include "effml/huffman.h"
#include "effml/layers.h"
#include "effml/models.h"

namespace lab2 {

namespace {

// Throws unless `bits` is a width this lab quantizes to.
void check_bits(int bits, int low, const char* caller) {
  EFFML_CHECK(bits >= low && bits <= 8,
              caller << ": bits must be in [" << low << ", 8], got " << bits);
}

// Throws unless `t` is float32 and every value finite.
[[maybe_unused]] void check_finite(const Tensor& t, const char* what, const char* caller) {
  effml::check_dtype(t, effml::DType::Float32, std::string(caller) + ": " + what);
  EFFML_CHECK(!t.has_nonfinite(), caller << ": " << what << " " << t.shape_str()
                                         << " holds a NaN or an infinity");
}

// Throws unless the per-output requantization parameters fit the contract of Task 5.
[[maybe_unused]] void check_requantization(const Tensor& multiplier, const Tensor& shift,
                                           int64_t outputs, int32_t x_zero_point,
                                           int32_t y_zero_point, const char* caller) {
  effml::check_dtype(multiplier, effml::DType::Int32, std::string(caller) + ": multiplier");
  effml::check_dtype(shift, effml::DType::Int32, std::string(caller) + ": shift");
  effml::check_shape(multiplier, {outputs}, std::string(caller) + ": multiplier");
  effml::check_shape(shift, {outputs}, std::string(caller) + ": shift");
  for (int64_t o = 0; o < outputs; ++o) {
    EFFML_CHECK(multiplier.data_i32()[o] >= 0,
                caller << ": multiplier[" << o << "] must be >= 0, got " << multiplier.data_i32()[o]);
    EFFML_CHECK(shift.data_i32()[o] >= 0 && shift.data_i32()[o] <= 31,
                caller << ": shift[" << o << "] must be in [0, 31], got " << shift.data_i32()[o]);
  }
  EFFML_CHECK(x_zero_point >= -128 && x_zero_point <= 127,
              caller << ": x_zero_point must be in [-128, 127], got " << x_zero_point);
  EFFML_CHECK(y_zero_point >= -128 && y_zero_point <= 127,
              caller << ": y_zero_point must be in [-128, 127], got " << y_zero_point);
}

// Throws unless `codebook` holds a float32 vector of at least one centroid and int32 labels,
// each in [0, k).
void check_codebook(const Codebook& codebook, const char* caller) {
  const Tensor& centroids = codebook.centroids;
  effml::check_dtype(centroids, effml::DType::Float32, std::string(caller) + ": centroids");
  EFFML_CHECK(centroids.dim() == 1 && centroids.numel() >= 1,
              caller << ": expected centroids (k) with k >= 1, got " << centroids.shape_str());
  effml::check_dtype(codebook.labels, effml::DType::Int32, std::string(caller) + ": labels");
  const int64_t k = centroids.numel();
  const int32_t* labels = codebook.labels.data_i32();
  for (int64_t i = 0; i < codebook.labels.numel(); ++i) {
    EFFML_CHECK(labels[i] >= 0 && labels[i] < k,
                caller << ": labels[" << i << "] = " << labels[i] << " is outside [0, " << k
                       << ")");
  }
}

}  // namespace

int32_t qmin_of(int bits) {
  check_bits(bits, 1, "qmin_of");
  return -(int32_t{1} << (bits - 1));
}

int32_t qmax_of(int bits) {
  check_bits(bits, 1, "qmax_of");
  return (int32_t{1} << (bits - 1)) - 1;
}

// ---- Task 1 ------------------------------------------------------------------------------------

/// q = clamp(round(r / S) + Z, qmin, qmax), into int8.
Tensor linear_quantize(const Tensor& r, int bits, float scale, int32_t zero_point) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 1: linear_quantize");
  // END SOLUTION
}

// ---- Task 2 ------------------------------------------------------------------------------------

/// S = (rmax - rmin) / (qmax - qmin), Z = clamp(round(qmin - rmin / S)), in double.
QuantParams get_quantization_scale_and_zero_point(const Tensor& r, int bits) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 2: get_quantization_scale_and_zero_point");
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// S_c = max|w_c| / qmax (1 for a channel of zeros); q_c = linear_quantize(w_c, bits, S_c, 0).
PerChannelQuantized linear_quantize_weight_per_channel(const Tensor& w, int bits) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 3: linear_quantize_weight_per_channel");
  // END SOLUTION
}

// ---- Task 4 ------------------------------------------------------------------------------------

/// q_b = round(b / (S_w * S_x)) in float32, saturated to int32.
Tensor quantize_bias(const Tensor& bias, const Tensor& weight_scales, float input_scale) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 4: quantize_bias");
  // END SOLUTION
}

// ---- Task 5 ------------------------------------------------------------------------------------

QuantizedMultiplier quantize_multiplier(double real_multiplier) {
  EFFML_CHECK(real_multiplier >= 0.0 && real_multiplier < 1.0,
              "quantize_multiplier: the real multiplier must be in [0, 1), got " << real_multiplier);
  if (real_multiplier == 0.0) return {0, 0};
  int exponent = 0;
  const double fraction = std::frexp(real_multiplier, &exponent);  // in [0.5, 1)
  int64_t m0 = std::llround(fraction * 2147483648.0);               // in [2^30, 2^31]
  int shift = -exponent;
  if (m0 == (int64_t{1} << 31)) {
    m0 /= 2;
    --shift;
  }
  if (shift < 0) return {std::numeric_limits<int32_t>::max(), 0};
  if (shift > 31) return {0, 0};
  return {static_cast<int32_t>(m0), shift};
}

/// Saturating rounding doubling high multiply (halves up), then a rounding right shift (halves
/// away from zero).
int32_t multiply_by_quantized_multiplier(int32_t acc, int32_t multiplier, int32_t shift) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 5: multiply_by_quantized_multiplier");
  // END SOLUTION
}

/// int32 accumulation of (x - Zx) w + b, requantized per output, clamped to int8.
Tensor quantized_linear(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 5: quantized_linear");
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// Convolution over the input padded with Zx, int32 accumulation, requantized per output channel.
Tensor quantized_conv2d(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift, int64_t stride, int64_t padding) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 6: quantized_conv2d");
  // END SOLUTION
}

// ---- Tasks 7 to 9: k-means quantization -------------------------------------------------------

Tensor dequantize(const Codebook& codebook) {
  check_codebook(codebook, "dequantize");
  Tensor w_hat = Tensor::zeros(codebook.labels.shape());
  const float* centroids = codebook.centroids.data();
  const int32_t* labels = codebook.labels.data_i32();
  for (int64_t i = 0; i < w_hat.numel(); ++i) w_hat[i] = centroids[labels[i]];
  return w_hat;
}

/// Linear initialisation between min(w) and max(w); then Lloyd's iterations (nearest centroid,
/// ties to the lower index; centroid = mean of its cluster) until no label changes, at most 50
/// updates.
Codebook k_means_quantize(const Tensor& w, int bits) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 7: k_means_quantize");
  // END SOLUTION
}

/// Centroid = mean of the values labelled with it (double, index order); empty clusters keep
/// theirs.
void update_codebook(const Tensor& w, Codebook& codebook) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 8: update_codebook");
  // END SOLUTION
}

/// c_j -= lr * (sum of the gradients of the values labelled j), summed in double.
void codebook_gradient_step(Codebook& codebook, const Tensor& grad, float lr) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 9: codebook_gradient_step");
  // END SOLUTION
}

// ---- Part 2 ------------------------------------------------------------------------------------

/// w'_c = w_c * s_c and b'_c = beta_c - mean_c * s_c with s_c = gamma_c / sqrt(var_c + eps).
FoldedConv fold_conv_bn(const Tensor& conv_weight, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var, float eps) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 10: fold_conv_bn");
  // END SOLUTION
}

/// The range of each conv block's ReLU output, then the logits', over all images (eval mode).
std::vector<ActivationRange> calibrate_activation_ranges(effml::Sequential& vgg,
                                                         const Tensor& images,
                                                         int64_t batch_size) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 11: calibrate_activation_ranges");
  // END SOLUTION
}

/// S = 1 / (255 std), Z = round(255 mean - 128), in double.
QuantParams input_quant_params(float mean, float std) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 12: input_quant_params");
  // END SOLUTION
}

/// Folds, quantizes and wires each layer as lab2.h's steps 1 to 6 say.
effml::QuantizedVgg quantize_vgg(effml::Sequential& vgg, const std::vector<ActivationRange>& ranges) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 12: quantize_vgg");
  // END SOLUTION
}

// ---- Part 3 ------------------------------------------------------------------------------------

/// S (linear_quantize(r) - Z), in float32.
Tensor fake_quantize(const Tensor& r, int bits, float scale, int32_t zero_point) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 13: fake_quantize");
  // END SOLUTION
}

/// grad where qmin <= round(r / S) + Z <= qmax, else 0.
Tensor fake_quantize_grad(const Tensor& grad, const Tensor& r, int bits, float scale,
                          int32_t zero_point) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 13: fake_quantize_grad");
  // END SOLUTION
}

/// Task 3, then each channel dequantized with its scale.
Tensor fake_quantize_weight_per_channel(const Tensor& w, int bits) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 14: fake_quantize_weight_per_channel");
  // END SOLUTION
}

// ---- Part 4 ------------------------------------------------------------------------------------

/// Fillers (G - 1, k) while a gap does not fit, then (gap, label), for each kept position.
RelativeIndices relative_indices(const Tensor& labels, int32_t k, int gap_bits) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 15: relative_indices");
  // END SOLUTION
}

/// Two-queue Huffman: leaves by (count, index); the smaller front each time, leaves on ties.
std::vector<uint8_t> huffman_code_lengths(const std::vector<int64_t>& counts) {
  // BEGIN SOLUTION
  throw effml::NotImplemented("Task 16: huffman_code_lengths");
  // END SOLUTION
}

}  // namespace lab2
