/// \file conv2d.h
/// \brief 2-D convolution, as torch.nn.Conv2d (square kernel, symmetric zero padding, groups).
#pragma once

#include <utility>
#include <vector>

#include "effml/module.h"

namespace effml {

/// 2-D convolution (cross-correlation, as in every deep learning library), as torch.nn.Conv2d.
///
/// Shapes: x (N, Cin, H, W), W (Cout, Cin/G, K, K), b (Cout), y (N, Cout, OH, OW) with
/// \f$ OH = \lfloor (H + 2P - K) / S \rfloor + 1 \f$ (the same for OW), where K is the kernel
/// size, S the stride, P the zero padding and G the number of groups. Output channel \f$ o \f$
/// belongs to group \f$ g = \lfloor o / (C_{out}/G) \rfloor \f$ and sees only the input channels
/// \f$ c \in [g\,C_{in}/G, (g+1)\,C_{in}/G) \f$:
/// \f[ y_{n,o,i,j} = b_o + \sum_{c'=0}^{C_{in}/G-1} \sum_{k_h, k_w}
///     W_{o,c',k_h,k_w}\; x_{n,\,g C_{in}/G + c',\; iS - P + k_h,\; jS - P + k_w} \f]
/// (x is zero outside the image).
///
/// With stride 1 (LeNet-5, VGG), the three products of a convolution run on a "wide" grid:
/// output (oh, ow) sits at position \f$ p = oh \cdot W_p + ow \f$ of a grid whose rows have the
/// padded input's width \f$ W_p = W + 2P \f$ (the last K - 1 positions of a row are scratch), so
/// that tap \f$ t = (c, k_h, k_w) \f$ reads the zero-padded input \f$ \tilde x \f$ at
/// \f$ p + \mathrm{off}_t \f$, \f$ \mathrm{off}_t = c H_p W_p + k_h W_p + k_w \f$:
/// \f[ y_{f,p} = \sum_t W_{f,t}\, \tilde x_{p + \mathrm{off}_t}, \qquad
///     dW_{f,t} \mathrel{+}= \sum_p dy_{f,p}\, \tilde x_{p + \mathrm{off}_t}, \qquad
///     d\tilde x_{p + \mathrm{off}_t} \mathrel{+}= \sum_f W_{f,t}\, dy_{f,p} \f]
/// (dy is zero at the scratch positions). These are the products of im2col, \f$ y = W \cdot
/// \mathrm{cols} \f$, with the column matrix \f$ \mathrm{cols}_{t,p} = \tilde x_{p +
/// \mathrm{off}_t} \f$ read in place instead of copied; each runs as register tiles (a block of
/// outputs held in SIMD registers while its whole sum streams through). When each output sums
/// many products, a SIMD vector's worth of samples is interleaved (each pixel holds one value
/// per sample), which leaves no scratch positions at all.
/// Other strides use im2col and a matrix product per sample and group: cols (Cin/G * K * K,
/// OH * OW) holds the receptive field of every output pixel in a column and
/// \f$ y_{n,g} = W_g \cdot \mathrm{cols} \f$; a 1x1 kernel with stride 1 and no padding uses the
/// input itself as cols. A depthwise convolution (Cin/G == 1) uses a direct loop, since its
/// products would be single rows. \f$ db_o \mathrel{+}= \sum_{n,i,j} dy_{n,o,i,j} \f$.
/// Samples of a large enough call are split over the core's threads in contiguous chunks; the
/// weight gradient is summed per thread and then in thread order, so results are deterministic
/// for a given thread count.
class Conv2d : public Module {
 public:
  /// Weights start at zero; call an initializer or load a checkpoint.
  /// Requires groups to divide both channel counts, kernel_size >= 1, stride >= 1, padding >= 0.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t groups = 1, bool bias = true);

  Tensor forward(const Tensor& x) override;
  /// The same; in training mode x itself is kept for backward instead of a copy.
  Tensor forward_owned(Tensor&& x) override;
  Tensor backward(const Tensor& dy) override;
  /// "Conv2d(1, 6, kernel_size=5, stride=1, padding=2)"; padding, groups and bias are named
  /// only when they differ from the defaults, as in PyTorch's repr.
  std::string describe() const override;
  /// (N, Cout, OH, OW); throws unless the input is (N, Cin, H, W) with H + 2P >= K and W + 2P >= K.
  Shape output_shape(const Shape& in) const override;
  /// \f$ N \cdot C_{out} \cdot OH \cdot OW \cdot (C_{in}/G) \cdot K^2 \f$ (the bias is not
  /// counted).
  int64_t macs(const Shape& in) const override;
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override;

  /// Whether forward_relu_pool runs for an input of shape `in` and this pool: the pool's 2x2
  /// window with stride 2 (MaxPool2d::fuses_relu), and a layer whose samples go one at a time
  /// through padded rows of two vectors (LeNet-5's first layer, 28 + 2 * 2 = 32 wide).
  bool fuses_relu_pool(const Shape& in, const MaxPool2d& pool) const;
  /// pool.forward(ReLU()(forward(x))) in one pass: each register tile's two output rows are
  /// rectified and pooled in registers, and the convolution's output is never written (1.2 MB
  /// per LeNet-5 batch of 64, written and read back by the pool). In training mode this layer
  /// keeps x and the pool its argmax with the ReLU's mask, as MaxPool2d::forward_relu, so that
  /// the pool's backward and then this layer's give the three layers' gradients. Sequential
  /// calls it for a Conv2d, a ReLU and a MaxPool2d in a row. Requires fuses_relu_pool.
  Tensor forward_relu_pool(const Tensor& x, MaxPool2d& pool);
  /// The same; in training mode x itself is kept for backward instead of a copy.
  Tensor forward_relu_pool(Tensor&& x, MaxPool2d& pool);

  int64_t in_channels() const { return in_; }    ///< Cin
  int64_t out_channels() const { return out_; }  ///< Cout
  int64_t kernel_size() const { return k_; }     ///< K
  int64_t stride() const { return stride_; }     ///< S
  int64_t padding() const { return pad_; }       ///< P
  int64_t groups() const { return groups_; }     ///< G
  bool has_bias() const { return has_bias_; }  ///< false when built with bias = false

  Parameter weight;  ///< (Cout, Cin/G, K, K)
  Parameter bias;    ///< (Cout); shape (0) when the layer has no bias

 private:
  int64_t in_, out_, k_, stride_, pad_, groups_;
  bool has_bias_;
  Tensor x_;  // input cached by a training-mode forward, (N, Cin, H, W)
  // y = conv(x) + b, without caching x; with a pool (fuses_relu_pool), pool(relu(y)) and the
  // pool's argmax instead.
  Tensor apply(const Tensor& x, MaxPool2d* pool = nullptr);
  // Work buffers, a few per thread (slots), kept from call to call so that a training loop does
  // not allocate (and fault in) them at every step; they only ever grow.
  std::vector<std::vector<float>> scratch_;
  // The weights as forward's kernels read them (pack_lanes_: G blocks of (T, F); pack_wide_: the
  // wide grid's (T, nr) blocks), each empty until needed, and a copy of the weights they were
  // made from: forward repacks only when the weights differ from that copy.
  std::vector<float> pack_source_, pack_lanes_, pack_wide_;
  // The tap offsets of one sample's block on the wide grid, for inputs of (H, W) = taps_hw_.
  std::vector<int64_t> taps1_;
  std::pair<int64_t, int64_t> taps_hw_{-1, -1};
  // Brings the packs forward needs (lanes, wide grid with tiles of nr rows) up to date with the
  // weights; only the wide lowering packs.
  void refresh_packs(bool wide_lowering, bool lanes, bool wide_blocks, int nr);
  // The buffer `slot` of thread `thread`, grown to at least n floats (its contents are whatever
  // the last call left).
  float* scratch(int thread, int slot, int64_t n);
};

}  // namespace effml
