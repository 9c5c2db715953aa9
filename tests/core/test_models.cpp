// Models and metrics: parameter and MAC counts that the literature states, names as in PyTorch.
#include <catch2/catch.hpp>

#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "effml/rng.h"

using namespace effml;

TEST_CASE("models: LeNet-300-100 has 266,610 parameters and 266,200 MACs", "[models]") {
  auto m = make_model("lenet300", 0);
  // 784*300 + 300 + 300*100 + 100 + 100*10 + 10 (LeCun et al. 1998; Han et al. 2015, Table 1).
  CHECK(count_parameters(*m) == 266610);
  // One multiply-accumulate per weight for a batch of one.
  CHECK(count_macs(*m, image_input_shape(1)) == 266200);
  CHECK(count_macs(*m, image_input_shape(8)) == 8 * 266200);
  CHECK(model_size_bytes(*m, 32) == 266610 * 4.0);
  CHECK(model_size_bytes(*m, 4) == 266610 / 2.0);
  std::vector<std::string> names;
  for (auto& np : m->named_parameters()) names.push_back(np.name);
  CHECK(names == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                          "fc3.weight", "fc3.bias"});
}

TEST_CASE("models: LeNet-5 counts", "[models]") {
  auto m = make_model("lenet5", 0);
  // conv1 6*25+6, conv2 16*6*25+16, fc 400*120+120, 120*84+84, 84*10+10.
  CHECK(count_parameters(*m) == 156 + 2416 + 48120 + 10164 + 850);
  // conv1 6*28*28*25, conv2 16*10*10*150, fc 400*120 + 120*84 + 84*10.
  CHECK(count_macs(*m, image_input_shape(1)) == 117600 + 240000 + 48000 + 10080 + 840);
  CHECK(m->parameter("features.0.weight").value.shape() == Shape{6, 1, 5, 5});
  CHECK(m->parameter("classifier.4.bias").value.shape() == Shape{10});
}

TEST_CASE("models: the VGG-style CNN maps an image to 10 logits", "[models]") {
  auto m = make_model("vgg", 0);
  CHECK(m->output_shape(image_input_shape(2)) == Shape{2, 10});
  CHECK(m->forward(Tensor(image_input_shape(2))).shape() == Shape{2, 10});
  // conv-BN pairs are what channel pruning slices; batch-norm buffers carry PyTorch's names.
  CHECK(m->parameter("features.1.weight").value.shape() == Shape{16});
  bool has_running_var = false;
  for (auto& b : m->named_buffers()) has_running_var |= b.name == "features.1.running_var";
  CHECK(has_running_var);
}

TEST_CASE("models: unknown names are listed", "[models]") {
  CHECK_THROWS_WITH(make_model("resnet", 0), Catch::Contains("lenet300") &&
                                                 Catch::Contains("resnet"));
}

TEST_CASE("models: the same seed gives the same weights, another seed others", "[models]") {
  auto a = make_model("lenet5", 3), b = make_model("lenet5", 3), c = make_model("lenet5", 4);
  CHECK(a->parameter("features.0.weight").value.equal(b->parameter("features.0.weight").value));
  CHECK_FALSE(
      a->parameter("features.0.weight").value.equal(c->parameter("features.0.weight").value));
}

TEST_CASE("models: forward_owned and backward_owned give the same outputs and gradients",
          "[models]") {
  // Sequential hands intermediate results on with forward_owned and backward_owned, so that
  // ReLU and Flatten work in place and Conv2d and Linear keep their inputs for backward without a
  // copy. Calling the whole model either way must not change a bit, in either mode, nor touch
  // the caller's input or gradient.
  Rng rng(21);
  for (const char* name : {"lenet300", "lenet5", "vgg"}) {
    for (const bool training : {true, false}) {
      INFO(name << (training ? " in training mode" : " in evaluation mode"));
      auto a = make_model(name, 3), b = make_model(name, 3);
      a->train(training);
      b->train(training);
      const Tensor x = Tensor::randn(image_input_shape(5), rng);
      const Tensor x_before = x;
      const Tensor ya = a->forward(x);
      const Tensor yb = b->forward_owned(Tensor(x));
      CHECK(x.equal(x_before));
      CHECK(ya.equal(yb));
      // A second call reuses the layers' kept buffers (ReLU masks, conv packs).
      CHECK(a->forward(x).equal(b->forward_owned(Tensor(x))));
      if (!training) continue;
      const Tensor dy = Tensor::randn(ya.shape(), rng);
      const Tensor dy_before = dy;
      a->needs_input_grad = b->needs_input_grad = true;  // so that dx comes back too
      a->forward(x);
      b->forward_owned(Tensor(x));
      const Tensor dxa = a->backward(dy);
      const Tensor dxb = b->backward_owned(Tensor(dy));
      CHECK(dy.equal(dy_before));
      CHECK(dxa.shape() == x.shape());
      CHECK(dxa.equal(dxb));
      auto pa = a->named_parameters(), pb = b->named_parameters();
      REQUIRE(pa.size() == pb.size());
      for (std::size_t i = 0; i < pa.size(); ++i) {
        INFO(pa[i].name);
        CHECK(pa[i].param->grad.equal(pb[i].param->grad));
      }
    }
  }
}

TEST_CASE("models: a Sequential leaves its input alone when its first layer works in place",
          "[models]") {
  // Only the modules after the first receive an owned tensor: a ReLU or Flatten first must not
  // write into the caller's input, in either mode.
  Rng rng(22);
  for (const bool training : {true, false}) {
    Sequential s;
    s.emplace<ReLU>();
    s.emplace<Flatten>();
    s.emplace<ReLU>();
    s.train(training);
    const Tensor x = Tensor::randn({3, 2, 4, 4}, rng);
    const Tensor x_before = x;
    const Tensor y = s.forward(x);
    CHECK(x.equal(x_before));
    CHECK(y.equal(x.relu().reshape({3, 32})));
    if (!training) continue;
    // Backward likewise leaves the caller's dy alone when its last layer could work in place.
    const Tensor dy = Tensor::randn(y.shape(), rng);
    const Tensor dy_before = dy;
    const Tensor dx = s.backward(dy);
    CHECK(dy.equal(dy_before));
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(dx[i] == (x[i] > 0.0f ? dy[i] : 0.0f));
  }
}

namespace {
// Runs the modules of s one by one (forward, then backward in reverse), as a Sequential did
// before it fused a ReLU into the max pool after it: the reference for the fused path.
Tensor forward_each(Sequential& s, const Tensor& x) {
  Tensor h = x;
  for (std::size_t i = 0; i < s.size(); ++i) h = s[i].forward(h);
  return h;
}
Tensor backward_each(Sequential& s, const Tensor& dy) {
  Tensor g = dy;
  for (std::size_t i = s.size(); i-- > 0;) g = s[i].backward(g);
  return g;
}

// fused (a Sequential that fuses its ReLU, module 1) against each (the same modules and
// parameters, run one by one) on x: the output and, in training mode, the input gradient and
// the first module's parameter gradients, bit for bit; and the fused ReLU, which kept no mask
// of its own, throws when its backward is called alone.
void check_fused_equals_each(Sequential& fused, Sequential& each, const Tensor& x, Rng& rng) {
  const Tensor y = fused.forward(x), want = forward_each(each, x);
  CHECK(y.shape() == want.shape());
  CHECK(y.equal(want));
  if (!fused.is_training()) return;
  const Tensor dy = Tensor::randn(y.shape(), rng);
  fused.needs_input_grad = true;
  fused.forward(x);
  const Tensor dx = fused.backward(dy), dx_want = backward_each(each, dy);
  CHECK(dx.equal(dx_want));
  const auto pf = fused[0].named_parameters(), pe = each[0].named_parameters();
  REQUIRE(pf.size() == pe.size());
  for (std::size_t p = 0; p < pf.size(); ++p) CHECK(pf[p].param->grad.equal(pe[p].param->grad));
  CHECK_THROWS(fused[1].backward(Tensor(x.shape())));
}
}  // namespace

TEST_CASE("models: a ReLU fused into the 2x2 max pool after it changes no bit", "[models]") {
  // Sequential runs ReLU then MaxPool2d(2) as one pass (MaxPool2d::forward_relu). Against the
  // two modules run one by one: outputs, input gradients and the conv's weight gradient, equal
  // bit for bit, in both modes; on inputs with negative windows (output 0, no gradient), ties,
  // zeros of both signs, NaN and infinities, and odd sizes (a row and a column no window reads).
  Rng rng(24);
  const float specials[] = {0.0f, -0.0f, std::nanf(""), INFINITY, -INFINITY, -1.0f, 2.0f};
  for (const Shape& shape : {Shape{3, 2, 8, 8}, Shape{2, 3, 7, 9}, Shape{1, 1, 2, 34}}) {
    for (const bool training : {true, false}) {
      Sequential fused, each;
      for (Sequential* s : {&fused, &each}) {
        Conv2d& conv = s->emplace<Conv2d>(shape[1], 3, 1);  // 1x1: the input's specials pass on
        conv.weight.value.fill_(1.0f);
        conv.bias.value.fill_(0.0f);
        s->emplace<ReLU>();
        s->emplace<MaxPool2d>(2);
        s->train(training);
      }
      Tensor x = Tensor::randn(shape, rng);
      for (int64_t i = 0; i < x.numel(); i += 3) x[i] = specials[(i / 3) % 7];
      for (int64_t i = 1; i + 1 < x.numel(); i += 11) x[i + 1] = x[i];  // ties
      INFO(shape_str(shape) << (training ? " training" : " evaluation"));
      check_fused_equals_each(fused, each, x, rng);
    }
  }
}

TEST_CASE("models: a convolution computing its ReLU and max pool changes no bit", "[models]") {
  // Sequential runs Conv2d, ReLU, MaxPool2d(2) as one pass when the convolution's samples go
  // through padded rows of two vectors (Conv2d::fuses_relu_pool): LeNet-5's first block, an odd
  // number of rows (the last one unused by the pool), an odd width (29, a 4x4 kernel), groups,
  // no bias, tiles of 4 and 6 filters with padding rows. Against the three modules run one by one: outputs, input
  // and parameter gradients equal bit for bit, in both modes, NaN and infinities included.
  struct Case {
    int64_t cin, cout, k, pad, groups;
    bool bias;
    Shape input;
  };
  const Case cases[] = {{1, 6, 5, 2, 1, true, {3, 1, 28, 28}},
                        {1, 5, 5, 2, 1, false, {2, 1, 27, 28}},
                        {1, 4, 4, 2, 1, true, {2, 1, 9, 28}},
                        {4, 6, 3, 1, 2, true, {1, 4, 6, 30}}};
  Rng rng(26);
  for (const Case& c : cases) {
    for (const bool training : {true, false}) {
      Sequential fused, each;
      for (Sequential* s : {&fused, &each}) {
        s->emplace<Conv2d>(c.cin, c.cout, c.k, 1, c.pad, c.groups, c.bias);
        s->emplace<ReLU>();
        s->emplace<MaxPool2d>(2);
        s->train(training);
      }
      Rng wr(27);
      for (Sequential* s : {&fused, &each}) {
        auto& conv = static_cast<Conv2d&>((*s)[0]);
        Rng r = wr;  // the same weights in both
        conv.weight.value = Tensor::randn(conv.weight.value.shape(), r);
        if (c.bias) conv.bias.value = Tensor::randn(conv.bias.value.shape(), r);
      }
      Tensor x = Tensor::randn(c.input, rng);
      x[5] = std::nanf("");
      x[40] = INFINITY;
      INFO(fused[0].describe() << " on " << shape_str(c.input)
                               << (training ? " training" : " evaluation"));
      REQUIRE(static_cast<Conv2d&>(fused[0]).fuses_relu_pool(
          c.input, static_cast<MaxPool2d&>(fused[2])));
      check_fused_equals_each(fused, each, x, rng);
    }
  }
}

TEST_CASE("models: no fusion where the pool cannot compute the ReLU", "[models]") {
  // A 3x3 pool, a padded pool and a pool before the ReLU run module by module: the ReLU keeps
  // its own mask, and its backward alone works.
  Rng rng(25);
  for (int variant = 0; variant < 3; ++variant) {
    Sequential s;
    if (variant == 2) s.emplace<MaxPool2d>(2);
    s.emplace<ReLU>();
    if (variant == 0) s.emplace<MaxPool2d>(3);
    if (variant == 1) s.emplace<MaxPool2d>(2, 2, 1);
    const Tensor x = Tensor::randn({2, 2, 6, 6}, rng);
    const Tensor y = s.forward(x);
    const std::size_t relu = variant == 2 ? 1 : 0;
    INFO("variant " << variant);
    CHECK(y.equal(forward_each(s, x)));
    s.forward(x);
    const Tensor g = Tensor::randn(s[relu].output_shape(relu == 0 ? x.shape()
                                                                  : s[0].output_shape(x.shape())),
                                   rng);
    CHECK_NOTHROW(s[relu].backward(g));
  }
}

TEST_CASE("metrics: per-layer profile, non-zeros and sparsity", "[metrics]") {
  auto m = make_model("lenet300", 0);
  for (auto& np : m->named_parameters())
    if (np.param->value.dim() == 1) np.param->value.fill_(0.1f);  // biases start at zero
  Tensor& w = m->parameter("fc1.weight").value;
  for (int64_t i = 0; i < 150 * 784; ++i) w[i] = 0.0f;
  const auto layers = profile_layers(*m, image_input_shape(1));
  REQUIRE(layers.size() == 6);
  CHECK(layers[1].name == "fc1");
  CHECK(layers[1].output_shape == Shape{1, 300});
  CHECK(layers[1].macs == 235200);
  CHECK(layers[1].parameters == 235500);
  CHECK(layers[1].sparsity() == Approx(150.0 * 784 / 235500));
  CHECK(count_nonzeros(*m) == 266610 - 150 * 784);
}

TEST_CASE("metrics: latency is a median of positive times", "[metrics]") {
  int calls = 0;
  const auto s = measure_latency([&] { ++calls; }, 3, 11);
  CHECK(calls == 14);
  CHECK(s.repeats == 11);
  CHECK(s.min_ms <= s.median_ms);
  CHECK(s.median_ms <= s.p90_ms);
}

TEST_CASE("metrics: with_commas", "[metrics]") {
  CHECK(with_commas(266610) == "266,610");
  CHECK(with_commas(100) == "100");
  CHECK(with_commas(-1234567) == "-1,234,567");
}
