#include "effml/layers/conv2d.h"

#include <algorithm>
#include <vector>

#include "effml/gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// Shape letters: N batch, C input channels of one group (Cin/G), F output channels of one group
// (Cout/G), H x W input image, OH x OW output image, K kernel size, S stride, P padding,
// Hp x Wp = (H + 2P) x (W + 2P) the padded image, L = (OH - 1) * Wp + OW the wide grid's length.
// cols is (C*K*K, OH*OW) (or (C*K*K, L) on the wide grid): row (c, kh, kw), column (oh, ow).
//
// Four lowerings (choose_lowering): Pointwise (1x1, stride 1, no padding: x is cols), Wide
// (stride 1: im2col on the wide grid), Strided (plain im2col) and Depthwise (a direct loop).

namespace effml {

namespace {

// Samples are spread over threads only when the whole call has at least this many multiply-adds:
// below it, starting the threads costs more than it saves (and much more on a loaded machine).
constexpr int64_t kParallelMinMacs = int64_t{1} << 17;

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Output positions o in [lo, hi) whose input position o*S - P + k lies inside [0, size).
void valid_range(int64_t out_size, int64_t in_size, int64_t S, int64_t P, int64_t k, int64_t& lo,
                 int64_t& hi) {
  const int64_t a = P - k;  // o*S >= P - k
  lo = a <= 0 ? 0 : (a + S - 1) / S;
  const int64_t b = in_size - 1 + P - k;  // o*S <= size - 1 + P - k
  hi = b < 0 ? 0 : std::min(out_size, b / S + 1);
  lo = std::min(lo, hi);
}

// x (C, H, W) -> cols (C*K*K, OH*OW), zeros where the window reaches into the padding. Correct
// for any stride; used for strides above 1 (stride 1 takes the wide grid below).
void im2col(const float* x, int64_t C, int64_t H, int64_t W, int64_t K, int64_t S, int64_t P,
            int64_t OH, int64_t OW, float* cols) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < K; ++kh) {
      for (int64_t kw = 0; kw < K; ++kw) {
        float* row = cols + ((c * K + kh) * K + kw) * OH * OW;
        int64_t lo, hi;
        valid_range(OW, W, S, P, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          float* d = row + oh * OW;
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) {
            std::fill(d, d + OW, 0.0f);
            continue;
          }
          const float* src = x + (c * H + ih) * W - P + kw;  // src[ow*S] is x[c, ih, ow*S-P+kw]
          for (int64_t ow = 0; ow < lo; ++ow) d[ow] = 0.0f;
          for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * S];
          for (int64_t ow = hi; ow < OW; ++ow) d[ow] = 0.0f;
        }
      }
    }
  }
}

// The adjoint of im2col: dx (C, H, W) += every column entry back at its input position.
void col2im_add(const float* cols, int64_t C, int64_t H, int64_t W, int64_t K, int64_t S,
                int64_t P, int64_t OH, int64_t OW, float* dx) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < K; ++kh) {
      for (int64_t kw = 0; kw < K; ++kw) {
        const float* row = cols + ((c * K + kh) * K + kw) * OH * OW;
        int64_t lo, hi;
        valid_range(OW, W, S, P, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t ih = oh * S - P + kh;
          if (ih < 0 || ih >= H) continue;
          const float* d = row + oh * OW;
          float* dst = dx + (c * H + ih) * W - P + kw;
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow * S] += d[ow];
        }
      }
    }
  }
}

// ---- stride 1: im2col on the "wide" grid ---------------------------------------------------
// With stride 1, im2col's rows are shifted windows of the zero-padded input xpad (C, Hp, Wp),
// Hp = H + 2P, Wp = W + 2P. Laying the output out on a wide grid (OH, Wp), where output (oh, ow)
// sits at oh * Wp + ow (the columns ow >= OW are scratch), makes every row a single contiguous
// run of xpad:
//   cols_wide[(c, kh, kw), i] = xpad[c, 0, 0][i + kh * Wp + kw]   for i in [0, L),
//   L = (OH - 1) * Wp + OW,
// so im2col is C*K*K long copies instead of C*K*K*OH short ones, and col2im is as many long
// vectorized adds. The products grow by about Wp / OW = (W + 2P) / (W + 2P - K + 1): little
// unless the kernel is large for the image (LeNet-5: 1.14 and 1.4), while the short copies
// they replace cost more than the products on small images.

// xpad (C, H + 2P, W + 2P) = x (C, H, W) with a border of P zeros.
void pad_planes(const float* x, int64_t C, int64_t H, int64_t W, int64_t P, float* xpad) {
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
  for (int64_t c = 0; c < C; ++c) {
    float* dst = xpad + c * Hp * Wp;
    std::fill(dst, dst + Hp * Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h)
      std::copy(x + (c * H + h) * W, x + (c * H + h + 1) * W, dst + (h + P) * Wp + P);
  }
}

// xpad (C, Hp, Wp) -> cols (C*K*K, L).
void im2col_wide(const float* xpad, int64_t C, int64_t Hp, int64_t Wp, int64_t K, int64_t L,
                 float* cols) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t kh = 0; kh < K; ++kh)
      for (int64_t kw = 0; kw < K; ++kw) {
        const float* src = xpad + c * Hp * Wp + kh * Wp + kw;
        std::copy(src, src + L, cols + ((c * K + kh) * K + kw) * L);
      }
}

// The adjoint: dxpad (C, Hp, Wp) += cols (C*K*K, L) at the same positions.
void col2im_wide_add(const float* cols, int64_t C, int64_t Hp, int64_t Wp, int64_t K, int64_t L,
                     float* dxpad) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t kh = 0; kh < K; ++kh)
      for (int64_t kw = 0; kw < K; ++kw) {
        const float* src = cols + ((c * K + kh) * K + kw) * L;
        float* dst = dxpad + c * Hp * Wp + kh * Wp + kw;
#pragma omp simd
        for (int64_t i = 0; i < L; ++i) dst[i] += src[i];
      }
}

// ---- depthwise (Cin/G == 1) ----------------------------------------------------------------
// Each output channel o reads one input channel, o / F, so the products would be single rows: a
// direct loop over the zero-padded plane instead. With stride 1 it runs on the wide grid above:
//   y_wide[i] += w[o, kh, kw] * xpad[i + kh * Wp + kw]   for i in [0, L),
// one contiguous, vectorized loop per tap.

struct DepthwiseDims {
  int64_t Cout, F, H, W, K, S, P, OH, OW;
  int64_t Hp() const { return H + 2 * P; }
  int64_t Wp() const { return W + 2 * P; }
  int64_t wide_len() const { return (OH - 1) * Wp() + OW; }  // L, used when S == 1
};

// One sample. x (Cin, H, W), w (Cout, 1, K, K), y (Cout, OH, OW) accumulated into (it holds the
// bias or zeros). xpad (Hp * Wp) and wide (L) are scratch.
void depthwise_forward(const DepthwiseDims& d, const float* x, const float* w, float* y,
                       float* xpad, float* wide) {
  const int64_t K = d.K, S = d.S, OH = d.OH, OW = d.OW, Wp = d.Wp(), L = d.wide_len();
  for (int64_t o = 0; o < d.Cout; ++o) {
    if (o % d.F == 0) pad_planes(x + (o / d.F) * d.H * d.W, 1, d.H, d.W, d.P, xpad);
    const float* wo = w + o * K * K;
    float* yo = y + o * OH * OW;
    if (S == 1) {
      std::fill(wide, wide + L, 0.0f);
      for (int64_t kh = 0; kh < K; ++kh)
        for (int64_t kw = 0; kw < K; ++kw) {
          const float a = wo[kh * K + kw];
          const float* src = xpad + kh * Wp + kw;
#pragma omp simd
          for (int64_t i = 0; i < L; ++i) wide[i] += a * src[i];
        }
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) yo[oh * OW + ow] += wide[oh * Wp + ow];
    } else {
      for (int64_t oh = 0; oh < OH; ++oh) {
        float* yrow = yo + oh * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const float* xrow = xpad + (oh * S + kh) * Wp;
          for (int64_t kw = 0; kw < K; ++kw) {
            const float a = wo[kh * K + kw];
            for (int64_t ow = 0; ow < OW; ++ow) yrow[ow] += a * xrow[ow * S + kw];
          }
        }
      }
    }
  }
}

// One sample. dw (Cout, 1, K, K) += dy * x; dx (Cin, H, W) = w * dy, unless dx is null.
// xpad and dxpad (Hp * Wp) and wide (L) are scratch.
void depthwise_backward(const DepthwiseDims& d, const float* x, const float* w, const float* dy,
                        float* dw, float* dx, float* xpad, float* dxpad, float* wide) {
  const int64_t K = d.K, S = d.S, OH = d.OH, OW = d.OW, Wp = d.Wp(), L = d.wide_len();
  for (int64_t o = 0; o < d.Cout; ++o) {
    if (o % d.F == 0) {
      pad_planes(x + (o / d.F) * d.H * d.W, 1, d.H, d.W, d.P, xpad);
      if (dx) std::fill(dxpad, dxpad + d.Hp() * Wp, 0.0f);
    }
    const float* wo = w + o * K * K;
    float* dwo = dw + o * K * K;
    const float* dyo = dy + o * OH * OW;
    if (S == 1) {
      // dy on the wide grid, zeros in the scratch columns so that they add nothing.
      std::fill(wide, wide + L, 0.0f);
      for (int64_t oh = 0; oh < OH; ++oh)
        std::copy(dyo + oh * OW, dyo + (oh + 1) * OW, wide + oh * Wp);
      for (int64_t kh = 0; kh < K; ++kh)
        for (int64_t kw = 0; kw < K; ++kw) {
          const float* src = xpad + kh * Wp + kw;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < L; ++i) acc += wide[i] * src[i];
          dwo[kh * K + kw] += acc;
          if (!dx) continue;
          const float a = wo[kh * K + kw];
          float* dst = dxpad + kh * Wp + kw;
#pragma omp simd
          for (int64_t i = 0; i < L; ++i) dst[i] += a * wide[i];
        }
    } else {
      for (int64_t oh = 0; oh < OH; ++oh) {
        const float* g = dyo + oh * OW;
        for (int64_t kh = 0; kh < K; ++kh) {
          const float* xrow = xpad + (oh * S + kh) * Wp;
          float* dxrow = dx ? dxpad + (oh * S + kh) * Wp : nullptr;
          for (int64_t kw = 0; kw < K; ++kw) {
            float acc = 0.0f;
            for (int64_t ow = 0; ow < OW; ++ow) acc += g[ow] * xrow[ow * S + kw];
            dwo[kh * K + kw] += acc;
            if (!dx) continue;
            const float a = wo[kh * K + kw];
            for (int64_t ow = 0; ow < OW; ++ow) dxrow[ow * S + kw] += a * g[ow];
          }
        }
      }
    }
    // The last output channel of this input channel: its gradient is complete.
    if (dx && o % d.F == d.F - 1) {
      float* dxc = dx + (o / d.F) * d.H * d.W;
      for (int64_t h = 0; h < d.H; ++h)
        std::copy(dxpad + (h + d.P) * Wp + d.P, dxpad + (h + d.P) * Wp + d.P + d.W, dxc + h * d.W);
    }
  }
}

// How a convolution becomes matrix products (or not).
enum class Lowering {
  Pointwise,  // 1x1 kernel, stride 1, no padding: the input block already is cols (C, H*W)
  Depthwise,  // one input channel per group: a direct loop
  Wide,       // stride 1: im2col on the wide grid
  Strided,    // any other: plain im2col
};

Lowering choose_lowering(int64_t C, int64_t G, int64_t K, int64_t S, int64_t P) {
  if (C == 1 && G > 1) return Lowering::Depthwise;
  if (K == 1 && S == 1 && P == 0) return Lowering::Pointwise;
  if (S == 1) return Lowering::Wide;
  return Lowering::Strided;
}

}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, int64_t groups, bool bias)
    : in_(in_channels),
      out_(out_channels),
      k_(kernel_size),
      stride_(stride),
      pad_(padding),
      groups_(groups),
      has_bias_(bias) {
  EFFML_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0 && stride > 0 &&
                  padding >= 0 && groups > 0,
              describe() << ": channels, kernel_size, stride and groups must be positive and "
                            "padding non-negative");
  EFFML_CHECK(in_channels % groups == 0 && out_channels % groups == 0,
              describe() << ": groups=" << groups << " must divide in_channels=" << in_channels
                         << " and out_channels=" << out_channels);
  weight = Parameter(Tensor::zeros({out_channels, in_channels / groups, kernel_size, kernel_size}));
  this->bias = Parameter(Tensor::zeros({bias ? out_channels : 0}));
}

Shape Conv2d::output_shape(const Shape& in) const {
  EFFML_CHECK(in.size() == 4 && in[1] == in_,
              describe() << ": expected input (N, " << in_ << ", H, W), got " << shape_str(in));
  EFFML_CHECK(in[2] + 2 * pad_ >= k_ && in[3] + 2 * pad_ >= k_,
              describe() << ": input " << shape_str(in) << " is smaller than the kernel "
                         << k_ << "x" << k_ << " even with padding " << pad_);
  const int64_t oh = (in[2] + 2 * pad_ - k_) / stride_ + 1;
  const int64_t ow = (in[3] + 2 * pad_ - k_) / stride_ + 1;
  return {in[0], out_, oh, ow};
}

int64_t Conv2d::macs(const Shape& in) const {
  const Shape out = output_shape(in);
  return out[0] * out_ * out[2] * out[3] * (in_ / groups_) * k_ * k_;
}

Tensor Conv2d::forward(const Tensor& x) {
  const Shape os = output_shape(x.shape());
  const int64_t N = os[0], H = x.size(2), W = x.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_, G = groups_;
  const int64_t C = in_ / G, F = out_ / G;  // channels per group, in and out
  const int64_t CKK = C * K * K, OHW = OH * OW;
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P, L = (OH - 1) * Wp + OW;
  const Lowering low = choose_lowering(C, G, K, S, P);
  Tensor y(os);  // (N, Cout, OH, OW)
  const float* px = x.data();
  const float* pw = weight.value.data();  // (Cout, C, K, K) = G blocks of (F, CKK)
  const float* pb = has_bias_ ? bias.value.data() : nullptr;
  float* py = y.data();
  const bool parallel = N > 1 && macs(x.shape()) >= kParallelMinMacs;
  const DepthwiseDims dd{out_, F, H, W, K, S, P, OH, OW};

#pragma omp parallel if (parallel)
  {
    // Scratch of this thread, allocated once per call.
    std::vector<float> xpad(low == Lowering::Wide && P > 0   ? C * Hp * Wp
                            : low == Lowering::Depthwise ? Hp * Wp
                                                         : 0);
    std::vector<float> cols(low == Lowering::Wide      ? CKK * L
                            : low == Lowering::Strided ? CKK * OHW
                                                       : 0);
    std::vector<float> wide(low == Lowering::Wide        ? F * L
                            : low == Lowering::Depthwise ? (S == 1 ? L : 0)
                                                         : 0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = px + n * in_ * H * W;  // (Cin, H, W)
      float* yn = py + n * out_ * OHW;         // (Cout, OH, OW)
      if (low == Lowering::Depthwise) {
        if (pb)
          for (int64_t o = 0; o < out_; ++o) std::fill(yn + o * OHW, yn + (o + 1) * OHW, pb[o]);
        depthwise_forward(dd, xn, pw, yn, xpad.data(), wide.data());
        continue;
      }
      for (int64_t g = 0; g < G; ++g) {
        const float* xg = xn + g * C * H * W;  // (C, H, W)
        const float* wg = pw + g * F * CKK;    // (F, CKK)
        float* yg = yn + g * F * OHW;          // (F, OH, OW)
        if (low == Lowering::Wide) {
          const float* xp = xg;
          if (P > 0) {
            pad_planes(xg, C, H, W, P, xpad.data());
            xp = xpad.data();
          }
          im2col_wide(xp, C, Hp, Wp, K, L, cols.data());
          // y_wide (F, L) = W_g (F, CKK) x cols (CKK, L), then keep the OW real columns.
          gemm(false, false, F, L, CKK, 1.0f, wg, CKK, cols.data(), L, 0.0f, wide.data(), L);
          for (int64_t f = 0; f < F; ++f)
            for (int64_t oh = 0; oh < OH; ++oh) {
              const float* src = wide.data() + f * L + oh * Wp;
              std::copy(src, src + OW, yg + f * OHW + oh * OW);
            }
        } else {
          const float* b = xg;  // Pointwise: the input block is cols (C, H*W) already.
          if (low == Lowering::Strided) {
            im2col(xg, C, H, W, K, S, P, OH, OW, cols.data());
            b = cols.data();
          }
          // y_ng (F, OHW) = W_g (F, CKK) x cols (CKK, OHW)
          gemm(false, false, F, OHW, CKK, 1.0f, wg, CKK, b, OHW, 0.0f, yg, OHW);
        }
      }
      if (pb)
        for (int64_t o = 0; o < out_; ++o) {
          float* yo = yn + o * OHW;
          for (int64_t p = 0; p < OHW; ++p) yo[p] += pb[o];
        }
    }
  }
  // Only a training-mode forward leaves an input for backward; an evaluation-mode one drops any
  // older input, so that a backward after it fails instead of using a stale one.
  x_ = training_ ? x : Tensor();
  return y;
}

Tensor Conv2d::backward(const Tensor& dy) {
  EFFML_CHECK(x_.dim() == 4, describe() << ": backward called without a training-mode forward");
  const Shape os = output_shape(x_.shape());
  check_shape(dy, os, describe() + " backward: dy");
  const int64_t N = os[0], H = x_.size(2), W = x_.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_, G = groups_;
  const int64_t C = in_ / G, F = out_ / G;
  const int64_t CKK = C * K * K, OHW = OH * OW;
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P, L = (OH - 1) * Wp + OW;
  const Lowering low = choose_lowering(C, G, K, S, P);
  const bool want_dx = needs_input_grad;
  const float* px = x_.data();
  const float* pw = weight.value.data();
  const float* pdy = dy.data();
  Tensor dx = want_dx ? Tensor(x_.shape()) : Tensor(Shape{0});  // zeros: col2im adds into it
  float* pdx = want_dx ? dx.data() : nullptr;

  // db_o += sum over n, oh, ow of dy: one vectorized pass over dy, too cheap to split.
  if (has_bias_) {
    float* db = bias.grad.data();
    for (int64_t o = 0; o < out_; ++o) {
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        const float* d = pdy + (n * out_ + o) * OHW;
#pragma omp simd reduction(+ : acc)
        for (int64_t p = 0; p < OHW; ++p) acc += d[p];
      }
      db[o] += acc;
    }
  }

  // dW is summed per thread into its own buffer, then the buffers in thread order.
  const int64_t wsize = weight.value.numel();
  std::vector<std::vector<float>> dw_thread;
  const DepthwiseDims dd{out_, F, H, W, K, S, P, OH, OW};
  const bool parallel = N > 1 && macs(x_.shape()) >= kParallelMinMacs;
#pragma omp parallel if (parallel)
  {
#pragma omp single
    dw_thread.resize(static_cast<std::size_t>(team_size()));
    // (the implicit barrier after `single` publishes the resized vector)
    std::vector<float>& dw = dw_thread[static_cast<std::size_t>(thread_id())];
    dw.assign(static_cast<std::size_t>(wsize), 0.0f);
    // Scratch of this thread, allocated once per call.
    const bool pad_wide = low == Lowering::Wide && P > 0;
    const int64_t grid = low == Lowering::Wide ? L : OHW;  // columns of cols
    std::vector<float> xpad(pad_wide ? C * Hp * Wp : low == Lowering::Depthwise ? Hp * Wp : 0);
    std::vector<float> dxpad(!want_dx ? 0
                             : pad_wide ? C * Hp * Wp
                             : low == Lowering::Depthwise ? Hp * Wp
                                                          : 0);
    std::vector<float> cols(low == Lowering::Wide || low == Lowering::Strided ? CKK * grid : 0);
    std::vector<float> dcols(want_dx && (low == Lowering::Wide || low == Lowering::Strided)
                                 ? CKK * grid
                                 : 0);
    std::vector<float> wide(low == Lowering::Wide        ? F * L
                            : low == Lowering::Depthwise ? (S == 1 ? L : 0)
                                                         : 0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = px + n * in_ * H * W;
      const float* dyn = pdy + n * out_ * OHW;
      float* dxn = want_dx ? pdx + n * in_ * H * W : nullptr;
      if (low == Lowering::Depthwise) {
        depthwise_backward(dd, xn, pw, dyn, dw.data(), dxn, xpad.data(), dxpad.data(),
                           wide.data());
        continue;
      }
      for (int64_t g = 0; g < G; ++g) {
        const float* xg = xn + g * C * H * W;  // (C, H, W)
        const float* wg = pw + g * F * CKK;    // (F, CKK)
        const float* dyg = dyn + g * F * OHW;  // (F, OH, OW)
        float* dwg = dw.data() + g * F * CKK;  // (F, CKK)
        float* dxg = want_dx ? dxn + g * C * H * W : nullptr;
        if (low == Lowering::Wide) {
          const float* xp = xg;
          if (P > 0) {
            pad_planes(xg, C, H, W, P, xpad.data());
            xp = xpad.data();
          }
          im2col_wide(xp, C, Hp, Wp, K, L, cols.data());
          // dy on the wide grid (F, L), zeros in the scratch columns so that they add nothing.
          std::fill(wide.begin(), wide.end(), 0.0f);
          for (int64_t f = 0; f < F; ++f)
            for (int64_t oh = 0; oh < OH; ++oh) {
              const float* src = dyg + f * OHW + oh * OW;
              std::copy(src, src + OW, wide.data() + f * L + oh * Wp);
            }
          // dW_g (F, CKK) += dy_wide (F, L) x cols^T (L, CKK)
          gemm(false, true, F, CKK, L, 1.0f, wide.data(), L, cols.data(), L, 1.0f, dwg, CKK);
          if (!want_dx) continue;
          // dcols (CKK, L) = W_g^T (CKK, F) x dy_wide (F, L), then back to input positions.
          gemm(true, false, CKK, L, F, 1.0f, wg, CKK, wide.data(), L, 0.0f, dcols.data(), L);
          if (P == 0) {
            col2im_wide_add(dcols.data(), C, Hp, Wp, K, L, dxg);  // dx has no border
          } else {
            std::fill(dxpad.begin(), dxpad.end(), 0.0f);
            col2im_wide_add(dcols.data(), C, Hp, Wp, K, L, dxpad.data());
            for (int64_t c = 0; c < C; ++c)
              for (int64_t h = 0; h < H; ++h) {
                const float* src = dxpad.data() + (c * Hp + h + P) * Wp + P;
                std::copy(src, src + W, dxg + (c * H + h) * W);
              }
          }
          continue;
        }
        const float* b = xg;  // Pointwise: the input block is cols (C, H*W) already.
        if (low == Lowering::Strided) {
          im2col(xg, C, H, W, K, S, P, OH, OW, cols.data());
          b = cols.data();
        }
        // dW_g (F, CKK) += dy_ng (F, OHW) x cols^T (OHW, CKK)
        gemm(false, true, F, CKK, OHW, 1.0f, dyg, OHW, b, OHW, 1.0f, dwg, CKK);
        if (!want_dx) continue;
        if (low == Lowering::Pointwise) {
          // dx_ng (C, HW) = W_g^T (C, F) x dy_ng (F, HW)
          gemm(true, false, C, OHW, F, 1.0f, wg, CKK, dyg, OHW, 0.0f, dxg, OHW);
        } else {
          // dcols (CKK, OHW) = W_g^T (CKK, F) x dy_ng (F, OHW), then back to input positions.
          gemm(true, false, CKK, OHW, F, 1.0f, wg, CKK, dyg, OHW, 0.0f, dcols.data(), OHW);
          col2im_add(dcols.data(), C, H, W, K, S, P, OH, OW, dxg);
        }
      }
    }
  }
  float* gw = weight.grad.data();
  for (const auto& dw : dw_thread)
    for (int64_t i = 0; i < wsize; ++i) gw[i] += dw[static_cast<std::size_t>(i)];
  return dx;
}

std::string Conv2d::describe() const {
  std::string s = "Conv2d(" + std::to_string(in_) + ", " + std::to_string(out_) +
                  ", kernel_size=" + std::to_string(k_) + ", stride=" + std::to_string(stride_);
  if (pad_ != 0) s += ", padding=" + std::to_string(pad_);
  if (groups_ != 1) s += ", groups=" + std::to_string(groups_);
  if (!has_bias_) s += ", bias=false";
  return s + ")";
}

std::vector<std::pair<std::string, Parameter*>> Conv2d::local_parameters() {
  if (has_bias_) return {{"weight", &weight}, {"bias", &bias}};
  return {{"weight", &weight}};
}

}  // namespace effml
