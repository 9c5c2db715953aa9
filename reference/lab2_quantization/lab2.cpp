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
  check_bits(bits, 1, "linear_quantize");
  EFFML_CHECK(std::isfinite(scale) && scale > 0.0f,
              "linear_quantize: scale must be > 0 and finite, got " << scale);
  check_finite(r, "r", "linear_quantize");
  const int64_t qmin = qmin_of(bits), qmax = qmax_of(bits);
  Tensor q = Tensor::zeros(r.shape(), effml::DType::Int8);
  const float* in = r.data();
  int8_t* out = q.data_i8();
  for (int64_t k = 0; k < r.numel(); ++k) {
    // The quotient may be far outside int64 for a tiny scale: clamp while still in float.
    const double rounded = std::nearbyint(in[k] / scale);
    const double shifted = std::clamp(rounded, -4.0e9, 4.0e9) + static_cast<double>(zero_point);
    out[k] = static_cast<int8_t>(std::clamp(static_cast<int64_t>(shifted), qmin, qmax));
  }
  return q;
  // END SOLUTION
}

// ---- Task 2 ------------------------------------------------------------------------------------

/// S = (rmax - rmin) / (qmax - qmin), Z = clamp(round(qmin - rmin / S)), in double.
QuantParams get_quantization_scale_and_zero_point(const Tensor& r, int bits) {
  // BEGIN SOLUTION
  check_bits(bits, 1, "get_quantization_scale_and_zero_point");
  check_finite(r, "r", "get_quantization_scale_and_zero_point");
  EFFML_CHECK(r.numel() > 0, "get_quantization_scale_and_zero_point: r " << r.shape_str()
                                                                           << " is empty");
  const double qmin = qmin_of(bits), qmax = qmax_of(bits);
  double rmin = r.min(), rmax = r.max();
  if (rmin == rmax) {
    if (rmin == 0.0) return {1.0f, 0};
    rmin = std::min(rmin, 0.0);
    rmax = std::max(rmax, 0.0);
  }
  const double scale = (rmax - rmin) / (qmax - qmin);
  const double zero_point = std::clamp(std::nearbyint(qmin - rmin / scale), qmin, qmax);
  return {static_cast<float>(scale), static_cast<int32_t>(zero_point)};
  // END SOLUTION
}

// ---- Task 3 ------------------------------------------------------------------------------------

/// S_c = max|w_c| / qmax (1 for a channel of zeros); q_c = linear_quantize(w_c, bits, S_c, 0).
PerChannelQuantized linear_quantize_weight_per_channel(const Tensor& w, int bits) {
  // BEGIN SOLUTION
  check_bits(bits, 2, "linear_quantize_weight_per_channel");
  EFFML_CHECK(w.dim() >= 2, "linear_quantize_weight_per_channel: expected a weight (Cout, ...) "
                            "of at least 2 dimensions, got " << w.shape_str());
  check_finite(w, "w", "linear_quantize_weight_per_channel");
  const int64_t channels = w.size(0);
  const int64_t per_channel = channels == 0 ? 0 : w.numel() / channels;
  const float qmax = static_cast<float>(qmax_of(bits));
  PerChannelQuantized out{Tensor::zeros(w.shape(), effml::DType::Int8),
                          Tensor::zeros({channels}, effml::DType::Float32)};
  for (int64_t c = 0; c < channels; ++c) {
    const Tensor channel = w.narrow(c, 1);
    const float max_abs = per_channel == 0 ? 0.0f : channel.abs().max();
    const float scale = max_abs == 0.0f ? 1.0f : max_abs / qmax;
    out.scales[c] = scale;
    const Tensor q = linear_quantize(channel, bits, scale, 0);
    std::copy(q.data_i8(), q.data_i8() + per_channel, out.q.data_i8() + c * per_channel);
  }
  return out;
  // END SOLUTION
}

// ---- Task 4 ------------------------------------------------------------------------------------

/// q_b = round(b / (S_w * S_x)) in float32, saturated to int32.
Tensor quantize_bias(const Tensor& bias, const Tensor& weight_scales, float input_scale) {
  // BEGIN SOLUTION
  check_finite(bias, "bias", "quantize_bias");
  check_finite(weight_scales, "weight_scales", "quantize_bias");
  EFFML_CHECK(bias.dim() == 1 && weight_scales.shape() == bias.shape(),
              "quantize_bias: expected bias (Cout) and weight_scales (Cout), got bias "
                  << bias.shape_str() << " and weight_scales " << weight_scales.shape_str());
  EFFML_CHECK(std::isfinite(input_scale) && input_scale > 0.0f,
              "quantize_bias: input_scale must be > 0 and finite, got " << input_scale);
  Tensor q = Tensor::zeros(bias.shape(), effml::DType::Int32);
  for (int64_t c = 0; c < bias.numel(); ++c) {
    EFFML_CHECK(weight_scales[c] > 0.0f, "quantize_bias: weight_scales[" << c
                                             << "] must be > 0, got " << weight_scales[c]);
    const float v = std::nearbyint(bias[c] / (weight_scales[c] * input_scale));
    const double limit_low = std::numeric_limits<int32_t>::min();
    const double limit_high = std::numeric_limits<int32_t>::max();
    q.data_i32()[c] = static_cast<int32_t>(std::clamp(static_cast<double>(v), limit_low, limit_high));
  }
  return q;
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
  EFFML_CHECK(multiplier >= 0, "multiply_by_quantized_multiplier: multiplier must be >= 0, got "
                                   << multiplier);
  EFFML_CHECK(shift >= 0 && shift <= 31,
              "multiply_by_quantized_multiplier: shift must be in [0, 31], got " << shift);
  const int64_t product = static_cast<int64_t>(acc) * multiplier;
  const int64_t nudge = product >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
  const int64_t high = (product + nudge) / (int64_t{1} << 31);  // truncates toward zero
  const int64_t mask = (int64_t{1} << shift) - 1;
  const int64_t remainder = high & mask;
  const int64_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return static_cast<int32_t>((high >> shift) + (remainder > threshold ? 1 : 0));
  // END SOLUTION
}

/// int32 accumulation of (x - Zx) w + b, requantized per output, clamped to int8.
Tensor quantized_linear(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift) {
  // BEGIN SOLUTION
  effml::check_dtype(x_q, effml::DType::Int8, "quantized_linear: x_q");
  effml::check_dtype(w_q, effml::DType::Int8, "quantized_linear: w_q");
  effml::check_dtype(bias_q, effml::DType::Int32, "quantized_linear: bias_q");
  EFFML_CHECK(x_q.dim() == 2 && w_q.dim() == 2 && x_q.size(1) == w_q.size(1),
              "quantized_linear: expected x_q (N, I) and w_q (O, I), got x_q "
                  << x_q.shape_str() << " and w_q " << w_q.shape_str());
  const int64_t n = x_q.size(0), inputs = x_q.size(1), outputs = w_q.size(0);
  effml::check_shape(bias_q, {outputs}, "quantized_linear: bias_q");
  check_requantization(multiplier, shift, outputs, x_zero_point, y_zero_point, "quantized_linear");
  Tensor y = Tensor::zeros({n, outputs}, effml::DType::Int8);
  const int8_t* x = x_q.data_i8();
  const int8_t* w = w_q.data_i8();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < outputs; ++o) {
      int32_t acc = bias_q.data_i32()[o];
      for (int64_t j = 0; j < inputs; ++j) {
        acc += (static_cast<int32_t>(x[i * inputs + j]) - x_zero_point) * w[o * inputs + j];
      }
      const int64_t v = int64_t{multiply_by_quantized_multiplier(acc, multiplier.data_i32()[o],
                                                                 shift.data_i32()[o])} +
                        y_zero_point;
      y.data_i8()[i * outputs + o] = static_cast<int8_t>(std::clamp<int64_t>(v, -128, 127));
    }
  }
  return y;
  // END SOLUTION
}

// ---- Task 6 ------------------------------------------------------------------------------------

/// Convolution over the input padded with Zx, int32 accumulation, requantized per output channel.
Tensor quantized_conv2d(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift, int64_t stride, int64_t padding) {
  // BEGIN SOLUTION
  effml::check_dtype(x_q, effml::DType::Int8, "quantized_conv2d: x_q");
  effml::check_dtype(w_q, effml::DType::Int8, "quantized_conv2d: w_q");
  effml::check_dtype(bias_q, effml::DType::Int32, "quantized_conv2d: bias_q");
  EFFML_CHECK(x_q.dim() == 4 && w_q.dim() == 4 && x_q.size(1) == w_q.size(1),
              "quantized_conv2d: expected x_q (N, C, H, W) and w_q (Cout, C, Kh, Kw), got x_q "
                  << x_q.shape_str() << " and w_q " << w_q.shape_str());
  EFFML_CHECK(stride >= 1, "quantized_conv2d: stride must be >= 1, got " << stride);
  EFFML_CHECK(padding >= 0, "quantized_conv2d: padding must be >= 0, got " << padding);
  const int64_t n = x_q.size(0), channels = x_q.size(1), height = x_q.size(2), width = x_q.size(3);
  const int64_t outputs = w_q.size(0), kh = w_q.size(2), kw = w_q.size(3);
  EFFML_CHECK(height + 2 * padding >= kh && width + 2 * padding >= kw,
              "quantized_conv2d: kernel " << kh << "x" << kw << " larger than the padded input "
                                          << x_q.shape_str() << " with padding " << padding);
  const int64_t out_h = (height + 2 * padding - kh) / stride + 1;
  const int64_t out_w = (width + 2 * padding - kw) / stride + 1;
  effml::check_shape(bias_q, {outputs}, "quantized_conv2d: bias_q");
  check_requantization(multiplier, shift, outputs, x_zero_point, y_zero_point, "quantized_conv2d");
  Tensor y = Tensor::zeros({n, outputs, out_h, out_w}, effml::DType::Int8);
  const int8_t* x = x_q.data_i8();
  const int8_t* w = w_q.data_i8();
  int8_t* out = y.data_i8();
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t o = 0; o < outputs; ++o) {
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          int32_t acc = bias_q.data_i32()[o];
          for (int64_t c = 0; c < channels; ++c) {
            for (int64_t i = 0; i < kh; ++i) {
              const int64_t h = oh * stride + i - padding;
              if (h < 0 || h >= height) continue;  // padded: x - Zx = 0
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t v = ow * stride + j - padding;
                if (v < 0 || v >= width) continue;
                const int32_t xv = x[((b * channels + c) * height + h) * width + v];
                acc += (xv - x_zero_point) * w[((o * channels + c) * kh + i) * kw + j];
              }
            }
          }
          const int64_t r = int64_t{multiply_by_quantized_multiplier(
                                acc, multiplier.data_i32()[o], shift.data_i32()[o])} +
                            y_zero_point;
          out[((b * outputs + o) * out_h + oh) * out_w + ow] =
              static_cast<int8_t>(std::clamp<int64_t>(r, -128, 127));
        }
      }
    }
  }
  return y;
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
  check_bits(bits, 1, "k_means_quantize");
  check_finite(w, "w", "k_means_quantize");
  EFFML_CHECK(w.numel() > 0, "k_means_quantize: w " << w.shape_str() << " is empty");
  const int64_t k = int64_t{1} << bits;
  const double low = w.min(), high = w.max();
  Codebook codebook{Tensor::zeros({k}), Tensor::zeros(w.shape(), effml::DType::Int32)};
  float* centroids = codebook.centroids.data();
  for (int64_t j = 0; j < k; ++j) {
    centroids[j] = static_cast<float>(low + static_cast<double>(j) * (high - low) /
                                                static_cast<double>(k - 1));
  }
  const float* values = w.data();
  int32_t* labels = codebook.labels.data_i32();
  // Every value to its nearest centroid, ties to the lower index; true when a label changed.
  const auto assign = [&] {
    bool changed = false;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double v = values[i];
      int32_t best = 0;
      double best_distance = std::fabs(v - centroids[0]);
      for (int64_t j = 1; j < k; ++j) {
        const double distance = std::fabs(v - centroids[j]);
        if (distance < best_distance) {
          best = static_cast<int32_t>(j);
          best_distance = distance;
        }
      }
      changed = changed || labels[i] != best;
      labels[i] = best;
    }
    return changed;
  };
  assign();
  for (int iteration = 0; iteration < 50; ++iteration) {
    update_codebook(w, codebook);
    if (!assign()) break;
  }
  return codebook;
  // END SOLUTION
}

/// Centroid = mean of the values labelled with it (double, index order); empty clusters keep
/// theirs.
void update_codebook(const Tensor& w, Codebook& codebook) {
  // BEGIN SOLUTION
  check_codebook(codebook, "update_codebook");
  check_finite(w, "w", "update_codebook");
  EFFML_CHECK(w.shape() == codebook.labels.shape(),
              "update_codebook: expected w of the labels' shape " << codebook.labels.shape_str()
                                                                  << ", got " << w.shape_str());
  const int64_t k = codebook.centroids.numel();
  std::vector<double> sums(static_cast<std::size_t>(k), 0.0);
  std::vector<int64_t> counts(static_cast<std::size_t>(k), 0);
  const int32_t* labels = codebook.labels.data_i32();
  for (int64_t i = 0; i < w.numel(); ++i) {
    sums[static_cast<std::size_t>(labels[i])] += static_cast<double>(w[i]);
    ++counts[static_cast<std::size_t>(labels[i])];
  }
  for (int64_t j = 0; j < k; ++j) {
    const auto s = static_cast<std::size_t>(j);
    if (counts[s] > 0) {
      codebook.centroids[j] = static_cast<float>(sums[s] / static_cast<double>(counts[s]));
    }
  }
  // END SOLUTION
}

/// c_j -= lr * (sum of the gradients of the values labelled j), summed in double.
void codebook_gradient_step(Codebook& codebook, const Tensor& grad, float lr) {
  // BEGIN SOLUTION
  check_codebook(codebook, "codebook_gradient_step");
  check_finite(grad, "grad", "codebook_gradient_step");
  EFFML_CHECK(grad.shape() == codebook.labels.shape(),
              "codebook_gradient_step: expected grad of the labels' shape "
                  << codebook.labels.shape_str() << ", got " << grad.shape_str());
  EFFML_CHECK(std::isfinite(lr), "codebook_gradient_step: lr must be finite, got " << lr);
  const int64_t k = codebook.centroids.numel();
  std::vector<double> sums(static_cast<std::size_t>(k), 0.0);
  const int32_t* labels = codebook.labels.data_i32();
  for (int64_t i = 0; i < grad.numel(); ++i) {
    sums[static_cast<std::size_t>(labels[i])] += static_cast<double>(grad[i]);
  }
  for (int64_t j = 0; j < k; ++j) {
    const double moved = static_cast<double>(codebook.centroids[j]) -
                         static_cast<double>(lr) * sums[static_cast<std::size_t>(j)];
    codebook.centroids[j] = static_cast<float>(moved);
  }
  // END SOLUTION
}

// ---- Part 2 ------------------------------------------------------------------------------------

/// w'_c = w_c * s_c and b'_c = beta_c - mean_c * s_c with s_c = gamma_c / sqrt(var_c + eps).
FoldedConv fold_conv_bn(const Tensor& conv_weight, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var, float eps) {
  // BEGIN SOLUTION
  check_finite(conv_weight, "conv_weight", "fold_conv_bn");
  EFFML_CHECK(conv_weight.dim() == 4, "fold_conv_bn: expected conv_weight (Cout, Cin, K, K), got "
                                          << conv_weight.shape_str());
  const int64_t out = conv_weight.size(0);
  const Tensor* vectors[] = {&gamma, &beta, &running_mean, &running_var};
  const char* names[] = {"gamma", "beta", "running_mean", "running_var"};
  for (int i = 0; i < 4; ++i) {
    check_finite(*vectors[i], names[i], "fold_conv_bn");
    effml::check_shape(*vectors[i], {out}, std::string("fold_conv_bn: ") + names[i]);
  }
  EFFML_CHECK(eps > 0.0f && std::isfinite(eps), "fold_conv_bn: eps must be > 0, got " << eps);
  FoldedConv folded{Tensor(conv_weight.shape()), Tensor({out})};
  const int64_t per_channel = conv_weight.numel() / std::max<int64_t>(out, 1);
  for (int64_t c = 0; c < out; ++c) {
    EFFML_CHECK(running_var[c] >= 0.0f,
                "fold_conv_bn: running_var[" << c << "] = " << running_var[c] << " is negative");
    const float s = gamma[c] / std::sqrt(running_var[c] + eps);
    for (int64_t i = c * per_channel; i < (c + 1) * per_channel; ++i) {
      folded.weight[i] = conv_weight[i] * s;
    }
    folded.bias[c] = beta[c] - running_mean[c] * s;
  }
  return folded;
  // END SOLUTION
}

/// The range of each conv block's ReLU output, then the logits', over all images (eval mode).
std::vector<ActivationRange> calibrate_activation_ranges(effml::Sequential& vgg,
                                                         const Tensor& images,
                                                         int64_t batch_size) {
  // BEGIN SOLUTION
  EFFML_CHECK(images.dim() == 4 && images.size(0) >= 1 && images.size(1) == 1 &&
                  images.size(2) == 28 && images.size(3) == 28,
              "calibrate_activation_ranges: expected images (N, 1, 28, 28) with N >= 1, got "
                  << images.shape_str());
  check_finite(images, "images", "calibrate_activation_ranges");
  EFFML_CHECK(batch_size >= 1,
              "calibrate_activation_ranges: batch_size must be >= 1, got " << batch_size);
  effml::vgg_config(vgg);  // throws naming the layer unless it is a VGG
  vgg.eval();
  auto& features = dynamic_cast<effml::Sequential&>(vgg[0]);
  std::vector<ActivationRange> ranges;
  auto widen = [&](std::size_t at, const Tensor& t) {
    if (at == ranges.size()) ranges.push_back({t.min(), t.max()});
    ranges[at].min = std::min(ranges[at].min, t.min());
    ranges[at].max = std::max(ranges[at].max, t.max());
  };
  const int64_t n = images.size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    Tensor x = images.narrow(start, std::min(batch_size, n - start));
    std::size_t block = 0;
    for (std::size_t i = 0; i < features.size(); ++i) {
      x = features[i].forward(x);
      if (dynamic_cast<effml::ReLU*>(&features[i]) != nullptr) widen(block++, x);
    }
    x = vgg[2].forward(vgg[1].forward(x));
    widen(block, x);
  }
  return ranges;
  // END SOLUTION
}

/// S = 1 / (255 std), Z = round(255 mean - 128), in double.
QuantParams input_quant_params(float mean, float std) {
  // BEGIN SOLUTION
  EFFML_CHECK(mean >= 0.0f && mean <= 1.0f, "input_quant_params: mean must be in [0, 1], got "
                                                << mean);
  EFFML_CHECK(std > 0.0f && std::isfinite(std),
              "input_quant_params: std must be > 0 and finite, got " << std);
  const double z = std::nearbyint(255.0 * static_cast<double>(mean) - 128.0);
  EFFML_CHECK(z >= -128.0 && z <= 127.0,
              "input_quant_params: zero point " << z << " is outside [-128, 127]");
  QuantParams p;
  p.scale = static_cast<float>(1.0 / (255.0 * static_cast<double>(std)));
  p.zero_point = static_cast<int32_t>(z);
  return p;
  // END SOLUTION
}

/// Folds, quantizes and wires each layer as lab2.h's steps 1 to 6 say.
effml::QuantizedVgg quantize_vgg(effml::Sequential& vgg, const std::vector<ActivationRange>& ranges) {
  // BEGIN SOLUTION
  effml::QuantizedVgg q;
  q.cfg = effml::vgg_config(vgg);
  auto& features = dynamic_cast<effml::Sequential&>(vgg[0]);
  const int64_t blocks = std::count_if(q.cfg.begin(), q.cfg.end(), [](int64_t c) { return c > 0; });
  EFFML_CHECK(static_cast<int64_t>(ranges.size()) == blocks + 1,
              "quantize_vgg: expected " << blocks + 1 << " ranges (one per conv block and the "
                                        << "logits'), got " << ranges.size());
  QuantParams in = input_quant_params(effml::kFashionMnistMean, effml::kFashionMnistStd);
  // Quantizes one layer whose float weight and bias are given, reading `in` and writing the
  // output's parameters back into it.
  auto make_layer = [&](const std::string& name, const Tensor& weight, const Tensor& bias,
                        const ActivationRange& range) {
    effml::QuantizedLayer l;
    l.name = name;
    const PerChannelQuantized w = linear_quantize_weight_per_channel(weight, 8);
    const Tensor span({2}, std::vector<float>{std::min(range.min, 0.0f), std::max(range.max, 0.0f)});
    const QuantParams out = get_quantization_scale_and_zero_point(span, 8);
    const int64_t channels = weight.size(0);
    l.weight = w.q;
    l.weight_scale = w.scales;
    l.bias = quantize_bias(bias, w.scales, in.scale);
    l.multiplier = Tensor::zeros({channels}, effml::DType::Int32);
    l.shift = Tensor::zeros({channels}, effml::DType::Int32);
    for (int64_t o = 0; o < channels; ++o) {
      const double m = static_cast<double>(in.scale) * static_cast<double>(w.scales[o]) /
                       static_cast<double>(out.scale);
      EFFML_CHECK(m < 1.0, "quantize_vgg: " << name << " output channel " << o
                                            << ": multiplier S_x S_w / S_y = " << m
                                            << " is not below 1");
      const QuantizedMultiplier qm = quantize_multiplier(m);
      l.multiplier.data_i32()[o] = qm.multiplier;
      l.shift.data_i32()[o] = qm.shift;
    }
    l.input_zero_point = in.zero_point;
    l.input_scale = in.scale;
    l.output_zero_point = out.zero_point;
    l.output_scale = out.scale;
    in = out;
    return l;
  };
  std::size_t block = 0;
  for (std::size_t i = 0; i < features.size(); ++i) {
    auto* conv = dynamic_cast<effml::Conv2d*>(&features[i]);
    if (conv == nullptr) continue;
    auto& bn = dynamic_cast<effml::BatchNorm2d&>(features[i + 1]);
    const FoldedConv f = fold_conv_bn(conv->weight.value, bn.weight.value, bn.bias.value,
                                      bn.running_mean, bn.running_var, bn.eps());
    q.convs.push_back(make_layer("features." + std::to_string(i), f.weight, f.bias, ranges[block]));
    ++block;
  }
  auto& classifier = dynamic_cast<effml::Linear&>(vgg[2]);
  q.classifier = make_layer("classifier", classifier.weight.value, classifier.bias.value,
                            ranges.back());
  q.validate();
  return q;
  // END SOLUTION
}

// ---- Part 3 ------------------------------------------------------------------------------------

/// S (linear_quantize(r) - Z), in float32.
Tensor fake_quantize(const Tensor& r, int bits, float scale, int32_t zero_point) {
  // BEGIN SOLUTION
  const Tensor q = linear_quantize(r, bits, scale, zero_point);
  Tensor out(r.shape());
  for (int64_t i = 0; i < r.numel(); ++i) {
    out[i] = static_cast<float>(static_cast<int64_t>(q.data_i8()[i]) - zero_point) * scale;
  }
  return out;
  // END SOLUTION
}

/// grad where qmin <= round(r / S) + Z <= qmax, else 0.
Tensor fake_quantize_grad(const Tensor& grad, const Tensor& r, int bits, float scale,
                          int32_t zero_point) {
  // BEGIN SOLUTION
  check_bits(bits, 1, "fake_quantize_grad");
  check_finite(r, "r", "fake_quantize_grad");
  check_finite(grad, "grad", "fake_quantize_grad");
  EFFML_CHECK(grad.shape() == r.shape(), "fake_quantize_grad: expected grad of r's shape "
                                             << r.shape_str() << ", got " << grad.shape_str());
  EFFML_CHECK(scale > 0.0f && std::isfinite(scale),
              "fake_quantize_grad: scale must be > 0 and finite, got " << scale);
  const double qmin = qmin_of(bits), qmax = qmax_of(bits);
  Tensor out(r.shape());
  for (int64_t i = 0; i < r.numel(); ++i) {
    const double level = static_cast<double>(std::nearbyint(r[i] / scale)) + zero_point;
    out[i] = level >= qmin && level <= qmax ? grad[i] : 0.0f;
  }
  return out;
  // END SOLUTION
}

/// Task 3, then each channel dequantized with its scale.
Tensor fake_quantize_weight_per_channel(const Tensor& w, int bits) {
  // BEGIN SOLUTION
  const PerChannelQuantized q = linear_quantize_weight_per_channel(w, bits);
  const int64_t out = w.size(0), per = w.numel() / std::max<int64_t>(out, 1);
  Tensor fake(w.shape());
  for (int64_t c = 0; c < out; ++c) {
    for (int64_t i = c * per; i < (c + 1) * per; ++i) {
      fake[i] = static_cast<float>(q.q.data_i8()[i]) * q.scales[c];
    }
  }
  return fake;
  // END SOLUTION
}

// ---- Part 4 ------------------------------------------------------------------------------------

/// Fillers (G - 1, k) while a gap does not fit, then (gap, label), for each kept position.
RelativeIndices relative_indices(const Tensor& labels, int32_t k, int gap_bits) {
  // BEGIN SOLUTION
  effml::check_dtype(labels, effml::DType::Int32, "relative_indices: labels");
  EFFML_CHECK(k >= 1, "relative_indices: k must be >= 1, got " << k);
  EFFML_CHECK(gap_bits >= 1 && gap_bits <= 8,
              "relative_indices: gap_bits must be in [1, 8], got " << gap_bits);
  const int64_t max_gap = (int64_t{1} << gap_bits) - 1;
  std::vector<int32_t> gaps, symbols;
  int64_t last = -1;
  const int32_t* l = labels.data_i32();
  for (int64_t p = 0; p < labels.numel(); ++p) {
    EFFML_CHECK(l[p] >= -1 && l[p] < k, "relative_indices: label " << l[p] << " at index " << p
                                                                   << " is outside [-1, " << k
                                                                   << ")");
    if (l[p] < 0) continue;
    while (p - last - 1 > max_gap) {
      gaps.push_back(static_cast<int32_t>(max_gap));
      symbols.push_back(k);
      last += max_gap + 1;
    }
    gaps.push_back(static_cast<int32_t>(p - last - 1));
    symbols.push_back(l[p]);
    last = p;
  }
  const auto n = static_cast<int64_t>(gaps.size());
  return {Tensor::from_i32({n}, gaps), Tensor::from_i32({n}, symbols)};
  // END SOLUTION
}

/// Two-queue Huffman: leaves by (count, index); the smaller front each time, leaves on ties.
std::vector<uint8_t> huffman_code_lengths(const std::vector<int64_t>& counts) {
  // BEGIN SOLUTION
  EFFML_CHECK(counts.size() <= 65536,
              "huffman_code_lengths: at most 65,536 symbols, got " << counts.size());
  int64_t total = 0;
  std::vector<int64_t> leaves;  // symbol indices of count > 0
  for (std::size_t s = 0; s < counts.size(); ++s) {
    EFFML_CHECK(counts[s] >= 0,
                "huffman_code_lengths: count of symbol " << s << " is negative: " << counts[s]);
    total += counts[s];
    EFFML_CHECK(total <= (int64_t{1} << 40),
                "huffman_code_lengths: counts sum to more than 2^40");
    if (counts[s] > 0) leaves.push_back(static_cast<int64_t>(s));
  }
  std::vector<uint8_t> lengths(counts.size(), 0);
  if (leaves.empty()) return lengths;
  if (leaves.size() == 1) {
    lengths[static_cast<std::size_t>(leaves[0])] = 1;
    return lengths;
  }
  std::stable_sort(leaves.begin(), leaves.end(), [&](int64_t a, int64_t b) {
    return counts[static_cast<std::size_t>(a)] < counts[static_cast<std::size_t>(b)];
  });
  // Nodes: leaves are 0 .. L-1 (in queue order), internal nodes L, L+1, ... in creation order.
  const std::size_t n_leaves = leaves.size();
  std::vector<int64_t> weight(n_leaves), parent(2 * n_leaves - 1, -1);
  for (std::size_t i = 0; i < n_leaves; ++i) weight[i] = counts[static_cast<std::size_t>(leaves[i])];
  std::size_t next_leaf = 0, next_node = n_leaves;
  auto take = [&]() {
    const bool leaf = next_leaf < n_leaves &&
                      (next_node >= weight.size() || weight[next_leaf] <= weight[next_node]);
    return leaf ? next_leaf++ : next_node++;
  };
  while (weight.size() < 2 * n_leaves - 1) {
    const std::size_t a = take(), b = take();
    parent[a] = parent[b] = static_cast<int64_t>(weight.size());
    weight.push_back(weight[a] + weight[b]);
  }
  // Depths from the root (the last node) down: a parent is always created after its children.
  std::vector<int> depth(weight.size(), 0);
  for (std::size_t i = weight.size() - 1; i-- > 0;) {
    depth[i] = depth[static_cast<std::size_t>(parent[i])] + 1;
  }
  for (std::size_t i = 0; i < n_leaves; ++i) {
    EFFML_CHECK(depth[i] <= effml::kMaxCodeLength,
                "huffman_code_lengths: symbol " << leaves[i] << " needs a code of " << depth[i]
                                                << " bits, more than "
                                                << effml::kMaxCodeLength);
    lengths[static_cast<std::size_t>(leaves[i])] = static_cast<uint8_t>(depth[i]);
  }
  return lengths;
  // END SOLUTION
}

}  // namespace lab2
