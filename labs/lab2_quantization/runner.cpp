// Lab 2 runner: the program the grader builds from this file, your lab2.cpp and the core, and
// runs as a child process, once per task. It calls your functions on the inputs it is given and
// writes what they return; it computes no score (the grader compares).
//
//   runner gen TASK SEED INPUTS.safetensors         random inputs for TASK from SEED
//   runner run TASK INPUTS.safetensors OUTPUTS.safetensors
//   runner list                                     the task names, one per line
//
// The exact tasks' outputs are integers, compared with the reference's without tolerance, or
// float32 values (Task 3's scales, Tasks 7 to 9's centroids) computed by a specified sequence of
// operations, compared within a relative 1e-6. Integer arguments (bits, zero points, stride,
// padding) are stored as int32 tensors of one value, scales and learning rates as float32
// scalars; a codebook as its float32 `centroids` and int32 `labels`.
//
// The model tasks (kmeans_finetune_4bit, kmeans_finetune_2bit) take `none` as inputs and write
// a checkpoint; the grader loads it and measures the distinct values per weight and the test
// accuracy itself. They start from the dense VGG `vgg_dense.safetensors` of this folder (the
// same file as Lab 1's), found through EFFML_LAB_DIR (the grader sets it) or
// ./labs/lab2_quantization.
//
// Exit codes: 0 done, 1 error (message on stderr), 2 bad command line, 3 a function is not
// implemented yet (the message names its task).
//
// You can run it yourself, for example (from the repository's top folder):
//   build/tests/lab2_quantization_runner gen quantized_linear 7 in.safetensors
//   build/tests/lab2_quantization_runner run quantized_linear in.safetensors out.safetensors
//   build/tests/lab2_quantization_runner run kmeans_finetune_4bit none kmeans4.safetensors

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "effml/data.h"
#include "effml/deep_compression.h"
#include "effml/error.h"
#include "effml/lab_runner.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/quantized.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/tensor.h"
#include "effml/train.h"
#include "lab2.h"

namespace {

using effml::DType;
using effml::Rng;
using effml::RunnerInputs;
using effml::Shape;
using effml::Tensor;
using effml::TensorList;

// ---- inputs ------------------------------------------------------------------------------------

Tensor int_scalar(int32_t value) { return Tensor::from_i32({}, {value}); }

int32_t int_arg(const RunnerInputs& in, const std::string& name) {
  const std::vector<int32_t> v = in.ints(name);
  EFFML_CHECK(v.size() == 1, in.path() << ": '" << name << "' must hold one int32, got "
                                       << v.size() << " values");
  return v[0];
}

// A uniform integer in [lo, hi].
int32_t int_between(Rng& rng, int32_t lo, int32_t hi) {
  return lo + static_cast<int32_t>(rng.randint(static_cast<uint64_t>(hi - lo + 1)));
}

int bits_between_2_and_8(Rng& rng) { return int_between(rng, 2, 8); }

// Uniform int8 values in [lo, hi].
Tensor random_int8(const Shape& shape, int32_t lo, int32_t hi, Rng& rng) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<int8_t> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(int_between(rng, lo, hi));
  return Tensor::from_i8(shape, v);
}

Shape random_shape(Rng& rng) {
  Shape shape;
  const int64_t rank = effml::size_between(rng, 1, 4);
  for (int64_t d = 0; d < rank; ++d) shape.push_back(d < 2 ? effml::awkward_size(rng)
                                                           : effml::size_between(rng, 1, 5));
  return shape;
}

// ---- Task 1: linear_quantize -----------------------------------------------------------------

// Normal values and a scale whose quantized range covers 1 to 4 standard deviations on either
// side (so the tails are clamped), with any zero point of the range.
TensorList gen_linear_quantize(Rng& rng) {
  const int bits = bits_between_2_and_8(rng);
  const int32_t qmin = lab2::qmin_of(bits), qmax = lab2::qmax_of(bits);
  const float std = rng.uniform(0.05f, 2.0f);
  const float scale = std * rng.uniform(2.0f, 8.0f) / static_cast<float>(qmax - qmin);
  TensorList t;
  t.emplace_back("r", effml::normal(random_shape(rng), std, rng));
  t.emplace_back("bits", int_scalar(bits));
  t.emplace_back("scale", effml::scalar_tensor(scale));
  t.emplace_back("zero_point", int_scalar(int_between(rng, qmin, qmax)));
  return t;
}

// Values exactly half-way between two integer steps, and at and beyond the clamp bounds: the
// scale is a power of two, so r / S is computed exactly and its halves must go to even.
TensorList gen_linear_quantize_ties(Rng& rng) {
  const int bits = bits_between_2_and_8(rng);
  const int32_t qmin = lab2::qmin_of(bits), qmax = lab2::qmax_of(bits);
  const float scale = std::ldexp(1.0f, -int_between(rng, 1, 8));
  const int32_t zero_point = int_between(rng, qmin, qmax);
  std::vector<float> r;
  // Every half step from 3 below the range to 3 above it, both signs of the rounding.
  for (int32_t k = qmin - zero_point - 3; k <= qmax - zero_point + 3; ++k) {
    r.push_back((static_cast<float>(k) + 0.5f) * scale);
    r.push_back(static_cast<float>(k) * scale);
  }
  r.push_back(0.0f);
  r.push_back(-0.5f * scale);  // rounds to -0, then Z
  TensorList t;
  t.emplace_back("r", Tensor({static_cast<int64_t>(r.size())}, r));
  t.emplace_back("bits", int_scalar(bits));
  t.emplace_back("scale", effml::scalar_tensor(scale));
  t.emplace_back("zero_point", int_scalar(zero_point));
  return t;
}

TensorList run_linear_quantize(const RunnerInputs& in) {
  return {{"q", lab2::linear_quantize(in.at("r"), int_arg(in, "bits"), in.scalar("scale"),
                                      int_arg(in, "zero_point"))}};
}

// ---- Task 2: get_quantization_scale_and_zero_point -------------------------------------------

constexpr int kRangeCases = 8;

// Eight tensors: ranges across zero, wholly positive or negative (the zero point clamps),
// constant, all zeros, one value.
TensorList gen_scale_zero_point(Rng& rng) {
  TensorList t;
  for (int i = 0; i < kRangeCases; ++i) {
    const std::string k = std::to_string(i);
    Tensor r = effml::normal(random_shape(rng), rng.uniform(0.01f, 3.0f), rng);
    switch (rng.randint(7)) {
      case 0: r = r.abs() + rng.uniform(0.0f, 2.0f); break;     // positive
      case 1: r = -(r.abs()) - rng.uniform(0.0f, 2.0f); break;  // negative
      case 2: r = Tensor::full(r.shape(), rng.uniform(-3.0f, 3.0f)); break;
      case 3: r = Tensor::zeros(r.shape()); break;
      case 4: r = r + rng.uniform(-1.0f, 1.0f); break;
      default: break;
    }
    t.emplace_back("r." + k, std::move(r));
    t.emplace_back("bits." + k, int_scalar(bits_between_2_and_8(rng)));
  }
  return t;
}

TensorList run_scale_zero_point(const RunnerInputs& in) {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  for (int i = 0; in.contains("r." + std::to_string(i)); ++i) {
    const std::string k = std::to_string(i);
    const lab2::QuantParams p =
        lab2::get_quantization_scale_and_zero_point(in.at("r." + k), int_arg(in, "bits." + k));
    scales.push_back(p.scale);
    zero_points.push_back(p.zero_point);
  }
  const auto n = static_cast<int64_t>(scales.size());
  return {{"scale", Tensor({n}, scales)}, {"zero_point", Tensor::from_i32({n}, zero_points)}};
}

// ---- Task 3: linear_quantize_weight_per_channel ----------------------------------------------

TensorList gen_weight_per_channel(Rng& rng) {
  Shape shape = {effml::awkward_size(rng), effml::awkward_size(rng)};
  if (rng.randint(2) == 0) {
    const int64_t k = 1 + 2 * static_cast<int64_t>(rng.randint(3));  // 1, 3 or 5
    shape.push_back(k);
    shape.push_back(k);
  }
  Tensor w = effml::normal(shape, rng.uniform(0.01f, 0.5f), rng);
  // Channels of different magnitudes, and now and then one of zeros.
  const int64_t per = w.numel() / shape[0];
  for (int64_t c = 0; c < shape[0]; ++c) {
    const float gain = rng.randint(8) == 0 ? 0.0f : rng.uniform(0.1f, 3.0f);
    for (int64_t k = 0; k < per; ++k) w[c * per + k] *= gain;
  }
  TensorList t;
  t.emplace_back("w", std::move(w));
  t.emplace_back("bits", int_scalar(bits_between_2_and_8(rng)));
  return t;
}

TensorList run_weight_per_channel(const RunnerInputs& in) {
  lab2::PerChannelQuantized out =
      lab2::linear_quantize_weight_per_channel(in.at("w"), int_arg(in, "bits"));
  return {{"q", std::move(out.q)}, {"scales", std::move(out.scales)}};
}

// ---- Task 4: quantize_bias -------------------------------------------------------------------

TensorList gen_quantize_bias(Rng& rng) {
  const int64_t outputs = effml::awkward_size(rng);
  TensorList t;
  t.emplace_back("bias", effml::normal({outputs}, rng.uniform(0.01f, 1.0f), rng));
  t.emplace_back("weight_scales", Tensor::rand({outputs}, rng, 1e-4f, 0.05f));
  t.emplace_back("input_scale", effml::scalar_tensor(rng.uniform(1e-3f, 0.1f)));
  return t;
}

TensorList run_quantize_bias(const RunnerInputs& in) {
  return {{"bias_q", lab2::quantize_bias(in.at("bias"), in.at("weight_scales"),
                                         in.scalar("input_scale"))}};
}

// ---- Tasks 5 and 6: integer-only layers ------------------------------------------------------

// Weights of a `bits`-bit symmetric quantization, inputs over the whole int8 range, biases and
// multipliers of a realistic layer: an accumulator of `fan_in` terms is brought back to outputs
// that spread over int8 (some saturate, most do not).
void put_layer(TensorList& t, Rng& rng, const Shape& x_shape, const Shape& w_shape,
               int64_t fan_in) {
  const int bits = bits_between_2_and_8(rng);
  const int32_t wmax = lab2::qmax_of(bits);
  const int64_t outputs = w_shape[0];
  const int32_t x_zero_point = int_between(rng, -128, 127);
  t.emplace_back("x_q", random_int8(x_shape, -128, 127, rng));
  t.emplace_back("w_q", random_int8(w_shape, -wmax, wmax, rng));
  // Standard deviation of one accumulator: sqrt(fan_in) x std(x - Zx) x std(w).
  const double x_std = 74.0 + std::abs(x_zero_point) * 0.5;
  const double w_std = std::max(0.5, wmax * 0.58);
  const double acc_std = std::sqrt(static_cast<double>(fan_in)) * x_std * w_std;
  std::vector<int32_t> bias(static_cast<std::size_t>(outputs)), m0(bias.size()), shift(bias.size());
  for (std::size_t o = 0; o < bias.size(); ++o) {
    bias[o] = static_cast<int32_t>(std::lround(rng.normal() * acc_std * 0.5));
    const double real = std::min(0.999, rng.uniform(0.3f, 3.0f) * 40.0 / acc_std);
    const lab2::QuantizedMultiplier q = lab2::quantize_multiplier(real);
    m0[o] = q.multiplier;
    shift[o] = q.shift;
  }
  t.emplace_back("bias_q", Tensor::from_i32({outputs}, bias));
  t.emplace_back("x_zero_point", int_scalar(x_zero_point));
  t.emplace_back("y_zero_point", int_scalar(int_between(rng, -128, 127)));
  t.emplace_back("multiplier", Tensor::from_i32({outputs}, m0));
  t.emplace_back("shift", Tensor::from_i32({outputs}, shift));
}

TensorList gen_quantized_linear(Rng& rng) {
  const int64_t n = effml::awkward_size(rng), inputs = effml::awkward_size(rng);
  const int64_t outputs = effml::awkward_size(rng);
  TensorList t;
  put_layer(t, rng, {n, inputs}, {outputs, inputs}, inputs);
  return t;
}

TensorList run_quantized_linear(const RunnerInputs& in) {
  return {{"y_q", lab2::quantized_linear(in.at("x_q"), in.at("w_q"), in.at("bias_q"),
                                         int_arg(in, "x_zero_point"), int_arg(in, "y_zero_point"),
                                         in.at("multiplier"), in.at("shift"))}};
}

// A conv of awkward channel counts on a small image; `min_padding` 1 makes many windows
// overlap the border, where the padded value Zx must count as zero.
TensorList gen_conv(Rng& rng, int64_t min_padding, bool extreme_zero_point) {
  const int64_t k = 1 + 2 * static_cast<int64_t>(rng.randint(3));  // 1, 3 or 5
  const int64_t stride = effml::size_between(rng, 1, 2);
  const int64_t padding = effml::size_between(rng, min_padding, 2);
  const int64_t low = std::max<int64_t>(1, k - 2 * padding);
  const int64_t h = effml::size_between(rng, low, 9), w = effml::size_between(rng, low, 9);
  const int64_t n = effml::size_between(rng, 1, 2);
  const int64_t channels = effml::awkward_size(rng), outputs = effml::awkward_size(rng);
  TensorList t;
  put_layer(t, rng, {n, channels, h, w}, {outputs, channels, k, k}, channels * k * k);
  if (extreme_zero_point) {
    // Far from 0, so padding with 0 instead of Zx changes every border output.
    const int32_t zx[] = {-128, -100, 100, 127};
    for (auto& [name, value] : t) {
      if (name == "x_zero_point") value = int_scalar(zx[rng.randint(4)]);
    }
  }
  t.emplace_back("stride", int_scalar(static_cast<int32_t>(stride)));
  t.emplace_back("padding", int_scalar(static_cast<int32_t>(padding)));
  return t;
}

TensorList gen_quantized_conv2d(Rng& rng) { return gen_conv(rng, 0, false); }
TensorList gen_quantized_conv2d_padding(Rng& rng) { return gen_conv(rng, 1, true); }

TensorList run_quantized_conv2d(const RunnerInputs& in) {
  return {{"y_q", lab2::quantized_conv2d(in.at("x_q"), in.at("w_q"), in.at("bias_q"),
                                         int_arg(in, "x_zero_point"), int_arg(in, "y_zero_point"),
                                         in.at("multiplier"), in.at("shift"),
                                         int_arg(in, "stride"), int_arg(in, "padding"))}};
}

// ---- Tasks 7 to 9: k-means quantization ------------------------------------------------------

constexpr int kKMeansCases = 4;

// Normal values of an awkward shape, or (one case in four) values drawn from a handful of
// distinct numbers, so that many are equal and many distances tie.
Tensor kmeans_weight(Rng& rng) {
  Tensor w = effml::normal(random_shape(rng), rng.uniform(0.01f, 1.0f), rng);
  if (rng.randint(4) == 0) {
    const float step = rng.uniform(0.05f, 0.5f);
    for (int64_t i = 0; i < w.numel(); ++i) w[i] = step * static_cast<float>(rng.randint(5));
  }
  return w;
}

// Four weights per case, 1 to 4 bits; case 0 always has duplicate values.
TensorList gen_k_means_quantize(Rng& rng) {
  TensorList t;
  for (int i = 0; i < kKMeansCases; ++i) {
    const std::string k = std::to_string(i);
    Tensor w = kmeans_weight(rng);
    if (i == 0) {
      for (int64_t j = 0; j < w.numel(); ++j) w[j] = 0.25f * static_cast<float>(rng.randint(4)) - 0.5f;
    }
    t.emplace_back("w." + k, std::move(w));
    t.emplace_back("bits." + k, int_scalar(int_between(rng, 1, 4)));
  }
  return t;
}

// Larger weights: 10,000 normal values on 5 to 8 bits (up to 256 clusters), and a constant
// tensor, where every centroid equals the constant and every label is 0.
TensorList gen_k_means_quantize_large(Rng& rng) {
  TensorList t;
  t.emplace_back("w.0", effml::normal({100, 100}, rng.uniform(0.01f, 1.0f), rng));
  t.emplace_back("bits.0", int_scalar(int_between(rng, 5, 8)));
  t.emplace_back("w.1", Tensor::full({7, 3}, rng.uniform(-2.0f, 2.0f)));
  t.emplace_back("bits.1", int_scalar(int_between(rng, 1, 8)));
  return t;
}

TensorList run_k_means_quantize(const RunnerInputs& in) {
  TensorList out;
  for (int i = 0; in.contains("w." + std::to_string(i)); ++i) {
    const std::string k = std::to_string(i);
    lab2::Codebook c = lab2::k_means_quantize(in.at("w." + k), int_arg(in, "bits." + k));
    out.emplace_back("centroids." + k, std::move(c.centroids));
    out.emplace_back("labels." + k, std::move(c.labels));
  }
  return out;
}

// A codebook of 1 to 4 bits from k-means of a weight (Task 7, which the grader's inputs take
// from the reference), then the weight moved by noise of a tenth of its spread, as after a
// step of training. Small weights leave some clusters empty.
void put_codebook(TensorList& t, Rng& rng) {
  const Tensor w = kmeans_weight(rng);
  lab2::Codebook c = lab2::k_means_quantize(w, int_between(rng, 1, 4));
  t.emplace_back("w", w);
  t.emplace_back("centroids", std::move(c.centroids));
  t.emplace_back("labels", std::move(c.labels));
}

TensorList gen_update_codebook(Rng& rng) {
  TensorList t;
  put_codebook(t, rng);
  Tensor& w = t[0].second;
  w = w + effml::normal(w.shape(), 0.1f * std::max(w.abs().max(), 1e-3f), rng);
  return t;
}

TensorList run_update_codebook(const RunnerInputs& in) {
  lab2::Codebook c{in.at("centroids"), in.at("labels")};
  lab2::update_codebook(in.at("w"), c);
  return {{"centroids", std::move(c.centroids)}};
}

// Gradients of the dequantized weight and a learning rate of 0.001 to 0.1.
TensorList gen_codebook_gradient_step(Rng& rng) {
  TensorList t;
  put_codebook(t, rng);
  t.emplace_back("grad", effml::normal(t[0].second.shape(), rng.uniform(0.01f, 1.0f), rng));
  t.emplace_back("lr", effml::scalar_tensor(rng.uniform(0.001f, 0.1f)));
  return t;
}

TensorList run_codebook_gradient_step(const RunnerInputs& in) {
  lab2::Codebook c{in.at("centroids"), in.at("labels")};
  lab2::codebook_gradient_step(c, in.at("grad"), in.scalar("lr"));
  return {{"centroids", std::move(c.centroids)}};
}



// ---- Task 10: fold_conv_bn -------------------------------------------------------------------

// A conv weight of awkward sizes and a batch norm of a trained model's kind: gamma around 1,
// running variances from near 0 (where eps matters) to 4.
TensorList gen_fold_conv_bn(Rng& rng) {
  const int64_t out = effml::awkward_size(rng), in = effml::size_between(rng, 1, 9);
  const int64_t k = rng.randint(2) ? 3 : 1;
  Tensor var = Tensor::rand({out}, rng, 0.0f, 4.0f);
  var[0] = 0.0f;  // a dead channel: only eps keeps the division finite
  TensorList t;
  t.emplace_back("conv_weight", effml::normal({out, in, k, k}, 0.3f, rng));
  t.emplace_back("gamma", effml::normal({out}, 0.3f, rng) + 1.0f);
  t.emplace_back("beta", effml::normal({out}, 0.3f, rng));
  t.emplace_back("running_mean", effml::normal({out}, 0.5f, rng));
  t.emplace_back("running_var", var);
  t.emplace_back("eps", effml::scalar_tensor(rng.randint(2) ? 1e-5f : 1e-3f));
  return t;
}

TensorList run_fold_conv_bn(const RunnerInputs& in) {
  const lab2::FoldedConv f =
      lab2::fold_conv_bn(in.at("conv_weight"), in.at("gamma"), in.at("beta"),
                         in.at("running_mean"), in.at("running_var"), in.scalar("eps"));
  return {{"weight", f.weight}, {"bias", f.bias}};
}

// ---- Task 11: calibrate_activation_ranges -----------------------------------------------------

// A random VGG, an awkward number of normal images and a batch size that does not divide it.
TensorList gen_calibrate(Rng& rng) {
  TensorList t;
  effml::put_vgg(t, "model.", *effml::random_vgg(rng));
  const int64_t n = effml::size_between(rng, 1, 23);
  t.emplace_back("images", effml::normal({n, 1, 28, 28}, 1.0f, rng));
  t.emplace_back("batch_size", int_scalar(static_cast<int32_t>(effml::size_between(rng, 1, 9))));
  return t;
}

// The ranges as float32 (B + 1, 2): rows of {min, max}.
TensorList run_calibrate(const RunnerInputs& in) {
  auto model = effml::get_vgg(in, "model.");
  const std::vector<lab2::ActivationRange> ranges =
      lab2::calibrate_activation_ranges(*model, in.at("images"), int_arg(in, "batch_size"));
  Tensor out({static_cast<int64_t>(ranges.size()), 2});
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    out[static_cast<int64_t>(2 * i)] = ranges[i].min;
    out[static_cast<int64_t>(2 * i + 1)] = ranges[i].max;
  }
  return {{"ranges", out}};
}

// ---- Task 12: input_quant_params and quantize_vgg ---------------------------------------------

// Normalisations of other datasets: means over [0, 1], standard deviations 0.1 to 0.5, and the
// two this project uses.
TensorList gen_input_quant_params(Rng& rng) {
  std::vector<float> mean = {effml::kFashionMnistMean, effml::kMnistMean, 0.0f, 1.0f};
  std::vector<float> std = {effml::kFashionMnistStd, effml::kMnistStd, 0.25f, 0.5f};
  for (int i = 0; i < 12; ++i) {
    mean.push_back(rng.uniform(0.0f, 1.0f));
    std.push_back(rng.uniform(0.1f, 0.5f));
  }
  const auto n = static_cast<int64_t>(mean.size());
  return {{"mean", Tensor({n}, mean)}, {"std", Tensor({n}, std)}};
}

TensorList run_input_quant_params(const RunnerInputs& in) {
  const Tensor& mean = in.at("mean");
  const Tensor& std = in.at("std");
  EFFML_CHECK(mean.shape() == std.shape() && mean.dim() == 1,
              in.path() << ": 'mean' " << mean.shape_str() << " and 'std' " << std.shape_str()
                        << " must be vectors of one length");
  Tensor scales(mean.shape());
  Tensor zero_points = Tensor::zeros(mean.shape(), DType::Int32);
  for (int64_t i = 0; i < mean.numel(); ++i) {
    const lab2::QuantParams p = lab2::input_quant_params(mean[i], std[i]);
    scales[i] = p.scale;
    zero_points.data_i32()[i] = p.zero_point;
  }
  return {{"scales", scales}, {"zero_points", zero_points}};
}

// A random VGG and ranges like a calibration's (ReLU outputs from 0 to 0.5-8, logits across 0),
// and now and then a range that does not reach 0 and must be widened to it.
TensorList gen_quantize_vgg(Rng& rng) {
  TensorList t;
  auto model = effml::random_vgg(rng);
  effml::put_vgg(t, "model.", *model);
  const int64_t blocks = static_cast<int64_t>(model->named_parameters().size() - 2) / 3;
  Tensor ranges({blocks + 1, 2});
  for (int64_t b = 0; b < blocks; ++b) {
    ranges[2 * b] = rng.randint(3) == 0 ? rng.uniform(0.05f, 0.5f) : 0.0f;
    ranges[2 * b + 1] = rng.uniform(0.5f, 8.0f);
  }
  switch (rng.randint(3)) {
    case 0:  // wholly positive logits
      ranges[2 * blocks] = rng.uniform(0.5f, 2.0f);
      ranges[2 * blocks + 1] = rng.uniform(4.0f, 20.0f);
      break;
    case 1:  // wholly negative logits
      ranges[2 * blocks] = -rng.uniform(4.0f, 20.0f);
      ranges[2 * blocks + 1] = -rng.uniform(0.5f, 2.0f);
      break;
    default:
      ranges[2 * blocks] = -rng.uniform(2.0f, 20.0f);
      ranges[2 * blocks + 1] = rng.uniform(2.0f, 20.0f);
  }
  t.emplace_back("ranges", ranges);
  return t;
}

TensorList run_quantize_vgg(const RunnerInputs& in) {
  auto model = effml::get_vgg(in, "model.");
  const Tensor& r = in.at("ranges");
  EFFML_CHECK(r.dim() == 2 && r.size(1) == 2,
              in.path() << ": 'ranges' must be (B + 1, 2), got " << r.shape_str());
  std::vector<lab2::ActivationRange> ranges;
  for (int64_t i = 0; i < r.size(0); ++i) ranges.push_back({r[2 * i], r[2 * i + 1]});
  return effml::quantized_vgg_tensors(lab2::quantize_vgg(*model, ranges));
}
// ---- Tasks 13 and 14: fake quantization --------------------------------------------------------

// Task 1's inputs (tails clamped, any zero point), with a gradient for (b).
TensorList gen_fake_quantize(Rng& rng) {
  TensorList t = gen_linear_quantize(rng);
  t.emplace_back("grad", effml::normal(t.front().second.shape(), 1.0f, rng));
  return t;
}

TensorList run_fake_quantize(const RunnerInputs& in) {
  const int bits = int_arg(in, "bits");
  const int32_t zero_point = int_arg(in, "zero_point");
  const float scale = in.scalar("scale");
  return {{"fake", lab2::fake_quantize(in.at("r"), bits, scale, zero_point)},
          {"grad_r", lab2::fake_quantize_grad(in.at("grad"), in.at("r"), bits, scale, zero_point)}};
}

TensorList run_fake_quantize_weight(const RunnerInputs& in) {
  return {{"fake", lab2::fake_quantize_weight_per_channel(in.at("w"), int_arg(in, "bits"))}};
}

// ---- Tasks 15 and 16: relative indices and Huffman code lengths --------------------------------

// Labels of a pruned weight of awkward shape: a density from 0 (nothing kept) to 1, runs of
// zeros longer than the largest gap (fillers, several in a row), codebooks of 1 to 40 centroids.
TensorList gen_relative_indices(Rng& rng) {
  const int32_t k = int_between(rng, 1, 40);
  const int gap_bits = int_between(rng, 1, 8);
  const Shape shape = random_shape(rng);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const float densities[] = {0.0f, 0.01f, 0.1f, 0.5f, 1.0f};
  const float density = densities[rng.randint(5)];
  std::vector<int32_t> labels(static_cast<std::size_t>(n), -1);
  for (auto& l : labels) {
    if (rng.uniform() < density) l = int_between(rng, 0, k - 1);
  }
  if (n > 1 && rng.randint(2) == 0) labels.back() = 0;  // a kept value after the longest run
  TensorList t;
  t.emplace_back("labels", Tensor::from_i32(shape, labels));
  t.emplace_back("k", int_scalar(k));
  t.emplace_back("gap_bits", int_scalar(gap_bits));
  return t;
}

TensorList run_relative_indices(const RunnerInputs& in) {
  const lab2::RelativeIndices r =
      lab2::relative_indices(in.at("labels"), int_arg(in, "k"), int_arg(in, "gap_bits"));
  return {{"gaps", r.gaps}, {"symbols", r.symbols}};
}

// Several alphabets per case: random counts with zeros and ties, one symbol, none, all equal,
// and Fibonacci-like counts that make a deep tree. Stored as int32 (every count fits).
constexpr int kHuffmanCases = 6;

TensorList gen_huffman_code_lengths(Rng& rng) {
  TensorList t;
  for (int c = 0; c < kHuffmanCases; ++c) {
    const int64_t n = effml::size_between(rng, 1, 300);
    std::vector<int32_t> counts(static_cast<std::size_t>(n), 0);
    switch (c) {
      case 0:  // random, many zeros and ties
        for (auto& v : counts) v = rng.randint(3) == 0 ? 0 : int_between(rng, 1, 20);
        break;
      case 1:  // one symbol used
        counts[rng.randint(static_cast<uint64_t>(n))] = int_between(rng, 1, 1000);
        break;
      case 2:  // none used
        break;
      case 3:  // all equal
        for (auto& v : counts) v = 7;
        break;
      case 4: {  // Fibonacci-like: each count about the sum of the two smaller ones
        int32_t a = 1, b = 1;
        for (std::size_t i = 0; i < counts.size() && i < 22; ++i) {
          counts[i] = a;
          const int32_t next = a + b;
          a = b;
          b = next;
        }
        break;
      }
      default:  // a skewed stream: geometric counts, as gaps are
        for (std::size_t i = 0; i < counts.size(); ++i) {
          counts[i] = static_cast<int32_t>(100000.0 * std::pow(0.7, static_cast<double>(i)));
        }
    }
    t.emplace_back("counts" + std::to_string(c), Tensor::from_i32({n}, counts));
  }
  return t;
}

TensorList run_huffman_code_lengths(const RunnerInputs& in) {
  TensorList out;
  for (int c = 0; c < kHuffmanCases; ++c) {
    const std::string name = "counts" + std::to_string(c);
    std::vector<int64_t> counts;
    for (int32_t v : in.ints(name)) counts.push_back(v);
    const std::vector<uint8_t> lengths = lab2::huffman_code_lengths(counts);
    std::vector<int32_t> as_int(lengths.begin(), lengths.end());
    out.emplace_back("lengths" + std::to_string(c),
                     Tensor::from_i32({static_cast<int64_t>(as_int.size())}, as_int));
  }
  return out;
}

// ---- model tasks: k-means quantization of the whole VGG, fine-tuned ---------------------------

// The settings of the model tasks (the grader's thresholds were calibrated with these).
// The centroids move by plain gradient descent at a small constant rate: a centroid's gradient
// is the sum over its cluster, thousands of weights. The parameters left in float (biases and
// batch norm) train with the optimizer at the usual rate of a fine-tuning, SGD with momentum:
// re-fitting the batch norms to the quantized weights recovers most of what 2 bits lose.
constexpr int kFinetuneEpochs = 1;
constexpr float kFinetuneLr = 1e-4f;      // codebook_gradient_step's rate
constexpr float kFloatParamsLr = 0.01f;   // the optimizer's, for biases and batch norm
constexpr float kFloatParamsMomentum = 0.9f;
// Accuracy before fine-tuning is printed on these training images (not the test set, which only
// the grader measures on).
constexpr int64_t kCheckStart = 50000, kCheckCount = 2000;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The grader runs the model tasks as configured above; for experiments these environment
// variables change them, and the grader never sets them:
//   EFFML_LAB2_BASELINE  another dense checkpoint (any model of `effml train`)
//   EFFML_LAB2_SEED      the fine-tuning's shuffling seed (default 0)
struct KMeansSettings {
  std::string baseline;
  uint64_t seed = 0;
};

KMeansSettings kmeans_settings() {
  KMeansSettings k;
  k.baseline = effml::env_or("EFFML_LAB2_BASELINE",
                             effml::lab_file("lab2_quantization", "vgg_dense.safetensors"));
  k.seed = effml::env_uint("EFFML_LAB2_SEED", 0);
  return k;
}


// One quantized weight: its parameter and the codebook it stands for.
struct QuantizedWeight {
  std::string name;
  effml::Parameter* param = nullptr;
  lab2::Codebook codebook;
};

// k-means quantization of every weight of two or more dimensions (the convs and the linear
// layer) to 2^bits shared values, then fine-tuning with tied weights (Deep Compression): after
// each optimizer step, each centroid moves by the sum of the gradients of the weights labelled
// with it, and the weight is set back to its codebook, discarding the optimizer's own update of
// it. Biases and batch-norm parameters train with the optimizer. Writes the fine-tuned model, whose
// quantized weights hold at most 2^bits distinct values each.
void run_kmeans_finetune(const std::string& task, int bits, const std::string& in_path,
                         const std::string& out_path) {
  EFFML_CHECK(in_path == "none", task << " takes no inputs: pass 'none', not '" << in_path << "'");
  const auto start = std::chrono::steady_clock::now();
  const KMeansSettings settings = kmeans_settings();
  auto model = effml::load_model_checkpoint(settings.baseline);
  const effml::Dataset train_set = effml::load_fashion_mnist("train");
  const effml::Dataset check_set = train_set.subset(kCheckStart, kCheckCount);
  const double dense_accuracy = effml::evaluate(*model, check_set).accuracy;

  std::vector<QuantizedWeight> weights;
  for (const auto& p : model->named_parameters()) {
    if (p.param->value.dim() < 2) continue;
    QuantizedWeight q{p.name, p.param, lab2::k_means_quantize(p.param->value, bits)};
    p.param->value.copy_(lab2::dequantize(q.codebook));
    weights.push_back(std::move(q));
  }
  std::printf("k-means quantization to %d bits (%d centroids) of %zu weights: %.1f s\n", bits,
              1 << bits, weights.size(), seconds_since(start));
  std::printf("accuracy on training images %lld-%lld: dense %.2f%%, quantized before "
              "fine-tuning %.2f%%\n",
              static_cast<long long>(kCheckStart),
              static_cast<long long>(kCheckStart + kCheckCount - 1), 100.0 * dense_accuracy,
              100.0 * effml::evaluate(*model, check_set).accuracy);

  effml::TrainConfig config;
  config.epochs = kFinetuneEpochs;
  config.optimizer = "sgd";
  config.lr = kFloatParamsLr;
  config.momentum = kFloatParamsMomentum;
  config.weight_decay = 0.0f;
  config.schedule = "constant";
  config.seed = settings.seed;
  config.progress = false;
  effml::TrainHooks hooks;
  hooks.after_step = [&] {
    for (auto& q : weights) {
      lab2::codebook_gradient_step(q.codebook, q.param->grad, kFinetuneLr);
      q.param->value.copy_(lab2::dequantize(q.codebook));
    }
  };
  const auto history = effml::train(*model, train_set, nullptr, config, hooks);
  std::printf("fine-tuned %d epoch(s) (centroids: lr %.3g; biases and batch norm: SGD lr %.3g "
              "momentum %.1f; constant; seed %llu): training accuracy %.2f%%, accuracy on "
              "training images %lld-%lld %.2f%%; %.1f s in all\n",
              kFinetuneEpochs, kFinetuneLr, kFloatParamsLr, kFloatParamsMomentum,
              static_cast<unsigned long long>(settings.seed),
              100.0 * history.back().train_accuracy, static_cast<long long>(kCheckStart),
              static_cast<long long>(kCheckStart + kCheckCount - 1),
              100.0 * effml::evaluate(*model, check_set).accuracy, seconds_since(start));
  for (const auto& q : weights) {
    std::printf("  %-22s centroids", q.name.c_str());
    for (int64_t j = 0; j < q.codebook.centroids.numel(); ++j) {
      std::printf(" %+.4f", q.codebook.centroids[j]);
    }
    std::printf("\n");
  }
  const auto meta = effml::read_metadata(settings.baseline);
  effml::save_checkpoint(out_path, *model,
                         {{"model", meta.at("model")},
                          {"lab", "lab2_quantization"},
                          {"task", task},
                          {"bits", std::to_string(bits)},
                          {"finetune_epochs", std::to_string(kFinetuneEpochs)},
                          {"finetune_seed", std::to_string(settings.seed)}});
}

void run_kmeans_finetune_4bit(const std::string& in_path, const std::string& out_path) {
  run_kmeans_finetune("kmeans_finetune_4bit", 4, in_path, out_path);
}

void run_kmeans_finetune_2bit(const std::string& in_path, const std::string& out_path) {
  run_kmeans_finetune("kmeans_finetune_2bit", 2, in_path, out_path);
}

// ---- model task: the whole VGG integer-only ----------------------------------------------------

// Calibration images: training images, never the test set (the grader measures on that).
constexpr int64_t kCalibrationStart = 50000, kCalibrationCount = 2000, kCalibrationBatch = 250;

// Calibrates the dense VGG on training images (your Task 11), quantizes it (Task 12) and writes
// the integer-only model; the grader runs it with its own integer kernels on the test set.
void run_int8_vgg(const std::string& in_path, const std::string& out_path) {
  EFFML_CHECK(in_path == "none", "int8_vgg takes no inputs: pass 'none', not '" << in_path << "'");
  const auto start = std::chrono::steady_clock::now();
  const KMeansSettings settings = kmeans_settings();
  auto model = effml::load_model_checkpoint(settings.baseline);
  const effml::Dataset train_set = effml::load_fashion_mnist("train");
  const effml::Dataset calibration = train_set.subset(kCalibrationStart, kCalibrationCount);
  const std::vector<lab2::ActivationRange> ranges =
      lab2::calibrate_activation_ranges(*model, calibration.images, kCalibrationBatch);
  std::printf("calibrated on training images %lld-%lld:", static_cast<long long>(kCalibrationStart),
              static_cast<long long>(kCalibrationStart + kCalibrationCount - 1));
  for (const auto& r : ranges) std::printf(" [%.3f, %.3f]", r.min, r.max);
  std::printf("\n");
  const effml::QuantizedVgg q = lab2::quantize_vgg(*model, ranges);
  // The integer model reads raw pixels; the same calibration images, not normalised.
  const effml::Dataset raw = effml::load_fashion_mnist("train", effml::default_fashion_mnist_dir(),
                                                       false)
                                 .subset(kCalibrationStart, kCalibrationCount);
  std::printf("accuracy on those images: fp32 %.2f%%, integer-only %.2f%%; %.1f s\n",
              100.0 * effml::evaluate(*model, calibration).accuracy,
              100.0 * effml::quantized_accuracy(q, raw.images, raw.labels), seconds_since(start));
  effml::save_quantized_vgg(out_path, q, {{"lab", "lab2_quantization"}, {"task", "int8_vgg"}});
}

// ---- model task: quantization-aware training at 4 bits -----------------------------------------

// Fine-tuning with fake-quantized weights: SGD with momentum, cosine decay from a small rate.
constexpr int kQatBits = 4;
constexpr int kQatEpochs = 1;
constexpr float kQatLr = 0.001f;

// Quantization-aware training of every weight of two or more dimensions at 4 bits per output
// channel (your Task 14), activations and batch norm in float. Each weight keeps a float copy w;
// the model holds fake(w). After each optimizer step, the step it made on fake(w) is added to w
// (the straight-through estimator) and the model gets fake(w) again. Writes the model with
// fake-quantized weights: the grader checks their levels and compares its accuracy with the
// post-training quantization of the dense model at the same bits.
void run_qat_4bit(const std::string& in_path, const std::string& out_path) {
  EFFML_CHECK(in_path == "none", "qat_4bit takes no inputs: pass 'none', not '" << in_path << "'");
  const auto start = std::chrono::steady_clock::now();
  const KMeansSettings settings = kmeans_settings();
  auto model = effml::load_model_checkpoint(settings.baseline);
  const effml::Dataset train_set = effml::load_fashion_mnist("train");
  const effml::Dataset check_set = train_set.subset(kCheckStart, kCheckCount);
  struct Shadow {
    effml::Parameter* param;
    Tensor real;  // w, trained
    Tensor fake;  // fake(w), in the model
  };
  std::vector<Shadow> shadows;
  for (const auto& p : model->named_parameters()) {
    if (p.param->value.dim() < 2) continue;
    Shadow s{p.param, p.param->value, lab2::fake_quantize_weight_per_channel(p.param->value, kQatBits)};
    p.param->value.copy_(s.fake);
    shadows.push_back(std::move(s));
  }
  std::printf("accuracy on training images %lld-%lld with weights fake-quantized to %d bits "
              "(post-training): %.2f%%\n",
              static_cast<long long>(kCheckStart),
              static_cast<long long>(kCheckStart + kCheckCount - 1), kQatBits,
              100.0 * effml::evaluate(*model, check_set).accuracy);
  effml::TrainConfig config;
  config.epochs = kQatEpochs;
  config.optimizer = "sgd";
  config.lr = static_cast<float>(std::stod(effml::env_or("EFFML_LAB2_QAT_LR", std::to_string(kQatLr))));
  config.momentum = 0.9f;
  config.weight_decay = 0.0f;
  config.schedule = "cosine";
  config.seed = settings.seed;
  config.progress = false;
  effml::TrainHooks hooks;
  hooks.after_step = [&] {
    for (Shadow& s : shadows) {
      s.real.add_(s.param->value - s.fake);  // the optimizer's step, taken by w
      s.fake = lab2::fake_quantize_weight_per_channel(s.real, kQatBits);
      s.param->value.copy_(s.fake);
    }
  };
  const auto history = effml::train(*model, train_set, nullptr, config, hooks);
  std::printf("quantization-aware training, %d epoch(s) (SGD momentum 0.9, lr %.3g cosine, seed "
              "%llu): training accuracy %.2f%%, on training images %lld-%lld %.2f%%; %.1f s\n",
              kQatEpochs, config.lr, static_cast<unsigned long long>(settings.seed),
              100.0 * history.back().train_accuracy, static_cast<long long>(kCheckStart),
              static_cast<long long>(kCheckStart + kCheckCount - 1),
              100.0 * effml::evaluate(*model, check_set).accuracy, seconds_since(start));
  const auto meta = effml::read_metadata(settings.baseline);
  effml::save_checkpoint(out_path, *model,
                         {{"model", meta.at("model")},
                          {"lab", "lab2_quantization"},
                          {"task", "qat_4bit"},
                          {"bits", std::to_string(kQatBits)},
                          {"qat_epochs", std::to_string(kQatEpochs)},
                          {"qat_seed", std::to_string(settings.seed)}});
}

// ---- model task: Deep Compression of LeNet-300-100 ---------------------------------------------

// The pipeline's settings (Han et al. 2016 keep 8%, 9% and 26% of LeNet-300-100's three weights
// on MNIST; Fashion-MNIST is harder: 10%, 10% and 30% keep the loss within half a point).
struct DeepCompressionSettings {
  std::vector<double> sparsity = {0.90, 0.90, 0.70};  // fc1, fc2, fc3: fraction pruned
  int prune_epochs = 4;      // fine-tuning of the pruned model
  float prune_lr = 0.01f;    // SGD momentum 0.9, cosine
  int bits = 5;              // k-means codebook of 32 centroids per weight
  int kmeans_epochs = 1;     // tied fine-tuning of the codebooks
  float kmeans_lr = 1e-4f;   // plain SGD, constant
  int gap_bits = 5;          // gaps in [0, 32)
};

// For experiments (the grader never sets them): EFFML_LAB2_DC_SPARSITY "0.90,0.90,0.70",
// EFFML_LAB2_DC_EPOCHS (pruned fine-tuning), EFFML_LAB2_DC_BITS, EFFML_LAB2_DC_GAP_BITS,
// EFFML_LAB2_BASELINE_LENET (another dense LeNet-300-100), EFFML_LAB2_SEED.
DeepCompressionSettings deep_compression_settings() {
  DeepCompressionSettings d;
  const std::string sp = effml::env_or("EFFML_LAB2_DC_SPARSITY", "");
  if (!sp.empty()) {
    d.sparsity.clear();
    std::size_t at = 0;
    while (at <= sp.size()) {
      const std::size_t comma = std::min(sp.find(',', at), sp.size());
      d.sparsity.push_back(std::stod(sp.substr(at, comma - at)));
      at = comma + 1;
    }
  }
  d.prune_epochs = static_cast<int>(effml::env_uint("EFFML_LAB2_DC_EPOCHS", static_cast<uint64_t>(d.prune_epochs)));
  d.bits = static_cast<int>(effml::env_uint("EFFML_LAB2_DC_BITS", static_cast<uint64_t>(d.bits)));
  d.gap_bits = static_cast<int>(effml::env_uint("EFFML_LAB2_DC_GAP_BITS", static_cast<uint64_t>(d.gap_bits)));
  return d;
}

// Magnitude pruning as in Lab 1: the round(n * sparsity) smallest |w| become 0 (ties at the
// threshold pruned too). Returns the mask (1 kept, 0 pruned).
Tensor magnitude_prune(Tensor& w, double sparsity) {
  const int64_t n = w.numel();
  const auto zeros = static_cast<int64_t>(std::llround(static_cast<double>(n) * sparsity));
  Tensor mask = Tensor::ones(w.shape());
  if (zeros <= 0) return mask;
  std::vector<float> mags(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) mags[static_cast<std::size_t>(i)] = std::fabs(w[i]);
  std::nth_element(mags.begin(), mags.begin() + (zeros - 1), mags.end());
  const float threshold = mags[static_cast<std::size_t>(zeros - 1)];
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(w[i]) <= threshold) {
      mask[i] = 0.0f;
      w[i] = 0.0f;
    }
  }
  return mask;
}

// One weight through the pipeline: its parameter, mask, and the codebook of its kept values.
struct DcWeight {
  std::string name;
  effml::Parameter* param = nullptr;
  Tensor mask;
  std::vector<int64_t> kept;  // flat positions of the kept values, increasing
  lab2::Codebook codebook;    // labels (kept.size()): one per kept value
};

// The kept values of w, in position order.
Tensor gather(const Tensor& w, const std::vector<int64_t>& at) {
  Tensor v({static_cast<int64_t>(at.size())});
  for (std::size_t i = 0; i < at.size(); ++i) v[static_cast<int64_t>(i)] = w[at[i]];
  return v;
}

void scatter_codebook(DcWeight& d) {
  const Tensor values = lab2::dequantize(d.codebook);
  Tensor& w = d.param->value;
  w.zero_();
  for (std::size_t i = 0; i < d.kept.size(); ++i) w[d.kept[i]] = values[static_cast<int64_t>(i)];
}

// Deep Compression's three stages on the dense LeNet-300-100: prune and fine-tune with the masks;
// k-means of each weight's kept values (your Task 7) and tied fine-tuning of the codebooks
// (Task 9); then relative indices (Task 15) and Huffman code lengths (Task 16) for the two
// streams of each weight, written with effml::save_deep_compressed. The grader decodes the file,
// measures its size and the decoded model's accuracy.
void run_deep_compression(const std::string& in_path, const std::string& out_path) {
  EFFML_CHECK(in_path == "none",
              "deep_compression_lenet300 takes no inputs: pass 'none', not '" << in_path << "'");
  const auto start = std::chrono::steady_clock::now();
  const DeepCompressionSettings settings = deep_compression_settings();
  const uint64_t seed = effml::env_uint("EFFML_LAB2_SEED", 0);
  const std::string baseline = effml::env_or(
      "EFFML_LAB2_BASELINE_LENET", effml::lab_file("lab2_quantization", "lenet300_dense.safetensors"));
  auto model = effml::load_model_checkpoint(baseline);
  const effml::Dataset train_set = effml::load_fashion_mnist("train");
  const effml::Dataset check_set = train_set.subset(kCheckStart, kCheckCount);
  auto report = [&](const char* stage) {
    std::printf("%-34s accuracy on training images %lld-%lld %.2f%% (%.1f s)\n", stage,
                static_cast<long long>(kCheckStart),
                static_cast<long long>(kCheckStart + kCheckCount - 1),
                100.0 * effml::evaluate(*model, check_set).accuracy, seconds_since(start));
  };
  report("dense:");

  // 1. Pruning, fine-tuned with the masks re-applied after every step.
  std::vector<DcWeight> weights;
  for (const auto& p : model->named_parameters()) {
    if (p.param->value.dim() < 2) continue;
    EFFML_CHECK(weights.size() < settings.sparsity.size(),
                "deep_compression_lenet300: no sparsity for " << p.name);
    DcWeight d;
    d.name = p.name;
    d.param = p.param;
    d.mask = magnitude_prune(p.param->value, settings.sparsity[weights.size()]);
    weights.push_back(std::move(d));
  }
  report("pruned:");
  effml::TrainConfig config;
  config.epochs = settings.prune_epochs;
  config.optimizer = "sgd";
  config.lr = settings.prune_lr;
  config.momentum = 0.9f;
  config.weight_decay = 0.0f;
  config.schedule = "cosine";
  config.seed = seed;
  config.progress = false;
  effml::TrainHooks hooks;
  hooks.after_step = [&] {
    for (DcWeight& d : weights) d.param->value.mul_(d.mask);
  };
  if (settings.prune_epochs > 0) effml::train(*model, train_set, nullptr, config, hooks);
  report("pruned, fine-tuned:");

  // 2. k-means of the kept values, then tied fine-tuning of the codebooks.
  for (DcWeight& d : weights) {
    for (int64_t i = 0; i < d.mask.numel(); ++i) {
      if (d.mask[i] != 0.0f) d.kept.push_back(i);
    }
    EFFML_CHECK(!d.kept.empty(), "deep_compression_lenet300: " << d.name << " kept no value");
    d.codebook = lab2::k_means_quantize(gather(d.param->value, d.kept), settings.bits);
    scatter_codebook(d);
  }
  report("k-means:");
  config.epochs = settings.kmeans_epochs;
  config.lr = settings.kmeans_lr;
  config.momentum = 0.0f;
  config.schedule = "constant";
  hooks.after_step = [&] {
    for (DcWeight& d : weights) {
      lab2::codebook_gradient_step(d.codebook, gather(d.param->grad, d.kept), settings.kmeans_lr);
      scatter_codebook(d);
    }
  };
  effml::train(*model, train_set, nullptr, config, hooks);
  report("k-means, fine-tuned:");

  // 3. Entries and Huffman codes.
  effml::DeepCompressedModel out;
  for (DcWeight& d : weights) {
    const int32_t k = static_cast<int32_t>(d.codebook.centroids.numel());
    Tensor labels(d.param->value.shape(), DType::Int32);  // -1: pruned
    std::fill_n(labels.data_i32(), labels.numel(), -1);
    for (std::size_t i = 0; i < d.kept.size(); ++i) {
      labels.data_i32()[d.kept[i]] = d.codebook.labels.data_i32()[i];
    }
    const lab2::RelativeIndices r = lab2::relative_indices(labels, k, settings.gap_bits);
    effml::CompressedWeight c;
    c.name = d.name;
    c.shape = d.param->value.shape();
    c.centroids = d.codebook.centroids.to_vector();
    c.gap_bits = settings.gap_bits;
    c.gaps.assign(r.gaps.data_i32(), r.gaps.data_i32() + r.gaps.numel());
    c.symbols.assign(r.symbols.data_i32(), r.symbols.data_i32() + r.symbols.numel());
    std::vector<int64_t> gap_counts(static_cast<std::size_t>(1) << settings.gap_bits, 0);
    std::vector<int64_t> symbol_counts(static_cast<std::size_t>(k) + 1, 0);
    for (int32_t g : c.gaps) gap_counts.at(static_cast<std::size_t>(g)) += 1;
    for (int32_t v : c.symbols) symbol_counts.at(static_cast<std::size_t>(v)) += 1;
    c.gap_lengths = lab2::huffman_code_lengths(gap_counts);
    c.symbol_lengths = lab2::huffman_code_lengths(symbol_counts);
    std::printf("  %-11s kept %6zu of %6lld (%.1f%%), %lld entries, %d centroids\n",
                d.name.c_str(), d.kept.size(), static_cast<long long>(d.mask.numel()),
                100.0 * static_cast<double>(d.kept.size()) / static_cast<double>(d.mask.numel()),
                static_cast<long long>(c.gaps.size()), k);
    out.weights.push_back(std::move(c));
  }
  for (const auto& p : model->named_parameters()) {
    if (p.param->value.dim() < 2) out.raw.emplace_back(p.name, p.param->value);
  }
  out.metadata = {{"model", "lenet300"}, {"lab", "lab2_quantization"},
                  {"task", "deep_compression_lenet300"}};
  effml::save_deep_compressed(out_path, out);
  const effml::DeepCompressedSize size = effml::deep_compressed_size(out_path);
  const double dense = 4.0 * static_cast<double>(effml::count_parameters(*model));
  std::printf("file %llu bytes (%.1fx smaller than %.0f dense): gap streams %llu, symbol streams "
              "%llu, codebooks %llu, code tables %llu, biases %llu, header %llu; %.1f s\n",
              static_cast<unsigned long long>(size.total), dense / static_cast<double>(size.total),
              dense, static_cast<unsigned long long>(size.gap_stream),
              static_cast<unsigned long long>(size.symbol_stream),
              static_cast<unsigned long long>(size.codebooks),
              static_cast<unsigned long long>(size.code_tables),
              static_cast<unsigned long long>(size.raw),
              static_cast<unsigned long long>(size.header), seconds_since(start));
}

const std::map<std::string, effml::RunnerTask>& tasks() {
  static const std::map<std::string, effml::RunnerTask> table = {
      {"linear_quantize", {gen_linear_quantize, run_linear_quantize, nullptr, nullptr}},
      {"linear_quantize_ties", {gen_linear_quantize_ties, run_linear_quantize, nullptr, nullptr}},
      {"scale_zero_point", {gen_scale_zero_point, run_scale_zero_point, nullptr, nullptr}},
      {"weight_per_channel", {gen_weight_per_channel, run_weight_per_channel, nullptr, nullptr}},
      {"quantize_bias", {gen_quantize_bias, run_quantize_bias, nullptr, nullptr}},
      {"quantized_linear", {gen_quantized_linear, run_quantized_linear, nullptr, nullptr}},
      {"quantized_conv2d", {gen_quantized_conv2d, run_quantized_conv2d, nullptr, nullptr}},
      {"quantized_conv2d_padding",
       {gen_quantized_conv2d_padding, run_quantized_conv2d, nullptr, nullptr}},
      {"k_means_quantize", {gen_k_means_quantize, run_k_means_quantize, nullptr, nullptr}},
      {"k_means_quantize_large",
       {gen_k_means_quantize_large, run_k_means_quantize, nullptr, nullptr}},
      {"update_codebook", {gen_update_codebook, run_update_codebook, nullptr, nullptr}},
      {"codebook_gradient_step",
       {gen_codebook_gradient_step, run_codebook_gradient_step, nullptr, nullptr}},
      {"fold_conv_bn", {gen_fold_conv_bn, run_fold_conv_bn, nullptr, nullptr}},
      {"calibrate_activation_ranges", {gen_calibrate, run_calibrate, nullptr, nullptr}},
      {"input_quant_params", {gen_input_quant_params, run_input_quant_params, nullptr, nullptr}},
      {"quantize_vgg", {gen_quantize_vgg, run_quantize_vgg, nullptr, nullptr}},
      {"int8_vgg", {nullptr, nullptr, run_int8_vgg, nullptr}},
      {"fake_quantize", {gen_fake_quantize, run_fake_quantize, nullptr, nullptr}},
      {"fake_quantize_weight", {gen_weight_per_channel, run_fake_quantize_weight, nullptr, nullptr}},
      {"qat_4bit", {nullptr, nullptr, run_qat_4bit, nullptr}},
      {"relative_indices", {gen_relative_indices, run_relative_indices, nullptr, nullptr}},
      {"huffman_code_lengths",
       {gen_huffman_code_lengths, run_huffman_code_lengths, nullptr, nullptr}},
      {"deep_compression_lenet300", {nullptr, nullptr, run_deep_compression, nullptr}},
      {"kmeans_finetune_4bit", {nullptr, nullptr, run_kmeans_finetune_4bit, nullptr}},
      {"kmeans_finetune_2bit", {nullptr, nullptr, run_kmeans_finetune_2bit, nullptr}},
  };
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  return effml::run_lab_runner(argc, argv, "lab2_quantization", tasks());
}
