#include "effml/layers/pooling.h"

#include <algorithm>
#include <cmath>

#include "../parallel_for.h"

// Shape letters: N batch, C channels, H x W input plane, OH x OW output plane, K window size,
// S stride, P padding. Every (n, c) plane is independent: the loops over planes run in parallel.

namespace effml {

namespace {

// Below this many elements a parallel region costs more than it saves. The loops below capture
// sizes and pointers by value: through captured references GCC may vectorize the wrong loop.
constexpr int64_t kParallelMin = 1 << 15;

void check_pool_args(const char* name, int64_t k, int64_t s, int64_t p) {
  EFFML_CHECK(k > 0 && s > 0 && p >= 0, name << "(kernel_size=" << k << ", stride=" << s
                                             << ", padding=" << p
                                             << "): kernel_size and stride must be positive and "
                                                "padding non-negative");
  EFFML_CHECK(2 * p <= k, name << "(kernel_size=" << k << ", padding=" << p
                               << "): padding must be at most half the kernel size");
}

Shape pool_output_shape(const std::string& layer, int64_t k, int64_t s, int64_t p,
                        const Shape& in) {
  EFFML_CHECK(in.size() == 4, layer << ": expected input (N, C, H, W), got " << shape_str(in));
  EFFML_CHECK(in[2] + 2 * p >= k && in[3] + 2 * p >= k,
              layer << ": input " << shape_str(in) << " is smaller than the window " << k << "x"
                    << k << " even with padding " << p);
  return {in[0], in[1], (in[2] + 2 * p - k) / s + 1, (in[3] + 2 * p - k) / s + 1};
}

// Output columns ow in [lo, hi) whose input column ow*S - P + k lies inside [0, W).
void valid_cols(int64_t OW, int64_t W, int64_t S, int64_t P, int64_t k, int64_t& lo, int64_t& hi) {
  const int64_t a = P - k;
  lo = a <= 0 ? 0 : (a + S - 1) / S;
  const int64_t b = W - 1 + P - k;
  hi = b < 0 ? 0 : std::min(OW, b / S + 1);
  lo = std::min(lo, hi);
}

std::string pool_describe(const char* name, int64_t k, int64_t s, int64_t p) {
  std::string d = std::string(name) + "(kernel_size=" + std::to_string(k) +
                  ", stride=" + std::to_string(s);
  if (p != 0) d += ", padding=" + std::to_string(p);
  return d + ")";
}

// Whether a window value `val` met after the running maximum `v` takes its place, as PyTorch:
// only when strictly greater, so that the first of equal maxima wins, or when it is NaN, so that
// a NaN propagates (the last NaN of the window is the maximum). Branch-free (`|`, not `||`): on
// random data a branch would mispredict half the time.
inline bool replaces(float val, float v) { return (val > v) | (val != val); }

// The 2x2 window with stride 2 and no padding on one plane x (H, W): for the n outputs o,
// y[o] = the maximum of the window whose top-left input is corner[o], argmax[o] its flat index
// (when kArgmax). One loop over the whole plane: its rows (14 outputs in LeNet-5) are too short
// to vectorize one by one, the plane is not (the four inputs are gathered through corner).
template <bool kArgmax>
void max_pool_2x2(const float* x, int64_t W, const int32_t* corner, int64_t n, float* y,
                  int32_t* argmax) {
  const int32_t w = static_cast<int32_t>(W);
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) {
    const int32_t i = corner[o];
    float v = x[i];
    int32_t best = i;
    float u = x[i + 1];
    bool take = replaces(u, v);
    v = take ? u : v;
    best = take ? i + 1 : best;
    u = x[i + w];
    take = replaces(u, v);
    v = take ? u : v;
    best = take ? i + w : best;
    u = x[i + w + 1];
    take = replaces(u, v);
    v = take ? u : v;
    best = take ? i + w + 1 : best;
    y[o] = v;
    if (kArgmax) argmax[o] = best;
  }
}

}  // namespace

// ---- MaxPool2d ---------------------------------------------------------------------------------

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : k_(kernel_size), stride_(stride == -1 ? kernel_size : stride), pad_(padding) {
  check_pool_args("MaxPool2d", k_, stride_, pad_);
}

Shape MaxPool2d::output_shape(const Shape& in) const {
  return pool_output_shape(describe(), k_, stride_, pad_, in);
}

std::string MaxPool2d::describe() const { return pool_describe("MaxPool2d", k_, stride_, pad_); }

Tensor MaxPool2d::forward(const Tensor& x) {
  const Shape os = output_shape(x.shape());
  const int64_t planes = os[0] * os[1], H = x.size(2), W = x.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_;
  Tensor y = Tensor::empty(os);  // every element is written below
  // The argmax buffer is kept from call to call (it only grows): no allocation per step.
  argmax_.resize(training_ ? static_cast<std::size_t>(y.numel()) : 0);
  const float* px = x.data();
  float* py = y.data();
  int32_t* pa = training_ ? argmax_.data() : nullptr;
  // The usual 2x2 window with stride 2 and no padding: corner[o] = the flat index of output o's
  // top-left input, the same for every plane.
  const bool two_by_two = K == 2 && S == 2 && P == 0;
  std::vector<int32_t> corner(two_by_two ? static_cast<std::size_t>(OH * OW) : 0);
  for (std::size_t o = 0; o < corner.size(); ++o)
    corner[o] = static_cast<int32_t>(2 * (static_cast<int64_t>(o) / OW) * W +
                                     2 * (static_cast<int64_t>(o) % OW));
  const int32_t* pc = corner.data();

  parallel_for(planes, x.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const float* xp = px + q * H * W;
      float* yp = py + q * OH * OW;
      int32_t* ap = pa ? pa + q * OH * OW : nullptr;
      if (two_by_two) {
        if (ap)
          max_pool_2x2<true>(xp, W, pc, OH * OW, yp, ap);
        else
          max_pool_2x2<false>(xp, W, pc, OH * OW, yp, nullptr);
        continue;
      }
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * S - P, 0), h1 = std::min(oh * S - P + K, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = std::max<int64_t>(ow * S - P, 0), w1 = std::min(ow * S - P + K, W);
          // As PyTorch: start from the window's first inside position (P <= K/2 guarantees one).
          int64_t best = h0 * W + w0;
          float v = xp[best];
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) {
              const float val = xp[ih * W + iw];
              const bool take = replaces(val, v);
              v = take ? val : v;
              best = take ? ih * W + iw : best;
            }
          yp[oh * OW + ow] = v;
          if (ap) ap[oh * OW + ow] = static_cast<int32_t>(best);
        }
      }
    }
  });
  in_shape_ = x.shape();
  return y;
}

Tensor MaxPool2d::backward(const Tensor& dy) {
  EFFML_CHECK(!argmax_.empty(), describe() << ": backward called without a training-mode forward");
  const Shape os = output_shape(in_shape_);
  check_shape(dy, os, describe() + " backward: dy");
  if (!needs_input_grad) return Tensor(Shape{0});
  const int64_t planes = os[0] * os[1], HW = in_shape_[2] * in_shape_[3], OHW = os[2] * os[3];
  Tensor dx(in_shape_);
  const float* pdy = dy.data();
  const int32_t* pa = argmax_.data();
  float* pdx = dx.data();
  parallel_for(planes, dx.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q)
      for (int64_t o = q * OHW; o < (q + 1) * OHW; ++o) pdx[q * HW + pa[o]] += pdy[o];
  });
  return dx;
}

// ---- AvgPool2d ---------------------------------------------------------------------------------

AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : k_(kernel_size), stride_(stride == -1 ? kernel_size : stride), pad_(padding) {
  check_pool_args("AvgPool2d", k_, stride_, pad_);
}

Shape AvgPool2d::output_shape(const Shape& in) const {
  return pool_output_shape(describe(), k_, stride_, pad_, in);
}

std::string AvgPool2d::describe() const { return pool_describe("AvgPool2d", k_, stride_, pad_); }

Tensor AvgPool2d::forward(const Tensor& x) {
  const Shape os = output_shape(x.shape());
  const int64_t planes = os[0] * os[1], H = x.size(2), W = x.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_;
  // count_include_pad: with ceil_mode off every window lies inside the padded plane, so the
  // divisor is always K*K.
  const float scale = 1.0f / static_cast<float>(K * K);
  Tensor y(os);  // zeros: the window sums accumulate into it
  const float* px = x.data();
  float* py = y.data();
  // One output row at a time, window position by window position: the innermost loop runs along
  // the row and vectorizes.
  parallel_for(planes, x.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const float* xp = px + q * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        float* yrow = py + (q * OH + oh) * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < K; ++kw) {
            int64_t lo, hi;
            valid_cols(OW, W, S, P, kw, lo, hi);
            const float* src = xp + ih * W - P + kw;  // src[ow*S] is x[ih, ow*S - P + kw]
            for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += src[ow * S];
          }
        }
        for (int64_t ow = 0; ow < OW; ++ow) yrow[ow] *= scale;
      }
    }
  });
  in_shape_ = x.shape();
  return y;
}

Tensor AvgPool2d::backward(const Tensor& dy) {
  EFFML_CHECK(in_shape_.size() == 4, describe() << ": backward called before forward");
  const Shape os = output_shape(in_shape_);
  check_shape(dy, os, describe() + " backward: dy");
  if (!needs_input_grad) return Tensor(Shape{0});
  const int64_t planes = os[0] * os[1], H = in_shape_[2], W = in_shape_[3], OH = os[2],
                OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_;
  const float scale = 1.0f / static_cast<float>(K * K);
  Tensor dx(in_shape_);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  parallel_for(planes, dx.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      float* dxp = pdx + q * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const float* g = pdy + (q * OH + oh) * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < K; ++kw) {
            int64_t lo, hi;
            valid_cols(OW, W, S, P, kw, lo, hi);
            float* dst = dxp + ih * W - P + kw;  // dst[ow*S] is dx[ih, ow*S - P + kw]
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow * S] += g[ow] * scale;
          }
        }
      }
    }
  });
  return dx;
}

// ---- GlobalAvgPool2d ---------------------------------------------------------------------------

Shape GlobalAvgPool2d::output_shape(const Shape& in) const {
  EFFML_CHECK(in.size() == 4 && in[2] > 0 && in[3] > 0,
              "GlobalAvgPool2d(): expected input (N, C, H, W), got " << shape_str(in));
  return {in[0], in[1]};
}

Tensor GlobalAvgPool2d::forward(const Tensor& x) {
  const Shape os = output_shape(x.shape());
  const int64_t planes = os[0] * os[1], HW = x.size(2) * x.size(3);
  Tensor y(os);
  const float* px = x.data();
  float* py = y.data();
  parallel_for(planes, x.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      float s = 0.0f;
      for (int64_t p = 0; p < HW; ++p) s += px[q * HW + p];
      py[q] = s / static_cast<float>(HW);
    }
  });
  in_shape_ = x.shape();
  return y;
}

Tensor GlobalAvgPool2d::backward(const Tensor& dy) {
  EFFML_CHECK(in_shape_.size() == 4, "GlobalAvgPool2d(): backward called before forward");
  check_shape(dy, output_shape(in_shape_), "GlobalAvgPool2d() backward: dy");
  if (!needs_input_grad) return Tensor(Shape{0});
  const int64_t planes = in_shape_[0] * in_shape_[1], HW = in_shape_[2] * in_shape_[3];
  const float scale = 1.0f / static_cast<float>(HW);
  Tensor dx(in_shape_);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  parallel_for(planes, dx.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const float g = pdy[q] * scale;
      for (int64_t p = 0; p < HW; ++p) pdx[q * HW + p] = g;
    }
  });
  return dx;
}

}  // namespace effml
