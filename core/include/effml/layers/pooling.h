/// \file pooling.h
/// \brief Max, average and global average pooling over (N, C, H, W), as torch.nn's.
#pragma once

#include <cstdint>
#include <vector>

#include "effml/module.h"

namespace effml {

/// Max pooling with a square window, as torch.nn.MaxPool2d (dilation 1, ceil_mode false).
///
/// Shapes: x (N, C, H, W), y (N, C, OH, OW) with \f$ OH = \lfloor (H + 2P - K)/S \rfloor + 1 \f$
/// (the same for OW); the padding counts as \f$ -\infty \f$, so it is never the maximum.
/// \f$ y_{n,c,i,j} = \max_{k_h, k_w} x_{n,c,\,iS - P + k_h,\,jS - P + k_w} \f$.
/// Backward routes each \f$ dy \f$ to the position of its window's maximum; when a window holds
/// equal maxima, the first in row-major window order gets it. Overlapping windows add up.
class MaxPool2d : public Module {
 public:
  /// stride = -1 means stride = kernel_size, as PyTorch's default. Requires padding <= K/2.
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0);

  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  /// "MaxPool2d(kernel_size=2, stride=2)"; padding is named when non-zero.
  std::string describe() const override;
  /// (N, C, OH, OW); throws unless the input is 4-D and at least the kernel with padding.
  Shape output_shape(const Shape& in) const override;

  int64_t kernel_size() const { return k_; }  ///< K
  int64_t stride() const { return stride_; }  ///< S
  int64_t padding() const { return pad_; }    ///< P

  /// Whether forward_relu runs: the 2x2 window with stride 2 and no padding, in a build with
  /// AVX-512.
  bool fuses_relu() const;
  /// forward(ReLU()(x)) in one pass over x, and in training mode the state for a backward that
  /// returns the gradient through both, the ReLU's mask applied: the same y and dx, bit for
  /// bit, as the two layers one after the other. Sequential calls it for a ReLU followed by
  /// this layer (LeNet-5, the VGG): the ReLU's own passes over the largest activations of a
  /// network were 4% of a LeNet-5 training step. Requires fuses_relu().
  Tensor forward_relu(const Tensor& x);
  /// For a layer that computes this pool inside its own forward (Conv2d::forward_relu_pool):
  /// records an input of shape `in` as forward does, and returns the buffer (one int32 per
  /// output, row-major) where that layer writes each output's argmax for backward, as
  /// forward_relu would; null in evaluation mode.
  int32_t* external_forward(const Shape& in);

 private:
  template <bool kRelu>
  Tensor pool(const Tensor& x);

  int64_t k_, stride_, pad_;
  Shape in_shape_;
  // Cached by a training-mode forward: for each output element, the flat index ih * W + iw of
  // its maximum within the input plane, (N, C, OH, OW); after forward_relu, -1 where the output
  // is 0 (the ReLU passes no gradient there).
  std::vector<int32_t> argmax_;
};

/// Average pooling with a square window, as torch.nn.AvgPool2d with its defaults
/// (count_include_pad=True, ceil_mode=False).
///
/// Shapes as MaxPool2d. Every window is divided by \f$ K^2 \f$, padding included:
/// \f$ y_{n,c,i,j} = \frac{1}{K^2} \sum_{k_h, k_w} x_{n,c,\,iS - P + k_h,\,jS - P + k_w} \f$
/// (x is zero in the padding). Backward spreads \f$ dy / K^2 \f$ over the window's inside
/// positions.
class AvgPool2d : public Module {
 public:
  /// stride = -1 means stride = kernel_size, as PyTorch's default. Requires padding <= K/2.
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0);

  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  /// "AvgPool2d(kernel_size=2, stride=2)"; padding is named when non-zero.
  std::string describe() const override;
  /// (N, C, OH, OW); throws unless the input is 4-D and at least the kernel with padding.
  Shape output_shape(const Shape& in) const override;

  int64_t kernel_size() const { return k_; }  ///< K
  int64_t stride() const { return stride_; }  ///< S
  int64_t padding() const { return pad_; }    ///< P

 private:
  int64_t k_, stride_, pad_;
  Shape in_shape_;
};

/// Mean over each whole plane: (N, C, H, W) -> (N, C),
/// \f$ y_{n,c} = \frac{1}{HW} \sum_{i,j} x_{n,c,i,j} \f$.
///
/// The same as PyTorch's nn.AdaptiveAvgPool2d(1) followed by nn.Flatten() (so a checkpoint's
/// following Linear layer matches without a separate Flatten). Backward: \f$ dx = dy / (HW) \f$.
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  /// "GlobalAvgPool2d()"
  std::string describe() const override { return "GlobalAvgPool2d()"; }
  /// (N, C); throws unless the input is 4-D.
  Shape output_shape(const Shape& in) const override;

 private:
  Shape in_shape_;
};

}  // namespace effml
