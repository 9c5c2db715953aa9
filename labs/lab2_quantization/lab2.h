/// \file lab2.h
/// \brief Lab 2, part 1: the functions you write. Linear (affine) quantization of tensors,
/// per-channel weight scales, int32 biases, and integer-only linear and convolution layers
/// requantized by a fixed-point multiplier and shift (Tasks 1 to 6); k-means quantization with
/// a codebook of shared weights and its fine-tuning, as in Deep Compression (Tasks 7 to 9).
///
/// Terms used throughout:
///
/// | term        | meaning                                                                  |
/// |-------------|--------------------------------------------------------------------------|
/// | bits        | width \f$ b \f$ of the quantized integers                                 |
/// | range       | \f$ q_{min} = -2^{b-1} \f$, \f$ q_{max} = 2^{b-1} - 1 \f$ (signed)          |
/// | scale       | \f$ S > 0 \f$: one integer step in real units, \f$ r \approx S (q - Z) \f$ |
/// | zero point  | \f$ Z \f$: the integer that stands for the real value 0                   |
/// | round       | to nearest, halves to even (std::nearbyint, Tensor::round, torch.round)   |
///
/// Quantized values are stored in int8 tensors whatever \f$ b \f$ is (they lie in
/// \f$ [q_{min}, q_{max}] \f$); biases and accumulators are int32. Real values are float32 and
/// the float arithmetic of each function is spelled out, so that a correct answer matches the
/// reference bit for bit. The handout (README.md of this folder) has a worked example; see
/// \ref lab2_quantization "the lecture-companion page" for the derivations.
#pragma once

#include <cstdint>
#include <vector>

#include "effml/huffman.h"
#include "effml/module.h"
#include "effml/quantized.h"
#include "effml/tensor.h"

/// \brief Lab 2 (quantization): the functions students implement.
namespace lab2 {

using effml::Tensor;

/// Smallest value of a signed `bits`-bit integer, \f$ -2^{b-1} \f$.
/// \throws effml::Error naming `bits` unless it is in [1, 8]
int32_t qmin_of(int bits);

/// Largest value of a signed `bits`-bit integer, \f$ 2^{b-1} - 1 \f$.
/// \throws effml::Error naming `bits` unless it is in [1, 8]
int32_t qmax_of(int bits);

// ---- Task 1 ------------------------------------------------------------------------------------

/// **Task 1.** Linear quantization of a real tensor with a given scale and zero point:
/// \f[ q = \mathrm{clamp}\left(\mathrm{round}\left(\frac{r}{S}\right) + Z,\ q_{min},\ q_{max}\right) \f]
///
/// The division is float32 (`r[k] / scale`), rounded with std::nearbyint (halves to even: 2.5
/// gives 2, -0.5 gives -0), then \f$ Z \f$ is added in integer arithmetic and the sum clamped.
///
/// \param r          any shape, float32, every value finite
/// \param bits       \f$ b \f$ in [1, 8]
/// \param scale      \f$ S \f$ > 0 and finite
/// \param zero_point \f$ Z \f$, any int32 (the clamp keeps the result in range)
/// \returns int8, the shape of `r`
/// \throws effml::Error naming the value when `bits` or `scale` is out of range, when `r` is
///         not float32 or holds a NaN or an infinity
Tensor linear_quantize(const Tensor& r, int bits, float scale, int32_t zero_point);

// ---- Task 2 ------------------------------------------------------------------------------------

/// Scale and zero point of an asymmetric linear quantization.
struct QuantParams {
  float scale = 1.0f;      ///< \f$ S \f$ > 0
  int32_t zero_point = 0;  ///< \f$ Z \f$ in \f$ [q_{min}, q_{max}] \f$
};

/// **Task 2.** Asymmetric scale and zero point that map the range of `r` onto the integers:
/// with \f$ r_{min} \f$ and \f$ r_{max} \f$ the smallest and largest values of `r`,
/// \f[ S = \frac{r_{max} - r_{min}}{q_{max} - q_{min}}, \qquad
///     Z = \mathrm{clamp}\left(\mathrm{round}\left(q_{min} - \frac{r_{min}}{S}\right),
///         \ q_{min},\ q_{max}\right) \f]
///
/// Arithmetic: \f$ S \f$ and \f$ Z \f$ are computed in double from the float32 \f$ r_{min} \f$,
/// \f$ r_{max} \f$ (\f$ Z \f$ from the double \f$ S \f$, rounded with std::nearbyint); the
/// returned scale is that double \f$ S \f$ converted to float.
///
/// A constant tensor (\f$ r_{min} = r_{max} = c \f$) has no range to spread. Its range is then
/// widened to include 0, \f$ [\min(c, 0), \max(c, 0)] \f$, and the formulas above applied: a
/// positive \f$ c \f$ gets \f$ Z = q_{min} \f$ and quantizes to \f$ q_{max} \f$, a negative one
/// \f$ Z = q_{max} \f$ and \f$ q_{min} \f$, both exact. A tensor of zeros gets \f$ S = 1 \f$,
/// \f$ Z = 0 \f$.
///
/// \param r    any shape, float32, at least one value, every value finite
/// \param bits \f$ b \f$ in [1, 8]
/// \throws effml::Error naming the value when `bits` is out of range, `r` is empty, not
///         float32 or holds a NaN or an infinity
QuantParams get_quantization_scale_and_zero_point(const Tensor& r, int bits);

// ---- Task 3 ------------------------------------------------------------------------------------

/// A weight quantized with one scale per output channel.
struct PerChannelQuantized {
  Tensor q;       ///< int8, the weight's shape
  Tensor scales;  ///< float32, (Cout): one scale per output channel (dimension 0)
};

/// **Task 3.** Symmetric per-output-channel quantization of a weight (zero point 0). For each
/// output channel \f$ c \f$ (index of dimension 0):
/// \f[ S_c = \frac{\max |w_c|}{q_{max}}, \qquad q_c = \mathrm{clamp}(\mathrm{round}(w_c / S_c),\ q_{min},\ q_{max}) \f]
/// that is, `linear_quantize(w_c, bits, S_c, 0)`. \f$ S_c \f$ is computed in float32
/// (`max_abs / static_cast<float>(qmax)`). A channel whose values are all 0 gets
/// \f$ S_c = 1 \f$ (and quantizes to 0).
///
/// \param w    (Cout, ...) with at least 2 dimensions: a linear (O, I) or conv (O, I, K, K)
///             weight, float32, every value finite
/// \param bits \f$ b \f$ in [2, 8] (1 bit leaves \f$ q_{max} = 0 \f$: no symmetric range)
/// \throws effml::Error naming the shape or the value otherwise
PerChannelQuantized linear_quantize_weight_per_channel(const Tensor& w, int bits);

// ---- Task 4 ------------------------------------------------------------------------------------

/// **Task 4.** Bias of a quantized layer, in the scale of its int32 accumulator:
/// \f[ q_b[c] = \mathrm{round}\left(\frac{b[c]}{S_w[c] \cdot S_x}\right), \qquad Z_b = 0 \f]
///
/// Arithmetic: float32, `bias[c] / (weight_scales[c] * input_scale)`, rounded with
/// std::nearbyint; a result outside the int32 range saturates to it.
///
/// \param bias          (Cout), float32
/// \param weight_scales (Cout), float32, each > 0 (Task 3's scales)
/// \param input_scale   \f$ S_x \f$ > 0, the input activation's scale
/// \returns int32 (Cout)
/// \throws effml::Error naming the shapes or the value otherwise
Tensor quantize_bias(const Tensor& bias, const Tensor& weight_scales, float input_scale);

// ---- Task 5 ------------------------------------------------------------------------------------

/// A real multiplier \f$ M \f$ written as \f$ M = M_0 \cdot 2^{-31} \cdot 2^{-n} \f$ with an
/// int32 \f$ M_0 \f$ and a right shift \f$ n \f$.
struct QuantizedMultiplier {
  int32_t multiplier = 0;  ///< \f$ M_0 \f$, in \f$ [2^{30}, 2^{31}) \f$ (0 when \f$ M = 0 \f$)
  int32_t shift = 0;       ///< \f$ n \f$ >= 0, a right shift
};

/// Given code (not a task). Writes \f$ M \f$ in [0, 1) as a fixed-point multiplier and a right
/// shift, as TFLite's QuantizeMultiplier: \f$ M = f \cdot 2^{e} \f$ with \f$ f \f$ in
/// [0.5, 1) (std::frexp), \f$ M_0 = \mathrm{round}(f \cdot 2^{31}) \f$ (std::llround: halves
/// away from zero), \f$ n = -e \f$. When \f$ M_0 \f$ rounds up to \f$ 2^{31} \f$ it becomes
/// \f$ 2^{30} \f$ and \f$ n \f$ decreases by one; \f$ M \f$ so close to 1 that \f$ n \f$ would
/// become -1 saturates to \f$ M_0 = 2^{31} - 1 \f$, \f$ n = 0 \f$. When \f$ n \f$ > 31,
/// \f$ M \f$ is below \f$ 2^{-32} \f$ and rounds to \f$ M_0 = 0 \f$, \f$ n = 0 \f$.
/// \throws effml::Error naming the value unless \f$ M \f$ is in [0, 1)
QuantizedMultiplier quantize_multiplier(double real_multiplier);

/// **Task 5 (a).** Multiplies an int32 accumulator by \f$ M_0 \cdot 2^{-31} \cdot 2^{-n} \f$
/// and rounds, in integers only, exactly as TFLite's MultiplyByQuantizedMultiplier (gemmlowp):
///
/// 1. *saturating rounding doubling high multiply*: with \f$ p = a \cdot M_0 \f$ in int64,
///    \f$ h = \mathrm{trunc}((p + \nu) / 2^{31}) \f$ where \f$ \nu = 2^{30} \f$ if
///    \f$ p \ge 0 \f$ and \f$ 1 - 2^{30} \f$ otherwise (C++ integer division, which truncates
///    toward zero): \f$ p / 2^{31} \f$ rounded to nearest, halves up (toward
///    \f$ +\infty \f$: 1.5 gives 2 and -1.5 gives -1, because of the 1 in the negative
///    nudge). The single
///    case \f$ a = M_0 = -2^{31} \f$ saturates to \f$ 2^{31} - 1 \f$ (never met here, as
///    \f$ M_0 \ge 0 \f$).
/// 2. *rounding divide by a power of two*: \f$ h / 2^{n} \f$ rounded to nearest, halves away
///    from zero: with \f$ m = 2^n - 1 \f$, remainder \f$ \rho = h \,\&\, m \f$, threshold
///    \f$ \tau = \lfloor m / 2 \rfloor + [h < 0] \f$, the result is
///    \f$ (h \gg n) + [\rho > \tau] \f$ (an arithmetic shift, which floors).
///
/// No floating point. Examples: \f$ a = 1000 \f$, \f$ M = 0.3 \f$ (\f$ M_0 = 1288490189 \f$,
/// \f$ n = 1 \f$): \f$ h = 600 \f$, result 300. \f$ a = -6 \f$, \f$ M = 0.25 \f$
/// (\f$ M_0 = 2^{30} \f$, \f$ n = 1 \f$): \f$ h = -3 \f$, result -2 (-1.5 away from zero).
///
/// \param acc        \f$ a \f$, any int32
/// \param multiplier \f$ M_0 \f$ >= 0
/// \param shift      \f$ n \f$ in [0, 31]
/// \throws effml::Error naming the value when `multiplier` or `shift` is out of range
int32_t multiply_by_quantized_multiplier(int32_t acc, int32_t multiplier, int32_t shift);

/// **Task 5 (b).** Integer-only linear layer. For sample \f$ i \f$ and output \f$ o \f$, in
/// int32:
/// \f[ a_{io} = q_b[o] + \sum_j (x_{ij} - Z_x)\, w_{oj}, \qquad
///     y_{io} = \mathrm{clamp}(\mathrm{mbqm}(a_{io}, M_0[o], n[o]) + Z_y,\ -128,\ 127) \f]
/// where mbqm is multiply_by_quantized_multiplier(). The weight's zero point is 0 (Task 3).
/// With real scales \f$ S_x \f$, \f$ S_w[o] \f$, \f$ S_y \f$ the multiplier of output \f$ o \f$
/// stands for \f$ S_x S_w[o] / S_y \f$ (quantize_multiplier()). No floating point. Inputs
/// whose accumulator leaves the int32 range are outside this contract.
///
/// \param x_q          int8 (N, I)
/// \param w_q          int8 (O, I)
/// \param bias_q       int32 (O) (Task 4)
/// \param x_zero_point \f$ Z_x \f$ in [-128, 127]
/// \param y_zero_point \f$ Z_y \f$ in [-128, 127]
/// \param multiplier   int32 (O): \f$ M_0 \f$ of each output, each >= 0
/// \param shift        int32 (O): \f$ n \f$ of each output, each in [0, 31]
/// \returns int8 (N, O)
/// \throws effml::Error naming the shapes, dtypes or values otherwise
Tensor quantized_linear(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift);

// ---- Task 6 ------------------------------------------------------------------------------------

/// **Task 6.** Integer-only 2-D convolution (groups 1), requantized as in Task 5. The input is
/// padded by `padding` positions on each side of H and W, and **a padded position holds the
/// value \f$ Z_x \f$** (the integer that stands for the real 0), so it adds nothing to
/// \f$ \sum (x - Z_x)\, w \f$. With
/// \f$ H_o = \lfloor (H + 2p - K_h) / s \rfloor + 1 \f$ (and \f$ W_o \f$ likewise), in int32:
/// \f[ a_{n,o,h,w} = q_b[o] + \sum_{c,i,j} (x_{n,c,hs+i-p,ws+j-p} - Z_x)\, w_{o,c,i,j} \f]
/// then \f$ y = \mathrm{clamp}(\mathrm{mbqm}(a, M_0[o], n[o]) + Z_y, -128, 127) \f$.
///
/// \param x_q          int8 (N, C, H, W)
/// \param w_q          int8 (Cout, C, Kh, Kw)
/// \param bias_q       int32 (Cout)
/// \param x_zero_point \f$ Z_x \f$ in [-128, 127]
/// \param y_zero_point \f$ Z_y \f$ in [-128, 127]
/// \param multiplier   int32 (Cout), each >= 0
/// \param shift        int32 (Cout), each in [0, 31]
/// \param stride       \f$ s \f$ >= 1
/// \param padding      \f$ p \f$ >= 0
/// \returns int8 (N, Cout, Ho, Wo)
/// \throws effml::Error naming the shapes, dtypes or values otherwise (an output of no
///         position included)
Tensor quantized_conv2d(const Tensor& x_q, const Tensor& w_q, const Tensor& bias_q,
                        int32_t x_zero_point, int32_t y_zero_point, const Tensor& multiplier,
                        const Tensor& shift, int64_t stride, int64_t padding);

// ---- Tasks 7 to 9: k-means quantization -------------------------------------------------------

/// A weight quantized by k-means: every value is replaced by one of \f$ k \f$ shared real
/// values (the codebook), so only a \f$ \log_2 k \f$-bit index per value and the \f$ k \f$
/// centroids are stored.
struct Codebook {
  Tensor centroids;  ///< float32, (k): the shared values
  Tensor labels;     ///< int32, the weight's shape: the index in [0, k) of each value's centroid
};

/// Given code (not a task). The weight a codebook stands for:
/// \f$ \hat w[i] = c[\mathrm{labels}[i]] \f$.
/// \returns float32, the shape of `codebook.labels`
/// \throws effml::Error naming the shape, dtype or value when `centroids` is not a float32
///         vector of at least one value, `labels` not int32, or a label outside [0, k)
Tensor dequantize(const Codebook& codebook);

/// **Task 7.** k-means quantization of a weight to \f$ k = 2^b \f$ clusters (Deep
/// Compression, Han et al. 2016), by Lloyd's algorithm in one dimension. Every rule below is
/// part of the contract, so that a correct answer matches the reference exactly:
///
/// - **Initialisation** (linear, the one Deep Compression recommends): with \f$ w_{min} \f$,
///   \f$ w_{max} \f$ the smallest and largest values,
///   \f$ c_j = w_{min} + j\, (w_{max} - w_{min}) / (k - 1) \f$ for \f$ j = 0, \dots, k - 1 \f$,
///   computed in double from the float32 \f$ w_{min} \f$, \f$ w_{max} \f$ and stored as float.
/// - **Assignment**: each value goes to the nearest centroid, the distance being
///   \f$ |w_i - c_j| \f$ computed in double (`std::fabs(double(w) - double(c))`); on a tie
///   the *lowest* index wins.
/// - **Update**: each centroid becomes the mean of the values assigned to it, summed in double
///   in increasing index order (the row-major order of `w`), divided by their count in double,
///   and stored as float. A centroid to which no value is assigned (an empty cluster) keeps its
///   value.
/// - **Iterations**: assign once; then repeat at most 50 times: update, assign again, and stop
///   as soon as no label changed. So the returned labels are always the nearest centroids of
///   the returned centroids, and, when the loop stopped before its 50th update, each non-empty
///   centroid is the mean of its cluster.
///
/// A constant weight (\f$ w_{min} = w_{max} = v \f$) gets \f$ k \f$ centroids equal to
/// \f$ v \f$ and every label 0 (the ties go to index 0), as the rules above give. Example: 1 bit
/// on {0, 1, 9, 10}: \f$ c = (0, 10) \f$, labels (0, 0, 1, 1), update \f$ c = (0.5, 9.5) \f$,
/// no label changes: the result.
///
/// \param w    any shape, float32, at least one value, every value finite
/// \param bits \f$ b \f$ in [1, 8] (2 to 256 centroids)
/// \returns centroids float32 (\f$ 2^b \f$), labels int32 of the shape of `w`
/// \throws effml::Error naming the value when `bits` is out of range, `w` is empty, not float32
///         or holds a NaN or an infinity
Codebook k_means_quantize(const Tensor& w, int bits);

/// **Task 8.** Re-centres a codebook on a weight that moved (a step of k-means fine-tuning, and
/// the update step of Task 7): for every \f$ j \f$ with at least one value labelled \f$ j \f$,
/// \f[ c_j = \frac{1}{|\{i : \ell_i = j\}|} \sum_{i : \ell_i = j} w_i \f]
/// summed in double in increasing index order, divided in double, stored as float. A centroid
/// with no value labelled with it keeps its value. The labels do not change.
///
/// \param w        float32, the shape of `codebook.labels`, every value finite
/// \param codebook centroids float32 (k), k >= 1; labels int32 in [0, k); its centroids are
///                 overwritten
/// \throws effml::Error naming the shapes, dtypes or value otherwise
void update_codebook(const Tensor& w, Codebook& codebook);

/// **Task 9.** One step of gradient descent on the shared weights (Deep Compression's
/// fine-tuning of tied weights). The weights labelled \f$ j \f$ are all the same parameter
/// \f$ c_j \f$, so its gradient is the sum of theirs:
/// \f[ c_j \leftarrow c_j - \eta \sum_{i : \ell_i = j} \frac{\partial L}{\partial \hat w_i} \f]
/// The sum is in double in increasing index order; the new centroid is
/// `static_cast<float>(double(c_j) - double(lr) * sum)`. A centroid with no value labelled with
/// it has a sum of 0 and does not move. The labels do not change.
///
/// \param codebook centroids float32 (k), k >= 1; labels int32 in [0, k); its centroids are
///                 overwritten
/// \param grad     float32, the shape of `codebook.labels`: \f$ \partial L / \partial \hat w \f$
///                 of the dequantized weight, every value finite
/// \param lr       \f$ \eta \f$, finite
/// \throws effml::Error naming the shapes, dtypes or value otherwise
void codebook_gradient_step(Codebook& codebook, const Tensor& grad, float lr);

// ---- Part 2: the whole CNN integer-only (Tasks 10 to 12) ---------------------------------------

/// A convolution with its batch norm folded in: a conv with a bias.
struct FoldedConv {
  Tensor weight;  ///< float32, the conv weight's shape (Cout, Cin, K, K)
  Tensor bias;    ///< float32 (Cout)
};

/// **Task 10.** Folds an evaluation-mode batch norm into the convolution before it. The batch
/// norm computes \f$ y = \gamma (z - \bar\mu) / \sqrt{\bar\sigma^2 + \epsilon} + \beta \f$ of
/// the conv's output \f$ z = w * x \f$ (the VGG's convs have no bias), which is the conv with
/// \f[ s_c = \frac{\gamma_c}{\sqrt{\bar\sigma^2_c + \epsilon}}, \qquad w'_c = s_c\, w_c,
///     \qquad b'_c = \beta_c - \bar\mu_c\, s_c \f]
/// Arithmetic, float32 throughout: `s = gamma[c] / std::sqrt(running_var[c] + eps)`,
/// `w'[c, ...] = w[c, ...] * s`, `b'[c] = beta[c] - running_mean[c] * s`.
///
/// \param conv_weight  float32 (Cout, Cin, K, K)
/// \param gamma        float32 (Cout): the batch norm's weight
/// \param beta         float32 (Cout): the batch norm's bias
/// \param running_mean float32 (Cout)
/// \param running_var  float32 (Cout), each >= 0
/// \param eps          \f$ \epsilon \f$ > 0
/// \throws effml::Error naming the shapes or the value otherwise
FoldedConv fold_conv_bn(const Tensor& conv_weight, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var, float eps);

/// The smallest and largest value a tensor took during calibration.
struct ActivationRange {
  float min = 0.0f;  ///< smallest value seen
  float max = 0.0f;  ///< largest value seen
};

/// **Task 11.** Calibration: the range of every activation that the integer-only model will
/// quantize, measured on calibration images. For a VGG of effml::make_vgg(cfg) (modules
/// `features`, `flatten`, `classifier`; `features` holds Conv2d, BatchNorm2d, ReLU blocks and
/// MaxPool2d layers) in **evaluation mode** (set it; batch norm must use its running
/// statistics), the images are run through the model `batch_size` at a time, layer by layer,
/// and the result holds, in order:
///
/// - for each conv block, the range of its **ReLU's output** (the block's output: what the next
///   layer reads; a max-pool does not change the range it has to represent);
/// - last, the range of the classifier's output (the logits).
///
/// So a VGG with \f$ B \f$ conv blocks gives \f$ B + 1 \f$ ranges. The minimum and maximum
/// are over every image, channel and position. The input's range is not calibrated: it is fixed
/// by the preprocessing (input_quant_params()).
///
/// \param vgg        a VGG as effml::make_vgg builds it (left in evaluation mode)
/// \param images     float32 (N, 1, 28, 28), normalised as the model was trained, N >= 1
/// \param batch_size images per forward pass, >= 1 (the last batch may be smaller)
/// \throws effml::Error naming the shape or the value otherwise
std::vector<ActivationRange> calibrate_activation_ranges(effml::Sequential& vgg,
                                                         const Tensor& images,
                                                         int64_t batch_size);

/// **Task 12 (a).** Input preprocessing. The integer model reads each pixel \f$ p \in [0, 255] \f$
/// as the int8 \f$ q = p - 128 \f$ (effml::pixels_to_int8: no arithmetic beyond a
/// subtraction). The fp32 model reads \f$ x = (p / 255 - \mu) / \sigma \f$. Find the scale and
/// zero point for which \f$ S (q - Z) \approx x \f$:
/// \f[ S = \frac{1}{255\,\sigma}, \qquad Z = \mathrm{round}(255\,\mu - 128) \f]
/// (exact but for the rounding of \f$ Z \f$). Arithmetic: in double from the float arguments,
/// \f$ Z \f$ rounded with std::nearbyint; the returned scale is converted to float.
///
/// \param mean \f$ \mu \f$, the normalisation's mean, in [0, 1]
/// \param std  \f$ \sigma \f$ > 0
/// \throws effml::Error naming the value otherwise, or when \f$ Z \f$ falls outside [-128, 127]
QuantParams input_quant_params(float mean, float std);

/// **Task 12 (b).** Builds the integer-only model (effml::QuantizedVgg, whose header
/// describes the integer arithmetic the grader runs) from a trained VGG and its calibrated
/// ranges. For conv block \f$ j \f$ (conv at `features.<i>`, batch norm at `features.<i+1>`):
///
/// 1. fold the batch norm (Task 10, with the batch norm's eps);
/// 2. quantize the folded weight to 8 bits per output channel (Task 3): \f$ q_w \f$, \f$ S_w \f$;
/// 3. the input's scale and zero point: for block 0 `input_quant_params(kFashionMnistMean,
///    kFashionMnistStd)`, for block \f$ j > 0 \f$ the output ones of block \f$ j - 1 \f$ (the
///    pool between them changes neither);
/// 4. the output's: Task 2 at 8 bits on the float32 tensor {min(lo, 0), max(hi, 0)} of
///    `ranges[j]` = {lo, hi} (widened to include 0, so that the real 0, a ReLU's output and the
///    padding, has an exact integer: after a ReLU that zero point is -128);
/// 5. the bias: Task 4 with \f$ S_w \f$ and the input's scale;
/// 6. each output channel's multiplier: quantize_multiplier() of
///    `double(S_x) * double(S_w[o]) / double(S_y)`.
///
/// The classifier is quantized the same way (no folding: it has its own bias), its input being
/// the last block's output and its output range `ranges.back()`. Layer names are `features.<i>`
/// (the conv's index in `features`) and `classifier`; `cfg` is effml::vgg_config(vgg); the
/// scales are filled in too (`weight_scale` = \f$ S_w \f$, `input_scale`, `output_scale`).
///
/// \param vgg    a trained VGG of effml::make_vgg (not modified)
/// \param ranges Task 11's ranges for it: one per conv block, then the logits'
/// \throws effml::Error naming the layer when the ranges do not match the model, or a
///         multiplier is not below 1 (which a channel of all-zero folded weights, a pruned
///         filter or \f$ \gamma = 0 \f$, can cause: Task 3 gives it \f$ S_w = 1 \f$; the
///         lab's models have none)
effml::QuantizedVgg quantize_vgg(effml::Sequential& vgg, const std::vector<ActivationRange>& ranges);

// ---- Part 3: quantization-aware training (Tasks 13 and 14) -------------------------------------

/// **Task 13 (a).** Fake quantization: quantize and dequantize in one step, so that training in
/// float sees the rounding error the quantized model will have:
/// \f[ \hat r = S\,(q - Z), \qquad q = \text{linear\_quantize}(r, b, S, Z) \f]
/// Arithmetic: \f$ q - Z \f$ in int64 (Z may be any int32), converted to float and multiplied
/// by `scale` in float32.
/// \param r          any shape, float32, every value finite
/// \param bits       \f$ b \f$ in [1, 8]
/// \param scale      \f$ S \f$ > 0 and finite
/// \param zero_point \f$ Z \f$, any int32
/// \returns float32, the shape of `r`
/// \throws effml::Error as linear_quantize()
Tensor fake_quantize(const Tensor& r, int bits, float scale, int32_t zero_point);

/// **Task 13 (b).** The straight-through estimator (Bengio et al. 2013) of fake quantization's
/// gradient. Rounding has a zero derivative almost everywhere, which would stop all learning;
/// the estimator treats it as the identity, and keeps only the clamp's derivative:
/// \f[ \frac{\partial L}{\partial r} = \frac{\partial L}{\partial \hat r} \cdot
///     [\, q_{min} \le \mathrm{round}(r / S) + Z \le q_{max} \,] \f]
/// (the same float32 division and std::nearbyint as Task 1, before the clamp): the gradient
/// passes where the value was not clamped and is 0 where it was.
/// \param grad       float32, the shape of `r`: \f$ \partial L / \partial \hat r \f$
/// \param r          the input of fake_quantize(), float32, every value finite
/// \param bits       \f$ b \f$ in [1, 8]
/// \param scale      \f$ S \f$ > 0 and finite
/// \param zero_point \f$ Z \f$, any int32
/// \returns float32, the shape of `r`
/// \throws effml::Error naming the shapes, or as linear_quantize()
Tensor fake_quantize_grad(const Tensor& grad, const Tensor& r, int bits, float scale,
                          int32_t zero_point);

/// **Task 14.** Fake quantization of a weight per output channel: Task 3's symmetric
/// quantization, dequantized: channel \f$ c \f$ becomes
/// `fake_quantize(w_c, bits, S_c, 0)` with \f$ S_c \f$ from Task 3 (the same float32 values).
/// The quantization-aware training of this lab's model task keeps a float copy of each weight,
/// runs forward and backward on its fake-quantized version, and adds the optimizer's update to
/// the float copy (the straight-through estimator: inside the range, which for these symmetric
/// scales is every value, the gradient passes unchanged).
/// \param w    (Cout, ...) with at least 2 dimensions, float32, every value finite
/// \param bits \f$ b \f$ in [2, 8]
/// \returns float32, the shape of `w`: at most \f$ 2^b \f$ distinct values per channel
/// \throws effml::Error as linear_quantize_weight_per_channel()
Tensor fake_quantize_weight_per_channel(const Tensor& w, int bits);

// ---- Part 4: Deep Compression storage (Tasks 15 and 16) ----------------------------------------

/// The two entry streams of a pruned, k-means-quantized weight (effml/deep_compression.h).
struct RelativeIndices {
  Tensor gaps;     ///< int32 (E): zeros skipped before each entry, each in \f$ [0, G) \f$
  Tensor symbols;  ///< int32 (E): each entry's centroid index, or \f$ k \f$ for a filler
};

/// **Task 15.** Relative indexing (Deep Compression, section 3): instead of each non-zero's
/// position, store the number of zeros since the previous stored entry, in a small alphabet of
/// \f$ G = 2^{g} \f$ gaps. Walking `labels` in row-major order with `last` = -1, for each kept
/// position \f$ p \f$ (label >= 0), in order:
///
/// 1. while \f$ p - \mathrm{last} - 1 > G - 1 \f$ (the gap does not fit): emit a *filler*
///    entry (gap \f$ G - 1 \f$, symbol \f$ k \f$), which stands for a stored zero at position
///    \f$ \mathrm{last} + G \f$, and set last to that position;
/// 2. emit (gap \f$ p - \mathrm{last} - 1 \f$, symbol labels[p]) and set last = \f$ p \f$.
///
/// Zeros after the last kept position need no entry. Example, \f$ G = 4 \f$ (g = 2), k = 2,
/// labels {-1, 1, -1, -1, -1, -1, -1, -1, -1, 0}: entries (1, 1), (3, 2) (a filler at position
/// 5), (3, 0) at position 9.
///
/// \param labels   int32, any shape: -1 where the weight was pruned, else its centroid index in
///                  \f$ [0, k) \f$
/// \param k        codebook size, >= 1
/// \param gap_bits \f$ g \f$ in [1, 8]
/// \throws effml::Error naming the value when a label is outside \f$ [-1, k) \f$, `k` < 1 or
///         `gap_bits` out of range
RelativeIndices relative_indices(const Tensor& labels, int32_t k, int gap_bits);

/// **Task 16.** Huffman code lengths (Huffman 1952) of an alphabet with the given symbol counts:
/// an optimal prefix code, so \f$ \sum_s \mathrm{counts}[s] \cdot \mathrm{length}[s] \f$ is the
/// fewest bits that code the stream symbol by symbol. Many codes are optimal; so that the answer
/// is unique, build the tree with **two queues**:
///
/// - the *leaf queue* holds the symbols of count > 0 sorted by (count, symbol index), smallest
///   first; the *node queue* starts empty;
/// - while more than one tree remains: take the smaller front of the two queues (by count; on a
///   tie, the **leaf** queue's), then again the smaller front, and append a node of the two
///   counts' sum to the back of the node queue;
/// - each symbol's length is its leaf's depth in the final tree.
///
/// A symbol of count 0 gets length 0 (no code). A single symbol of count > 0 gets length 1; no
/// symbol of count > 0 gives all lengths 0. Example: counts {5, 1, 1, 2} give lengths
/// {1, 3, 3, 2}.
///
/// \param counts each >= 0, at most 2^40 in all, at most 65,536 symbols
/// \returns one length per symbol, in the order of `counts`
/// \throws effml::Error naming the value for a negative count, too many symbols, counts that sum
///         to more than 2^40, or a length above effml::kMaxCodeLength (24), which needs a total
///         count of at least 196,418 (the Fibonacci number F(27))
std::vector<uint8_t> huffman_code_lengths(const std::vector<int64_t>& counts);

}  // namespace lab2
