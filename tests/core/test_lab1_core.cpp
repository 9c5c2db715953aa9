// The core pieces the pruning lab builds on: make_vgg(cfg) and vgg_config() (channel pruning
// rebuilds a VGG of other widths under the same parameter names), and the bitmask size of a
// pruned model (bitmask_size_bits, sparse_model_size_bytes), checked against hand counts.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "effml/init.h"
#include "effml/layers.h"
#include "effml/metrics.h"
#include "effml/models.h"
#include "error_checks.h"

namespace {

using Catch::Matchers::Contains;
using effml::Shape;
using effml::testing::error_of;

}  // namespace

// ---- make_vgg(cfg) and vgg_config -----------------------------------------------------------

TEST_CASE("lab1_core: make_vgg(cfg) with the default cfg is make_vgg()", "[models][vgg][lab1]") {
  auto a = effml::make_vgg();
  auto b = effml::make_vgg({16, 0, 32, 0, 64, 64, 0});
  // 16*9 + 32*16*9 + 64*32*9 + 64*64*9 = 60,048 conv weights, 2 * (16 + 32 + 64 + 64) = 352
  // batch-norm values, 64*3*3*10 + 10 = 5,770 in the classifier: 66,170.
  CHECK(effml::count_parameters(*a) == 66170);
  CHECK(effml::count_parameters(*b) == 66170);
  const auto pa = a->named_parameters();
  const auto pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    CHECK(pb[i].name == pa[i].name);
    CHECK(pb[i].param->value.shape() == pa[i].param->value.shape());
  }
  CHECK(pa.front().name == "features.0.weight");
  CHECK(pa.back().name == "classifier.bias");
  const auto ba = a->named_buffers();
  const auto bb = b->named_buffers();
  REQUIRE(ba.size() == bb.size());
  for (std::size_t i = 0; i < ba.size(); ++i) CHECK(bb[i].name == ba[i].name);
  CHECK(a->describe() == b->describe());
}

TEST_CASE("lab1_core: make_vgg(cfg) builds the widths it is given", "[models][vgg][lab1]") {
  auto m = effml::make_vgg({11, 0, 22, 0, 45, 64, 0});
  CHECK(m->parameter("features.0.weight").value.shape() == Shape{11, 1, 3, 3});
  CHECK(m->parameter("features.4.weight").value.shape() == Shape{22, 11, 3, 3});
  CHECK(m->parameter("features.8.weight").value.shape() == Shape{45, 22, 3, 3});
  CHECK(m->parameter("features.11.weight").value.shape() == Shape{64, 45, 3, 3});
  CHECK(m->parameter("features.9.bias").value.shape() == Shape{45});
  CHECK(m->parameter("classifier.weight").value.shape() == Shape{10, 576});
  // Four pools: 28 -> 14 -> 7 -> 3 -> 1, so the classifier reads 8 values.
  auto deep = effml::make_vgg({8, 0, 0, 0, 0});
  CHECK(deep->parameter("classifier.weight").value.shape() == Shape{10, 8});
  CHECK(deep->output_shape(effml::image_input_shape(3)) == Shape{3, 10});
}

TEST_CASE("lab1_core: make_vgg(cfg) rejects bad cfgs with the entry and the value", "[models][vgg][lab1]") {
  CHECK_THAT(error_of([] { effml::make_vgg(std::vector<int64_t>{}); }), Contains("empty cfg"));
  CHECK_THAT(error_of([] { effml::make_vgg({16, 0, -3}); }), Contains("cfg[2] = -3 is negative"));
  CHECK_THAT(error_of([] { effml::make_vgg({0, 0}); }), Contains("no conv block"));
  // The fifth pool would act on a 1x1 map (28 -> 14 -> 7 -> 3 -> 1).
  CHECK_THAT(error_of([] { effml::make_vgg({16, 0, 0, 0, 0, 0}); }),
             Contains("pool at cfg[5] on a 1x1 map"));
}

TEST_CASE("lab1_core: vgg_config reads back the cfg make_vgg was given", "[models][vgg][lab1]") {
  const std::vector<std::vector<int64_t>> cfgs = {
      {16, 0, 32, 0, 64, 64, 0}, {11, 0, 22, 0, 45, 64, 0}, {1, 0, 1, 0, 1, 64, 0},
      {8}, {0, 6, 0, 2}, {8, 0, 0, 0, 0}, {3, 5, 7}};
  for (const auto& cfg : cfgs) {
    auto m = effml::make_vgg(cfg);
    CHECK(effml::vgg_config(*m) == cfg);
  }
  auto dense = effml::make_vgg();
  CHECK(effml::vgg_config(*dense) == std::vector<int64_t>{16, 0, 32, 0, 64, 64, 0});
}

TEST_CASE("lab1_core: vgg_config rejects a model that is not a VGG", "[models][vgg][lab1]") {
  auto mlp = effml::make_lenet300();
  CHECK_THAT(error_of([&] { effml::vgg_config(*mlp); }),
             Contains("expected a VGG (features, flatten, classifier)"));
  // Features, flatten and classifier, but a Linear among the features.
  effml::Sequential odd;
  auto& features = odd.emplace_named<effml::Sequential>("features");
  features.emplace<effml::Linear>(4, 4);
  odd.emplace_named<effml::Flatten>("flatten");
  odd.emplace_named<effml::Linear>("classifier", 4, 10);
  CHECK_THAT(error_of([&] { effml::vgg_config(odd); }), Contains("features.0 is Linear(4, 4)"));
  // LeNet-5 has features, flatten and classifier too, but its convs are 5x5 with a bias and
  // no batch norm: make_vgg could not rebuild it.
  auto lenet5 = effml::make_lenet5();
  CHECK_THAT(error_of([&] { effml::vgg_config(*lenet5); }), Contains("features.0"));
}

// ---- bitmask_size_bits and sparse_model_size_bytes ------------------------------------------

TEST_CASE("lab1_core: bitmask_size_bits: one bit per position plus the non-zeros or dense when smaller",
          "[metrics][sparse][lab1]") {
  // min(n b, n + z b).
  CHECK(effml::bitmask_size_bits(10, 3) == 106.0);   // min(320, 10 + 96)
  CHECK(effml::bitmask_size_bits(10, 10) == 320.0);  // min(320, 330): dense
  CHECK(effml::bitmask_size_bits(100, 0) == 100.0);  // the mask alone
  CHECK(effml::bitmask_size_bits(0, 0) == 0.0);
  CHECK(effml::bitmask_size_bits(16, 4, 8) == 48.0);  // min(128, 16 + 32)
  CHECK(effml::bitmask_size_bits(16, 15, 8) == 128.0);  // min(128, 16 + 120 = 136): dense
  // The crossover at 32 bits: n + 32 z <= 32 n while z <= 31 n / 32.
  CHECK(effml::bitmask_size_bits(32, 30) == 992.0);    // 32 + 960 < 1,024
  CHECK(effml::bitmask_size_bits(32, 31) == 1024.0);   // 32 + 992 = 1,024: equal
  CHECK(effml::bitmask_size_bits(32, 32) == 1024.0);   // dense
  CHECK(effml::bitmask_size_bits(5, 2, 1) == 5.0);     // 1-bit values: min(5, 7)
  CHECK_THAT(error_of([] { effml::bitmask_size_bits(10, 11); }), Contains("11 non-zeros of 10"));
  CHECK_THAT(error_of([] { effml::bitmask_size_bits(10, -1); }), Contains("-1 non-zeros of 10"));
  CHECK_THAT(error_of([] { effml::bitmask_size_bits(10, 3, 0); }), Contains("bits 0"));
  CHECK_THAT(error_of([] { effml::bitmask_size_bits(10, 3, 65); }), Contains("bits 65"));
}

TEST_CASE("lab1_core: sparse_model_size_bytes of a VGG with some weights zeroed by hand",
          "[metrics][sparse][lab1]") {
  // cfg {2, M}: features.0.weight (2, 1, 3, 3) = 18 values; batch norm weight and bias 2 + 2;
  // classifier.weight (10, 392) = 3,920 and its bias 10. 3,952 parameters, 15,808 bytes.
  auto model = effml::make_vgg({2, 0});
  for (const auto& p : model->named_parameters()) p.param->value.fill_(1.0f);
  CHECK(effml::model_size_bytes(*model) == 15808.0);
  // Nothing zero: every tensor is stored dense (n b < n + n b).
  CHECK(effml::sparse_model_size_bytes(*model) == 15808.0);

  auto& conv = model->parameter("features.0.weight").value;
  for (int64_t k = 0; k < 9; ++k) conv[k] = 0.0f;  // 9 of 18 kept
  auto& fc = model->parameter("classifier.weight").value;
  for (int64_t k = 100; k < fc.numel(); ++k) fc[k] = 0.0f;  // 100 of 3,920 kept
  model->parameter("classifier.bias").value.zero_();  // one-dimensional: dense all the same
  // 32 bits: conv min(576, 18 + 288) = 306; classifier min(125,440, 3,920 + 3,200) = 7,120;
  // the 14 one-dimensional values 448. 7,874 bits = 984.25 bytes.
  CHECK(effml::sparse_model_size_bytes(*model) == 984.25);
  // 8 bits: conv min(144, 18 + 72) = 90; classifier min(31,360, 3,920 + 800) = 4,720; the
  // others 14 * 8 = 112. 4,922 bits = 615.25 bytes.
  CHECK(effml::sparse_model_size_bytes(*model, 8) == 615.25);
  CHECK_THAT(error_of([&] { effml::sparse_model_size_bytes(*model, 0); }), Contains("bits 0"));

  // All of a conv pruned: its mask alone, 18 bits.
  conv.zero_();
  CHECK(effml::sparse_model_size_bytes(*model) == (18 + 7120 + 448) / 8.0);
}
