#include "effml/layers/pooling.h"

#include <algorithm>
#include <cmath>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../avx512_kernels.h"
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

// The layer's description is built only for an error message: output_shape runs at every
// forward, and a string per call was a measurable part of a batch-1 pooling (0.45 us).
Shape pool_output_shape(const char* name, int64_t k, int64_t s, int64_t p, const Shape& in) {
  EFFML_CHECK(in.size() == 4, pool_describe(name, k, s, p)
                                  << ": expected input (N, C, H, W), got " << shape_str(in));
  EFFML_CHECK(in[2] + 2 * p >= k && in[3] + 2 * p >= k,
              pool_describe(name, k, s, p) << ": input " << shape_str(in)
                                           << " is smaller than the window " << k << "x" << k
                                           << " even with padding " << p);
  return {in[0], in[1], (in[2] + 2 * p - k) / s + 1, (in[3] + 2 * p - k) / s + 1};
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

#if defined(__AVX512F__)
// The 2x2 kernels below step through a row of outputs 16 at a time; the two input rows of a step
// hold 2c values each (c <= 16 outputs), in a pair of registers.
struct PairStep {
  __mmask16 out;     // the c outputs' lanes
  __mmask16 first;   // the lanes of the first register of a pair that hold inputs
  __mmask16 second;  // and of the second
};

inline PairStep pair_step(int c) {
  return {first_lanes(c), first_lanes(std::min(2 * c, 16)), first_lanes(std::max(2 * c - 16, 0))};
}

// The same 2x2 window (stride 2, no padding) on one plane x (H, W) -> y (OH, OW), row by row in
// AVX-512 registers, with no gather: for up to 16 outputs of row oh, the 2 x 32 inputs of rows
// 2*oh and 2*oh + 1 are loaded (masked at the row's end) and reduced by pool_2x2_step
// (avx512_kernels.h), which picks the same value and index as the four-step scan above.
// Measured at batch 1 against the gather kernel (1 thread): LeNet-5's first pool (6 planes of
// 28x28) 2.34 -> 0.76 us, its second (16 of 10x10) 0.91 -> 0.69 us; the VGG's first two (16 of
// 28x28, 32 of 14x14) 4.8 -> 1.4 and 2.5 -> 1.4 us. A LeNet-5 training epoch did not change
// measurably.
// With kRelu, the pool of max(x, 0) with -1 for the argmax of a 0 output (see pool_2x2_step):
// the ReLU before the pool, and its gradient mask (its output is positive exactly where its
// input is).
template <bool kArgmax, bool kRelu>
void max_pool_2x2_rows(const float* x, int64_t W, int64_t OH, int64_t OW, float* y,
                       int32_t* argmax) {
  const __m512i even = even_lanes();
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* top = x + 2 * oh * W;
    for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
      const PairStep m = pair_step(static_cast<int>(std::min<int64_t>(16, OW - ow0)));
      const float* t = top + 2 * ow0;
      // Index of the window's top-left input: 2*oh*W + 2*ow0 + 2*lane (`even` holds 2*lane).
      const __m512i base =
          _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * ow0)), even);
      pool_2x2_step<kRelu>(
          _mm512_maskz_loadu_ps(m.first, t), _mm512_maskz_loadu_ps(m.second, t + 16),
          _mm512_maskz_loadu_ps(m.first, t + W), _mm512_maskz_loadu_ps(m.second, t + W + 16),
          base, W, m.out, y + oh * OW + ow0, kArgmax ? argmax + oh * OW + ow0 : nullptr);
    }
  }
}
#endif

// The gradient of the 2x2 window (stride 2, no padding) on one plane: dx (2 * OH rows of W) =
// dy (OH, OW) at each window's argmax (flat index in the plane; -1, no position, gives the
// window zeros) and zeros elsewhere, each element written once. The column and row that no
// window reaches (odd W or H) are left to the caller.
void max_pool_2x2_grad(const float* dy, const int32_t* argmax, int64_t W, int64_t OH, int64_t OW,
                       float* dx) {
#if defined(__AVX512F__)
  // For up to 16 outputs: four masked copies of dy (one per window position), interleaved into
  // the two input rows by two-register permutes (the inverse of the forward's even/odd split).
  const __m512i even = even_lanes();
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __m512i one = _mm512_set1_epi32(1), down = _mm512_set1_epi32(static_cast<int32_t>(W));
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* top = dx + 2 * oh * W;
    for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
      const PairStep m = pair_step(static_cast<int>(std::min<int64_t>(16, OW - ow0)));
      const __m512 g = _mm512_maskz_loadu_ps(m.out, dy + oh * OW + ow0);
      const __m512i a = _mm512_maskz_loadu_epi32(m.out, argmax + oh * OW + ow0);
      const __m512i tl =  // the windows' top-left inputs
          _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * ow0)), even);
      const __m512i bl = _mm512_add_epi32(tl, down);
      auto at = [&](__m512i index) {  // g where the argmax is at index, else 0
        return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, index), g);
      };
      const __m512 vtl = at(tl), vtr = at(_mm512_add_epi32(tl, one));
      const __m512 vbl = at(bl), vbr = at(_mm512_add_epi32(bl, one));
      float* t = top + 2 * ow0;
      _mm512_mask_storeu_ps(t, m.first, _mm512_permutex2var_ps(vtl, lo, vtr));
      _mm512_mask_storeu_ps(t + 16, m.second, _mm512_permutex2var_ps(vtl, hi, vtr));
      _mm512_mask_storeu_ps(t + W, m.first, _mm512_permutex2var_ps(vbl, lo, vbr));
      _mm512_mask_storeu_ps(t + W + 16, m.second, _mm512_permutex2var_ps(vbl, hi, vbr));
    }
  }
#else
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* top = dx + 2 * oh * W;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const float g = dy[oh * OW + ow];
      const int64_t a = argmax[oh * OW + ow], c = 2 * oh * W + 2 * ow;
      top[2 * ow] = a == c ? g : 0.0f;
      top[2 * ow + 1] = a == c + 1 ? g : 0.0f;
      top[W + 2 * ow] = a == c + W ? g : 0.0f;
      top[W + 2 * ow + 1] = a == c + W + 1 ? g : 0.0f;
    }
  }
#endif
}

}  // namespace

// ---- MaxPool2d ---------------------------------------------------------------------------------

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : k_(kernel_size), stride_(stride == -1 ? kernel_size : stride), pad_(padding) {
  check_pool_args("MaxPool2d", k_, stride_, pad_);
}

Shape MaxPool2d::output_shape(const Shape& in) const {
  return pool_output_shape("MaxPool2d", k_, stride_, pad_, in);
}

std::string MaxPool2d::describe() const { return pool_describe("MaxPool2d", k_, stride_, pad_); }

bool MaxPool2d::fuses_relu() const {
#if defined(__AVX512F__)
  return k_ == 2 && stride_ == 2 && pad_ == 0;
#else
  return false;
#endif
}

Tensor MaxPool2d::forward(const Tensor& x) { return pool<false>(x); }

Tensor MaxPool2d::forward_relu(const Tensor& x) {
  EFFML_CHECK(fuses_relu(), describe() << ": forward_relu needs the 2x2 window with stride 2 and "
                                          "no padding, and AVX-512");
  return pool<true>(x);
}

int32_t* MaxPool2d::external_forward(const Shape& in) {
  const Shape os = output_shape(in);
  argmax_.resize(training_ ? static_cast<std::size_t>(shape_numel(os)) : 0);
  in_shape_ = in;
  return training_ ? argmax_.data() : nullptr;
}

template <bool kRelu>
Tensor MaxPool2d::pool(const Tensor& x) {
  Shape os = output_shape(x.shape());
  const int64_t planes = os[0] * os[1], H = x.size(2), W = x.size(3), OH = os[2], OW = os[3];
  const int64_t K = k_, S = stride_, P = pad_;
  Tensor y = Tensor::empty(std::move(os));  // every element is written below
  // The argmax buffer is kept from call to call (it only grows): no allocation per step.
  argmax_.resize(training_ ? static_cast<std::size_t>(y.numel()) : 0);
  const float* px = x.data();
  float* py = y.data();
  int32_t* pa = training_ ? argmax_.data() : nullptr;
  // The usual 2x2 window with stride 2 and no padding: corner[o] = the flat index of output o's
  // top-left input, the same for every plane.
  const bool two_by_two = K == 2 && S == 2 && P == 0;
#if defined(__AVX512F__)
  constexpr bool kRows = true;  // max_pool_2x2_rows needs no corner table
#else
  constexpr bool kRows = false;
#endif
  std::vector<int32_t> corner(two_by_two && !kRows ? static_cast<std::size_t>(OH * OW) : 0);
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
#if defined(__AVX512F__)
        if (ap)
          max_pool_2x2_rows<true, kRelu>(xp, W, OH, OW, yp, ap);
        else
          max_pool_2x2_rows<false, kRelu>(xp, W, OH, OW, yp, nullptr);
        continue;
#endif
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
  const float* pdy = dy.data();
  const int32_t* pa = argmax_.data();
  if (k_ == 2 && stride_ == 2 && pad_ == 0) {
    // Windows that do not overlap: every input element is written once, its gradient or zero,
    // instead of zeroing dx and scattering into it (two passes over dx, one of them random).
    const int64_t H = in_shape_[2], W = in_shape_[3], OH = os[2], OW = os[3];
    Tensor dx = Tensor::empty(in_shape_);
    float* pdx = dx.data();
    parallel_for(planes, dx.numel() > kParallelMin, [=](int64_t begin, int64_t end) {
      for (int64_t q = begin; q < end; ++q) {
        float* d = pdx + q * HW;
        max_pool_2x2_grad(pdy + q * OHW, pa + q * OHW, W, OH, OW, d);
        if (W % 2 != 0)  // the column that no window reaches
          for (int64_t h = 0; h < 2 * OH; ++h) d[h * W + W - 1] = 0.0f;
        if (H % 2 != 0) std::fill(d + (H - 1) * W, d + H * W, 0.0f);  // and the row
      }
    });
    return dx;
  }
  Tensor dx(in_shape_);
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
  return pool_output_shape("AvgPool2d", k_, stride_, pad_, in);
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
