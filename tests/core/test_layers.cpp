// Conv2d, BatchNorm2d, pooling and Dropout: shapes, shape errors, Conv2d against the naive
// seven-loop convolution (forward and backward), batch-norm statistics, dropout rates, MACs,
// descriptions. Gradients against finite differences are in test_gradcheck.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <vector>

#include "effml/layers.h"
#include "effml/parallel.h"
#include "effml/rng.h"

using namespace effml;

namespace {

struct ConvCfg {
  int64_t cin, cout, k, stride, padding, groups;
  bool bias;
  Shape input;
};

// Input element x[n, c, ih, iw], zero outside the image.
double x_at(const Tensor& x, int64_t n, int64_t c, int64_t ih, int64_t iw) {
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0;
  return x[((n * C + c) * H + ih) * W + iw];
}

// The definition of torch.nn.Conv2d, loop by loop, summed in double: the algorithmic reference.
Tensor conv2d_naive(const Tensor& x, const Tensor& w, const Tensor& b, int64_t S, int64_t P,
                    int64_t G) {
  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = w.size(0), C = w.size(1), K = w.size(2);
  const int64_t OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
  const int64_t F = Cout / G;
  REQUIRE(C * G == Cin);
  Tensor y({N, Cout, OH, OW});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < Cout; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b.numel() ? b[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < K; ++kh)
              for (int64_t kw = 0; kw < K; ++kw)
                acc += w[((o * C + c) * K + kh) * K + kw] *
                       x_at(x, n, (o / F) * C + c, oh * S - P + kh, ow * S - P + kw);
          y[((n * Cout + o) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
  return y;
}

// The same loops, transposed: dx and dW of the loss sum(y * dy), in double.
void conv2d_naive_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int64_t S,
                           int64_t P, int64_t G, Tensor& dx, Tensor& dw) {
  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = w.size(0), C = w.size(1), K = w.size(2);
  const int64_t OH = dy.size(2), OW = dy.size(3), F = Cout / G;
  std::vector<double> gx(static_cast<std::size_t>(x.numel()), 0.0);
  std::vector<double> gw(static_cast<std::size_t>(w.numel()), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < Cout; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const double g = dy[((n * Cout + o) * OH + oh) * OW + ow];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < K; ++kh)
              for (int64_t kw = 0; kw < K; ++kw) {
                const int64_t ci = (o / F) * C + c, ih = oh * S - P + kh, iw = ow * S - P + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t wi = ((o * C + c) * K + kh) * K + kw;
                gw[static_cast<std::size_t>(wi)] += g * x_at(x, n, ci, ih, iw);
                gx[static_cast<std::size_t>(((n * Cin + ci) * H + ih) * W + iw)] += g * w[wi];
              }
        }
  dx = Tensor(x.shape());
  dw = Tensor(w.shape());
  for (int64_t i = 0; i < dx.numel(); ++i)
    dx[i] = static_cast<float>(gx[static_cast<std::size_t>(i)]);
  for (int64_t i = 0; i < dw.numel(); ++i)
    dw[i] = static_cast<float>(gw[static_cast<std::size_t>(i)]);
}

// Relative error in the max norm: max |a - b| / max(max |b|, 1e-12).
float max_rel_err(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  return (a - b).abs().max() / std::max(b.abs().max(), 1e-12f);
}

// The configurations compared with the naive loops; the last ones have enough multiply-adds
// (>= 2^17) to spread samples over threads, so the per-thread weight gradients are summed.
const ConvCfg kConvConfigs[] = {
    {3, 5, 3, 1, 0, 1, true, {2, 3, 8, 8}},
    {3, 4, 3, 2, 1, 1, true, {3, 3, 9, 7}},
    {4, 6, 3, 1, 1, 2, true, {2, 4, 6, 5}},
    {6, 6, 3, 2, 1, 6, true, {2, 6, 9, 9}},     // depthwise
    {4, 8, 5, 1, 2, 4, false, {2, 4, 7, 7}},    // depthwise with multiplier 2
    {4, 4, 3, 1, 0, 4, true, {2, 4, 6, 9}},     // depthwise, no padding, non-square
    {3, 3, 3, 2, 0, 3, true, {1, 3, 8, 7}},     // depthwise, stride 2 leaving a row unused
    {8, 4, 1, 1, 0, 1, true, {2, 8, 5, 5}},     // 1x1
    {6, 4, 1, 1, 0, 2, false, {2, 6, 3, 3}},    // 1x1 grouped
    {1, 2, 3, 3, 0, 1, true, {1, 1, 7, 7}},     // stride larger than the kernel
    {1, 6, 5, 1, 2, 1, true, {8, 1, 28, 28}},   // LeNet-5 conv1
    {6, 16, 5, 1, 0, 1, true, {8, 6, 14, 14}},  // LeNet-5 conv2
    {16, 16, 3, 1, 1, 16, true, {16, 16, 16, 16}},  // depthwise, parallel
    // Stride 1 with C*K*K >= 32 and 16 or more samples per thread takes the sample-interleaved
    // kernels; odd batch sizes leave a partial block of samples.
    {6, 16, 5, 1, 0, 1, true, {20, 6, 14, 14}},
    {16, 32, 3, 1, 1, 1, false, {17, 16, 7, 7}},
    {8, 16, 3, 1, 1, 2, true, {33, 8, 12, 12}},
    {16, 8, 3, 1, 1, 1, false, {50, 16, 9, 11}},
    // Blocks of one sample whose output channels fill whole vectors (16, 32, 48, 64 per group)
    // and whose wide grid would waste many columns put the channels in the vector lanes: rows of
    // 26 outputs (tiles of 12, 12 and 2), groups, and channels in tiles of one vector (16) and
    // two (64 = 32 + 32, 48 = 32 + 16).
    {16, 64, 3, 1, 1, 1, true, {1, 16, 7, 7}},
    {10, 32, 5, 1, 0, 2, true, {2, 10, 30, 30}},
    {16, 48, 3, 1, 1, 1, false, {2, 16, 5, 6}},
    // Padded rows of two vectors (32 wide) with outputs in both write their rows straight from
    // tiles of two rows: 5 filters in a tile of 6 (a padding row), 4 filters, an odd number of
    // rows (a last tile of one), groups, no bias.
    {1, 5, 5, 1, 2, 1, false, {3, 1, 28, 28}},
    {2, 4, 3, 1, 1, 1, true, {2, 2, 27, 30}},
    {2, 6, 5, 1, 2, 2, true, {2, 2, 9, 28}},
};

}  // namespace

// ---- shapes, errors, descriptions, MACs --------------------------------------------------------

TEST_CASE("layers: output shapes", "[layers][conv2d][pool]") {
  CHECK(Conv2d(1, 6, 5, 1, 2).output_shape({4, 1, 28, 28}) == Shape{4, 6, 28, 28});
  CHECK(Conv2d(6, 16, 5).output_shape({4, 6, 14, 14}) == Shape{4, 16, 10, 10});
  CHECK(Conv2d(3, 8, 3, 2, 1).output_shape({2, 3, 7, 8}) == Shape{2, 8, 4, 4});
  CHECK(Conv2d(4, 4, 3, 1, 1, 4).output_shape({1, 4, 5, 5}) == Shape{1, 4, 5, 5});
  CHECK(BatchNorm2d(16).output_shape({2, 16, 3, 3}) == Shape{2, 16, 3, 3});
  CHECK(MaxPool2d(2).output_shape({4, 6, 28, 28}) == Shape{4, 6, 14, 14});
  CHECK(MaxPool2d(3, 2, 1).output_shape({1, 2, 7, 7}) == Shape{1, 2, 4, 4});
  CHECK(MaxPool2d(2).output_shape({1, 1, 5, 5}) == Shape{1, 1, 2, 2});  // floor, as PyTorch
  CHECK(AvgPool2d(2).output_shape({1, 3, 4, 6}) == Shape{1, 3, 2, 3});
  CHECK(GlobalAvgPool2d().output_shape({5, 7, 3, 2}) == Shape{5, 7});
  CHECK(Dropout().output_shape({3, 4}) == Shape{3, 4});
  Rng rng(1);
  Conv2d conv(3, 8, 3, 2, 1);
  CHECK(conv.forward(Tensor::randn({2, 3, 7, 8}, rng)).shape() == Shape{2, 8, 4, 4});
}

TEST_CASE("layers: shape errors name the layer and the shapes", "[layers][conv2d][pool]") {
  Conv2d conv(3, 8, 3);
  CHECK_THROWS_WITH(conv.forward(Tensor({2, 4, 5, 5})),
                    Catch::Contains("Conv2d(3, 8, kernel_size=3, stride=1)") &&
                        Catch::Contains("(N, 3, H, W)") && Catch::Contains("(2, 4, 5, 5)"));
  CHECK_THROWS_WITH(conv.output_shape({2, 3, 5}), Catch::Contains("(2, 3, 5)"));
  CHECK_THROWS_WITH(conv.output_shape({1, 3, 2, 5}),
                    Catch::Contains("(1, 3, 2, 5)") && Catch::Contains("smaller than the kernel"));
  CHECK_THROWS_WITH(Conv2d(6, 4, 3, 1, 0, 4), Catch::Contains("groups=4") &&
                                                  Catch::Contains("in_channels=6"));
  CHECK_THROWS_WITH(Conv2d(3, 4, 3, 0), Catch::Contains("stride"));
  CHECK_THROWS_WITH(BatchNorm2d(16).forward(Tensor({2, 8, 3, 3})),
                    Catch::Contains("BatchNorm2d(16)") && Catch::Contains("(2, 8, 3, 3)"));
  CHECK_THROWS_WITH(BatchNorm2d(2).forward(Tensor({1, 2, 1, 1})),
                    Catch::Contains("more than one value per channel"));
  CHECK_THROWS_WITH(MaxPool2d(2).forward(Tensor({2, 8})),
                    Catch::Contains("MaxPool2d(kernel_size=2, stride=2)") &&
                        Catch::Contains("(2, 8)"));
  CHECK_THROWS_WITH(AvgPool2d(3).output_shape({1, 1, 2, 2}),
                    Catch::Contains("AvgPool2d") && Catch::Contains("(1, 1, 2, 2)"));
  CHECK_THROWS_WITH(MaxPool2d(2, 2, 2), Catch::Contains("padding must be at most half"));
  CHECK_THROWS_WITH(GlobalAvgPool2d().forward(Tensor({3, 4})),
                    Catch::Contains("GlobalAvgPool2d") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(Dropout(1.5f), Catch::Contains("p=1.5"));
  Conv2d c2(2, 2, 3);
  Rng rng(2);
  c2.forward(Tensor::randn({1, 2, 5, 5}, rng));
  CHECK_THROWS_WITH(c2.backward(Tensor({1, 2, 2, 2})),
                    Catch::Contains("dy") && Catch::Contains("(1, 2, 3, 3)") &&
                        Catch::Contains("(1, 2, 2, 2)"));
}

TEST_CASE("layers: backward needs a training-mode forward", "[layers][conv2d][pool]") {
  Rng rng(3);
  const Tensor x = Tensor::randn({1, 2, 4, 4}, rng);
  Conv2d conv(2, 2, 3);
  conv.eval();
  conv.forward(x);
  CHECK_THROWS_WITH(conv.backward(Tensor({1, 2, 2, 2})), Catch::Contains("training-mode"));
  MaxPool2d pool(2);
  pool.eval();
  pool.forward(x);
  CHECK_THROWS_WITH(pool.backward(Tensor({1, 2, 2, 2})), Catch::Contains("training-mode"));
}

TEST_CASE("layers: describe() follows PyTorch's repr", "[layers]") {
  CHECK(Conv2d(1, 6, 5, 1, 2).describe() == "Conv2d(1, 6, kernel_size=5, stride=1, padding=2)");
  CHECK(Conv2d(6, 16, 5).describe() == "Conv2d(6, 16, kernel_size=5, stride=1)");
  CHECK(Conv2d(8, 8, 3, 2, 1, 8, false).describe() ==
        "Conv2d(8, 8, kernel_size=3, stride=2, padding=1, groups=8, bias=false)");
  CHECK(BatchNorm2d(16).describe() == "BatchNorm2d(16)");
  CHECK(BatchNorm2d(4, 1e-3f, 0.01f).describe() == "BatchNorm2d(4, eps=0.001, momentum=0.01)");
  CHECK(MaxPool2d(2).describe() == "MaxPool2d(kernel_size=2, stride=2)");
  CHECK(MaxPool2d(3, 2, 1).describe() == "MaxPool2d(kernel_size=3, stride=2, padding=1)");
  CHECK(AvgPool2d(2, 1).describe() == "AvgPool2d(kernel_size=2, stride=1)");
  CHECK(GlobalAvgPool2d().describe() == "GlobalAvgPool2d()");
  CHECK(Dropout(0.25f).describe() == "Dropout(p=0.25)");
}

TEST_CASE("layers: macs", "[layers][conv2d]") {
  // LeNet-5: conv1 6 x 28 x 28 outputs of 25 products; conv2 16 x 10 x 10 outputs of 6 x 25.
  CHECK(Conv2d(1, 6, 5, 1, 2).macs({1, 1, 28, 28}) == 117600);
  CHECK(Conv2d(6, 16, 5).macs({1, 6, 14, 14}) == 240000);
  CHECK(Conv2d(6, 16, 5).macs({64, 6, 14, 14}) == 64 * 240000);
  // Grouped: each output sees Cin/G = 2 channels: 2 * 8 * (4 * 4) * 2 * 9.
  CHECK(Conv2d(4, 8, 3, 1, 1, 2).macs({2, 4, 4, 4}) == 2 * 8 * 16 * 2 * 9);
  // Depthwise: 9 products per output.
  CHECK(Conv2d(8, 8, 3, 1, 1, 8).macs({2, 8, 10, 10}) == 2 * 8 * 100 * 9);
  CHECK(MaxPool2d(2).macs({1, 6, 28, 28}) == 0);
  CHECK(BatchNorm2d(6).macs({1, 6, 28, 28}) == 0);
}

TEST_CASE("layers: parameters and buffers carry PyTorch's names", "[layers][batchnorm]") {
  Sequential net;
  net.emplace<Conv2d>(1, 4, 3, 1, 1, 1, false);
  net.emplace<BatchNorm2d>(4);
  net.emplace<ReLU>();
  std::vector<std::string> names;
  for (auto& p : net.named_parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"0.weight", "1.weight", "1.bias"});
  names.clear();
  for (auto& b : net.named_buffers()) names.push_back(b.name);
  CHECK(names == std::vector<std::string>{"1.running_mean", "1.running_var"});
  Conv2d conv(3, 6, 5, 1, 0, 3);
  CHECK(conv.weight.value.shape() == Shape{6, 1, 5, 5});
  CHECK(conv.bias.value.shape() == Shape{6});
  CHECK(Conv2d(3, 6, 5, 1, 0, 1, false).bias.value.shape() == Shape{0});
}

// ---- Conv2d against the naive loops ------------------------------------------------------------

TEST_CASE("conv2d: forward equals the naive seven-loop convolution", "[conv2d]") {
  Rng rng(10);
  for (const ConvCfg& c : kConvConfigs) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
    conv.bias.value = Tensor::randn(conv.bias.value.shape(), rng);
    const Tensor x = Tensor::randn(c.input, rng);
    const Tensor want = conv2d_naive(x, conv.weight.value, conv.bias.value, c.stride, c.padding,
                                     c.groups);
    conv.eval();
    const Tensor got = conv.forward(x);
    INFO(conv.describe() << " on " << shape_str(c.input));
    // Measured: at most 4.3e-7 (float32 sums against double sums), at 1 and at 2 threads.
    CHECK(max_rel_err(got, want) < 1e-5f);
  }
}

TEST_CASE("conv2d: backward equals the naive loops and is deterministic", "[conv2d]") {
  Rng rng(11);
  for (const ConvCfg& c : kConvConfigs) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
    const Tensor x = Tensor::randn(c.input, rng);
    const Tensor y = conv.forward(x);
    const Tensor dy = Tensor::randn(y.shape(), rng);
    Tensor want_dx, want_dw;
    conv2d_naive_backward(x, conv.weight.value, dy, c.stride, c.padding, c.groups, want_dx,
                          want_dw);
    const Tensor dx = conv.backward(dy);
    INFO(conv.describe() << " on " << shape_str(c.input));
    // Measured: at most 4.4e-7 over dx, dW and db, at 1 and at 2 threads.
    CHECK(max_rel_err(dx, want_dx) < 1e-5f);
    CHECK(max_rel_err(conv.weight.grad, want_dw) < 1e-5f);
    if (c.bias) {
      Tensor want_db = dy.sum(0).sum(1).sum(1);  // (N, Cout, OH, OW) -> (Cout)
      CHECK(max_rel_err(conv.bias.grad, want_db) < 1e-5f);
    }
    // The same call again gives the same bits (fixed thread count, fixed summation order).
    const Tensor dw1 = conv.weight.grad;
    conv.zero_grad();
    conv.forward(x);
    const Tensor dx2 = conv.backward(dy);
    CHECK(dx2.equal(dx));
    CHECK(conv.weight.grad.equal(dw1));
  }
}

TEST_CASE("conv2d: forward repacks its weights after any change (in place too)", "[conv2d]") {
  // Forward keeps its packed weights from call to call while the weights stay bit for bit the
  // same; a changed weight, even one written in place through data(), must be seen at the next
  // call. One sample on the channel lanes, one on the wide grid, and 16 interleaved samples.
  Rng rng(16);
  const ConvCfg cases[] = {{6, 16, 5, 1, 0, 1, true, {1, 6, 14, 14}},
                           {1, 6, 5, 1, 2, 1, true, {1, 1, 28, 28}},
                           {6, 16, 5, 1, 0, 1, true, {16, 6, 14, 14}}};
  for (const ConvCfg& c : cases) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
    conv.bias.value = Tensor::randn(conv.bias.value.shape(), rng);
    conv.eval();
    const Tensor x = Tensor::randn(c.input, rng);
    INFO(conv.describe() << " on " << shape_str(c.input));
    const Tensor before = conv.forward(x);
    CHECK(conv.forward(x).equal(before));  // the reused pack gives the same bits
    // The last weight of the last output channel, in place.
    conv.weight.value.data()[conv.weight.value.numel() - 1] += 1.0f;
    const Tensor after = conv.forward(x);
    const Tensor want = conv2d_naive(x, conv.weight.value, conv.bias.value, c.stride, c.padding,
                                     c.groups);
    CHECK(max_rel_err(after, want) < 1e-5f);
    CHECK_FALSE(after.equal(before));
  }
}

TEST_CASE("conv2d: one layer on inputs of changing sizes", "[conv2d]") {
  // Forward keeps per-size state from call to call (the tap offsets of a sample's block): a
  // layer fed images of other sizes, one sample or a batch, and then the first size again must
  // still equal the naive loops. On the wide grid (1 -> 6 channels) and on the lanes (6 -> 16).
  Rng rng(17);
  const ConvCfg layers[] = {{1, 6, 5, 1, 2, 1, true, {}}, {6, 16, 5, 1, 0, 1, true, {}}};
  for (const ConvCfg& c : layers) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
    conv.bias.value = Tensor::randn(conv.bias.value.shape(), rng);
    conv.eval();
    for (const Shape& shape : {Shape{1, c.cin, 28, 28}, Shape{1, c.cin, 14, 9},
                               Shape{3, c.cin, 14, 9}, Shape{1, c.cin, 28, 28}}) {
      const Tensor x = Tensor::randn(shape, rng);
      const Tensor want = conv2d_naive(x, conv.weight.value, conv.bias.value, c.stride,
                                       c.padding, c.groups);
      INFO(conv.describe() << " on " << shape_str(shape));
      CHECK(max_rel_err(conv.forward(x), want) < 1e-5f);
    }
  }
}

TEST_CASE("conv2d: a first layer's weight gradient on interleaved samples", "[conv2d]") {
  // Without an input gradient, a stride-1 layer's backward interleaves blocks of 16 samples
  // whatever its C*K*K (LeNet-5's first layer has 25): 37 samples leave a partial block, on one
  // thread (blocks of 16, then single samples) and on two (each thread's share split the same
  // way, the partial sums added in thread order). Odd sizes and a grouped layer too.
  Rng rng(19);
  const ConvCfg cfgs[] = {{1, 6, 5, 1, 2, 1, true, {37, 1, 28, 28}},
                          {2, 3, 3, 1, 1, 1, true, {33, 2, 9, 7}},
                          {2, 4, 3, 1, 0, 2, false, {17, 2, 6, 11}}};
  const int saved = num_threads();
  for (const ConvCfg& c : cfgs) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
      conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
      conv.needs_input_grad = false;
      const Tensor x = Tensor::randn(c.input, rng);
      const Tensor y = conv.forward(x);
      const Tensor dy = Tensor::randn(y.shape(), rng);
      CHECK(conv.backward(dy).shape() == Shape{0});
      Tensor dx, dw;
      conv2d_naive_backward(x, conv.weight.value, dy, c.stride, c.padding, c.groups, dx, dw);
      INFO(conv.describe() << " on " << shape_str(c.input) << ", " << threads << " threads");
      CHECK(max_rel_err(conv.weight.grad, dw) < 1e-5f);
      if (c.bias) {
        Tensor db({c.cout});
        for (int64_t n = 0; n < dy.size(0); ++n)
          for (int64_t o = 0; o < c.cout; ++o)
            for (int64_t p = 0; p < dy.size(2) * dy.size(3); ++p)
              db[o] += dy[(n * c.cout + o) * dy.size(2) * dy.size(3) + p];
        CHECK(max_rel_err(conv.bias.grad, db) < 1e-5f);
      }
    }
  }
  set_num_threads(saved);
}

TEST_CASE("conv2d: needs_input_grad=false skips dx but not the parameter gradients",
          "[conv2d]") {
  Rng rng(12);
  // One configuration per lowering: wide grid, strided im2col, pointwise, depthwise (strided).
  const ConvCfg cfgs[] = {{2, 3, 3, 1, 1, 1, true, {2, 2, 5, 5}},
                          {2, 3, 3, 2, 1, 1, true, {2, 2, 5, 5}},
                          {2, 3, 1, 1, 0, 1, true, {2, 2, 5, 5}},
                          {2, 4, 3, 2, 1, 2, true, {2, 2, 5, 5}}};
  const Tensor x = Tensor::randn({2, 2, 5, 5}, rng);
  for (const ConvCfg& c : cfgs) {
    Conv2d conv(c.cin, c.cout, c.k, c.stride, c.padding, c.groups, c.bias);
    conv.weight.value = Tensor::randn(conv.weight.value.shape(), rng);
    const Tensor y = conv.forward(x);
    const Tensor dy = Tensor::randn(y.shape(), rng);
    conv.backward(dy);
    const Tensor dw = conv.weight.grad, db = conv.bias.grad;
    conv.zero_grad();
    conv.needs_input_grad = false;
    conv.forward(x);
    INFO(conv.describe());
    CHECK(conv.backward(dy).shape() == Shape{0});
    CHECK(conv.weight.grad.equal(dw));
    CHECK(conv.bias.grad.equal(db));
  }
  for (Module* m : std::vector<Module*>{new MaxPool2d(2), new AvgPool2d(2), new BatchNorm2d(2),
                                        new GlobalAvgPool2d(), new Dropout(0.5f)}) {
    std::unique_ptr<Module> owned(m);
    m->needs_input_grad = false;
    const Tensor y = m->forward(x);
    INFO(m->describe());
    CHECK(m->backward(Tensor(y.shape())).shape() == Shape{0});
  }
}

// ---- ReLU ----------------------------------------------------------------------------------------

TEST_CASE("relu: training forward and backward over vector tails, zeros and NaN", "[relu]") {
  // The training forward stores the output and a byte mask 16 elements at a time with a masked
  // tail (and across threads from 2^16 elements): every size around a vector, and one past the
  // parallel threshold. Zero, -0, NaN and infinities give 0 and a closed mask, as in evaluation.
  Rng rng(23);
  const float specials[] = {0.0f, -0.0f, std::nanf(""), INFINITY, -INFINITY, 1e-38f, -1e-38f};
  for (int64_t n : {1, 7, 15, 16, 17, 31, 33, 100, 65537}) {
    Tensor x = Tensor::randn({n}, rng);
    for (int64_t i = 0; i < n; i += 5) x[i] = specials[(i / 5) % 7];
    const Tensor dy = Tensor::randn({n}, rng);
    for (bool owned : {false, true}) {
      ReLU relu;
      Tensor copy = x;
      const Tensor y = owned ? relu.forward_owned(std::move(copy)) : relu.forward(x);
      Tensor g = dy;
      const Tensor dx = owned ? relu.backward_owned(std::move(g)) : relu.backward(dy);
      relu.eval();
      const Tensor y_eval = relu.forward(x);
      INFO("n=" << n << (owned ? " owned" : ""));
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool pos = x[i] > 0.0f;
        const float want_y = pos ? x[i] : 0.0f, want_dx = pos ? dy[i] : 0.0f;
        if (y[i] != want_y || y_eval[i] != want_y || dx[i] != want_dx || std::signbit(y[i]))
          ++bad;
      }
      CHECK(bad == 0);
    }
  }
}

// ---- BatchNorm2d -------------------------------------------------------------------------------

TEST_CASE("batchnorm: training normalizes with batch statistics and updates running ones",
          "[batchnorm]") {
  // Channel 0 holds {1, 2, 3, 4}, channel 1 {10, 10, 10, 14}: N = 2, H = 1, W = 2.
  const Tensor x({2, 2, 1, 2}, std::vector<float>{1, 2, 10, 10, 3, 4, 10, 14});
  BatchNorm2d bn(2);
  const Tensor y = bn.forward(x);
  // Channel 0: mean 2.5, biased variance 1.25, unbiased 5/3.
  // Channel 1: mean 11, biased variance 3, unbiased 4.
  const float inv0 = 1.0f / std::sqrt(1.25f + 1e-5f), inv1 = 1.0f / std::sqrt(3.0f + 1e-5f);
  CHECK(y.at({0, 0, 0, 0}) == Approx((1 - 2.5f) * inv0));
  CHECK(y.at({1, 0, 0, 1}) == Approx((4 - 2.5f) * inv0));
  CHECK(y.at({1, 1, 0, 1}) == Approx((14 - 11.0f) * inv1));
  CHECK(bn.running_mean[0] == Approx(0.1 * 2.5));
  CHECK(bn.running_mean[1] == Approx(0.1 * 11));
  CHECK(bn.running_var[0] == Approx(0.9 + 0.1 * 5.0 / 3.0));
  CHECK(bn.running_var[1] == Approx(0.9 + 0.1 * 4.0));
  bn.forward(x);  // a second step moves 10% of the remaining way
  CHECK(bn.running_mean[0] == Approx(0.9 * 0.25 + 0.1 * 2.5));
}

TEST_CASE("batchnorm: evaluation uses the running statistics and leaves them alone",
          "[batchnorm]") {
  Rng rng(13);
  BatchNorm2d bn(3, 1e-3f);
  bn.weight.value = Tensor({3}, std::vector<float>{1.5f, -0.5f, 2.0f});
  bn.bias.value = Tensor({3}, std::vector<float>{0.1f, 0.2f, -0.3f});
  bn.running_mean = Tensor({3}, std::vector<float>{0.5f, -1.0f, 2.0f});
  bn.running_var = Tensor({3}, std::vector<float>{4.0f, 0.25f, 1.0f});
  bn.eval();
  const Tensor x = Tensor::randn({2, 3, 2, 2}, rng);
  const Tensor y = bn.forward(x);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 4; ++i) {
        const float v = x.at({n, c, i / 2, i % 2});
        const float want = (v - bn.running_mean[c]) / std::sqrt(bn.running_var[c] + 1e-3f) *
                               bn.weight.value[c] +
                           bn.bias.value[c];
        CHECK(y.at({n, c, i / 2, i % 2}) == Approx(want).margin(1e-6));
      }
  CHECK(bn.running_mean.to_vector() == std::vector<float>{0.5f, -1.0f, 2.0f});
  CHECK(bn.running_var.to_vector() == std::vector<float>{4.0f, 0.25f, 1.0f});
  // A batch of one is fine in evaluation mode.
  CHECK(bn.forward(Tensor({1, 3, 1, 1})).shape() == Shape{1, 3, 1, 1});
}

// ---- pooling -----------------------------------------------------------------------------------

TEST_CASE("pooling: values, ties and padding", "[pool]") {
  SECTION("max pooling routes the gradient to the first of equal maxima") {
    MaxPool2d pool(2);
    const Tensor x({1, 1, 2, 4}, std::vector<float>{1, 3, 5, 5, 3, 2, 5, 5});
    const Tensor y = pool.forward(x);
    CHECK(y.to_vector() == std::vector<float>{3, 5});
    const Tensor dx = pool.backward(Tensor({1, 1, 1, 2}, std::vector<float>{1, 2}));
    CHECK(dx.to_vector() == std::vector<float>{0, 1, 2, 0, 0, 0, 0, 0});
  }
  SECTION("max pooling propagates NaN, as PyTorch") {
    MaxPool2d pool(2);
    const float nan = std::nanf("");
    const Tensor x({1, 1, 2, 4}, std::vector<float>{1, nan, 5, 5, 3, 2, 5, 6});
    const Tensor y = pool.forward(x);
    CHECK(std::isnan(y[0]));
    CHECK(y[1] == 6);
    const Tensor dx = pool.backward(Tensor({1, 1, 1, 2}, std::vector<float>{1, 2}));
    CHECK(dx.to_vector() == std::vector<float>{0, 1, 0, 0, 0, 0, 0, 2});
  }
  SECTION("max pooling never picks the padding, even for negative inputs") {
    MaxPool2d pool(3, 2, 1);
    const Tensor y = pool.forward(Tensor::full({1, 1, 3, 3}, -2.0f));
    CHECK(y.to_vector() == std::vector<float>{-2, -2, -2, -2});
  }
  SECTION("average pooling divides by K*K, padding included (count_include_pad)") {
    AvgPool2d pool(2, 1, 1);
    const Tensor y = pool.forward(Tensor::ones({1, 1, 2, 2}));
    CHECK(y.to_vector() == std::vector<float>{0.25f, 0.5f, 0.25f, 0.5f, 1, 0.5f, 0.25f, 0.5f,
                                              0.25f});
  }
  SECTION("global average pooling is the mean of each plane") {
    GlobalAvgPool2d gap;
    const Tensor x({1, 2, 1, 3}, std::vector<float>{1, 2, 6, -1, -1, -4});
    CHECK(gap.forward(x).to_vector() == std::vector<float>{3, -2});
    CHECK(gap.backward(Tensor({1, 2}, std::vector<float>{3, 6})).to_vector() ==
          std::vector<float>{1, 1, 1, 2, 2, 2});
  }
}

TEST_CASE("pooling: 2x2 max pooling equals the four-step scan on awkward sizes, ties and NaNs",
          "[pool]") {
  // The 2x2, stride-2 window has its own kernels (rows of up to 16 outputs in AVX-512 registers,
  // or a gather over the plane): odd heights and widths (the last row or column unused), rows
  // of exactly 16 outputs and of 20 (16 + 4), values drawn from {0, 1, 2} so that ties are
  // everywhere, and a NaN in about one window in four.
  Rng rng(15);
  const float nan = std::nanf("");
  const Shape shapes[] = {{2, 3, 5, 9}, {1, 2, 28, 28}, {3, 1, 32, 33}, {1, 1, 41, 40}, {2, 2, 2, 2}};
  for (const Shape& shape : shapes) {
    Tensor x = Tensor::rand(shape, rng, 0.0f, 3.0f);
    float* px = x.data();
    for (int64_t i = 0; i < x.numel(); ++i) {
      px[i] = std::floor(px[i]);
      if (rng.uniform() < 0.07) px[i] = nan;
    }
    MaxPool2d pool(2);
    const Tensor y = pool.forward(x);
    const int64_t H = shape[2], W = shape[3], OH = H / 2, OW = W / 2;
    const Tensor dy = Tensor::rand(y.shape(), rng, 1.0f, 2.0f);
    const Tensor dx = pool.backward(dy);
    Tensor want_dx(shape);
    for (int64_t q = 0; q < shape[0] * shape[1]; ++q)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          // PyTorch's scan: (0,0), (0,1), (1,0), (1,1); a later value wins when greater or NaN.
          int64_t best = q * H * W + 2 * oh * W + 2 * ow;
          for (int64_t k : {int64_t{1}, W, W + 1}) {
            const int64_t i = q * H * W + 2 * oh * W + 2 * ow + k;
            if (px[i] > px[best] || std::isnan(px[i])) best = i;
          }
          const int64_t o = (q * OH + oh) * OW + ow;
          INFO(shape_str(shape) << " plane " << q << " output (" << oh << ", " << ow << ")");
          if (std::isnan(px[best]))
            CHECK(std::isnan(y[o]));
          else
            CHECK(y[o] == px[best]);
          want_dx.data()[best] += dy[o];
        }
    INFO(shape_str(shape));
    CHECK(dx.equal(want_dx));
  }
}

// ---- Dropout -----------------------------------------------------------------------------------

TEST_CASE("dropout: identity in evaluation, keeps about 1 - p in training", "[dropout]") {
  Rng rng(14);
  const Tensor x = Tensor::rand({200, 500}, rng, 1.0f, 2.0f);  // never zero
  Dropout drop(0.3f, 7);
  drop.eval();
  CHECK(drop.forward(x).equal(x));
  const Tensor dy = Tensor::randn(x.shape(), rng);
  CHECK(drop.backward(dy).equal(dy));

  drop.train();
  const Tensor y = drop.forward(x);
  int64_t kept = 0;
  bool scaled = true;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (y[i] == 0.0f) continue;
    ++kept;
    scaled = scaled && std::fabs(y[i] - x[i] / 0.7f) <= 1e-6f * std::fabs(y[i]);
  }
  // 100000 Bernoulli(0.7) draws: standard deviation of the rate 0.0014; 0.01 is 7 of them.
  CHECK(static_cast<double>(kept) / x.numel() == Approx(0.7).margin(0.01));
  CHECK(scaled);
  const Tensor dx = drop.backward(dy);
  for (int64_t i = 0; i < x.numel(); i += 997)
    CHECK(dx[i] == Approx(y[i] == 0.0f ? 0.0f : dy[i] / 0.7f).epsilon(1e-6));

  // Same seed, same mask; the next call draws a new one. forward_owned draws the same masks.
  Dropout owned(0.3f, 7);
  CHECK(owned.forward_owned(Tensor(x)).equal(y));
  CHECK(owned.backward_owned(Tensor(dy)).equal(dx));
  owned.eval();
  CHECK(owned.forward_owned(Tensor(x)).equal(x));
  CHECK(owned.backward_owned(Tensor(dy)).equal(dy));
  Dropout again(0.3f, 7);
  CHECK(again.forward(x).equal(y));
  CHECK(!again.forward(x).equal(y));
  again.reseed(7);
  CHECK(again.forward(x).equal(y));
  Dropout all(1.0f);
  CHECK(all.forward(x).count_nonzero() == 0);
}
