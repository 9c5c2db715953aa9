// Hidden tests of Lab 2, parts 3 and 4 (instructor repository only). They are written against
// lab2.h, so they check whichever implementation they are linked with: the reference in `ctest`,
// or a submission's lab2.cpp compiled in its place.
//
// - fake_quantize and its gradient at every half step of a power-of-two scale (halves to even),
//   at zero points far outside the range, on quotients that overflow float32 to infinity, on
//   empty and 0-d tensors; fake quantization is idempotent;
// - fake_quantize_weight_per_channel with channels 10^7 apart (a scale per channel, not per
//   tensor), a negative largest value, kernels 1 and 5, an all-zero weight;
// - relative_indices with thousands of fillers in a row, the widest gap alphabet, k = 1, and
//   its streams stored in a real Deep Compression file with Task 16's code lengths and read
//   back by the core;
// - huffman_code_lengths against a second implementation of the two-queue rule (a linear scan
//   for the smallest tree, ties by leaf first, then symbol index or creation order), on counts
//   near 2^40, the deepest tree the format accepts and one level deeper, 65,536 symbols, and a
//   stream coded and decoded with the core's canonical Huffman coder.
//
// Well under a second in all.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "effml/deep_compression.h"
#include "effml/error.h"
#include "effml/huffman.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "multi_index.h"
#include "tests/part34_support.h"
#include "temp_dir.h"
#include "tensor_checks.h"

namespace {

using effml::DType;
using effml::Tensor;
using effml::testing::check_error_names;
using effml::testing::check_exact;
using effml::testing::multi_index;
using lab2_tests::as_ints;
using lab2_tests::contract_fake;
using lab2_tests::contract_grad;
using lab2_tests::dense_of_labels;
using lab2_tests::i32;
using lab2_tests::optimal_cost;
using lab2_tests::qmax_bits;
using lab2_tests::qmin_bits;

// Task 14 by its contract: S_c = max |w_c| / qmax in float32 (1 for a channel of zeros), then
// clamp(nearbyint(w / S_c)) S_c.
Tensor contract_per_channel(const Tensor& w, int bits) {
  const int64_t out = w.size(0), per = w.numel() / out;
  const float qmax = static_cast<float>(qmax_bits(bits)), qmin = static_cast<float>(qmin_bits(bits));
  Tensor fake(w.shape());
  for (int64_t c = 0; c < out; ++c) {
    float max_abs = 0.0f;
    for (int64_t i = c * per; i < (c + 1) * per; ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
    const float scale = max_abs == 0.0f ? 1.0f : max_abs / qmax;
    for (int64_t i = c * per; i < (c + 1) * per; ++i) {
      fake[i] = std::clamp(std::nearbyint(w[i] / scale), qmin, qmax) * scale;
    }
  }
  return fake;
}

std::vector<int32_t> values_of(const Tensor& t) {
  return {t.data_i32(), t.data_i32() + t.numel()};
}

// The two-queue rule of lab2.h, computed differently: keep every tree still to merge in one
// list and repeatedly remove the smallest by (count, leaf before node, then symbol index for a
// leaf or creation order for a node). The node queue is always sorted by count (each new node
// weighs at least as much as the previous one), so its front is the smallest node and this
// picks what the two fronts' comparison picks.
std::vector<int> two_queue_by_scan(const std::vector<int64_t>& counts) {
  struct Tree {
    int64_t count;
    int is_node;    // 0 leaf, 1 node: leaves win ties
    int64_t order;  // symbol index of a leaf, creation order of a node
    int64_t id;     // index in `parent`
  };
  std::vector<Tree> live;
  std::vector<int64_t> parent, symbol_of_leaf;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] == 0) continue;
    live.push_back({counts[s], 0, static_cast<int64_t>(s), static_cast<int64_t>(parent.size())});
    parent.push_back(-1);
    symbol_of_leaf.push_back(static_cast<int64_t>(s));
  }
  std::vector<int> lengths(counts.size(), 0);
  if (live.size() == 1) lengths[static_cast<std::size_t>(symbol_of_leaf[0])] = 1;
  if (live.size() <= 1) return lengths;
  const std::size_t leaves = live.size();
  int64_t created = 0;
  auto take_smallest = [&]() {
    auto less = [](const Tree& a, const Tree& b) {
      if (a.count != b.count) return a.count < b.count;
      if (a.is_node != b.is_node) return a.is_node < b.is_node;
      return a.order < b.order;
    };
    const auto it = std::min_element(live.begin(), live.end(), less);
    const Tree t = *it;
    live.erase(it);
    return t;
  };
  while (live.size() > 1) {
    const Tree a = take_smallest();
    const Tree b = take_smallest();
    const auto id = static_cast<int64_t>(parent.size());
    parent.push_back(-1);
    parent[static_cast<std::size_t>(a.id)] = id;
    parent[static_cast<std::size_t>(b.id)] = id;
    live.push_back({a.count + b.count, 1, created++, id});
  }
  for (std::size_t leaf = 0; leaf < leaves; ++leaf) {
    int depth = 0;
    for (int64_t at = static_cast<int64_t>(leaf); parent[static_cast<std::size_t>(at)] >= 0;
         at = parent[static_cast<std::size_t>(at)]) {
      ++depth;
    }
    lengths[static_cast<std::size_t>(symbol_of_leaf[leaf])] = depth;
  }
  return lengths;
}

}  // namespace

// ---- Task 13 -----------------------------------------------------------------------------------

// S = 0.25, so r / S = h / 2 exactly: every half step and every whole step from 3 below the
// range to 3 above it, at every width and at zero points inside, at the edge of and far outside
// the range. Halves go to even; the gradient is cut exactly outside [qmin, qmax].
TEST_CASE("hidden: fake_quantize at every half step and zero point", "[task13][hidden]") {
  const float scale = 0.25f;
  for (int bits = 1; bits <= 8; ++bits) {
    for (int32_t zero_point : {-1000, -128, -3, 0, 5, 127, 300}) {
      std::vector<float> values;
      for (int64_t h = 2 * (qmin_bits(bits) - zero_point - 3);
           h <= 2 * (qmax_bits(bits) - zero_point + 3); ++h) {
        values.push_back(static_cast<float>(h) * 0.5f * scale);
      }
      const auto n = static_cast<int64_t>(values.size());
      const Tensor r({n}, values);
      std::vector<float> ramp(values.size());
      for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = 1.0f + static_cast<float>(i);
      const Tensor grad({n}, ramp);
      INFO("bits " << bits << ", Z = " << zero_point);
      check_exact("fake", contract_fake(r, bits, scale, zero_point),
                 lab2::fake_quantize(r, bits, scale, zero_point));
      const Tensor g = lab2::fake_quantize_grad(grad, r, bits, scale, zero_point);
      check_exact("gradient", contract_grad(grad, r, bits, scale, zero_point), g);
      // What passes: the 2^b whole steps of the range, the 2^b - 1 halves between them, and
      // of the two halves just outside it the one whose even neighbour is inside (qmin - Z and
      // qmax - Z differ by the odd 2^b - 1, so exactly one of them is even): 2^(b+1) in all.
      int64_t passed = 0;
      for (int64_t i = 0; i < n; ++i) passed += g[i] != 0.0f;
      CHECK(passed == int64_t{2} << bits);
    }
  }
}

// A quotient r / S beyond float32's range is +-infinity: it clamps (to qmax or qmin) and cuts
// the gradient; a zero point far outside the range clamps every value to one bound.
TEST_CASE("hidden: fake_quantize when r / S overflows and far zero points", "[task13][hidden]") {
  const Tensor r({4}, {3.0e38f, -3.0e38f, 1.0e-30f, 0.0f});
  const Tensor grad({4}, {1.0f, 2.0f, 3.0f, 4.0f});
  // 8 bits, S = 1e-3, Z = 10: levels +inf, -inf, 10, 10.
  const float s = 1.0e-3f;
  check_exact("fake", Tensor({4}, {117.0f * s, -138.0f * s, 0.0f, 0.0f}),
             lab2::fake_quantize(r, 8, s, 10));
  check_exact("gradient", Tensor({4}, {0.0f, 0.0f, 3.0f, 4.0f}),
             lab2::fake_quantize_grad(grad, r, 8, s, 10));
  // Z = 100000: every level is far above 127, so q = 127 and S (q - Z) = -99873 S.
  const Tensor small({3}, {-1.0f, 0.0f, 1.0f});
  const float v = -99873.0f * 0.5f;
  check_exact("Z far above the range", Tensor({3}, {v, v, v}),
             lab2::fake_quantize(small, 8, 0.5f, 100000));
  check_exact("Z far above the range: gradient", Tensor({3}, {0.0f, 0.0f, 0.0f}),
             lab2::fake_quantize_grad(small, small, 8, 0.5f, 100000));
  // Z = -100000: q = -128, S (q - Z) = 99872 S.
  const float u = 99872.0f * 0.5f;
  check_exact("Z far below the range", Tensor({3}, {u, u, u}),
             lab2::fake_quantize(small, 8, 0.5f, -100000));
}

// Shapes are kept: a 0-d tensor and tensors of no value.
TEST_CASE("hidden: fake_quantize keeps 0-d and empty shapes", "[task13][hidden]") {
  const Tensor scalar({}, {0.3f});
  check_exact("0-d", Tensor({}, {0.25f}), lab2::fake_quantize(scalar, 4, 0.25f, 0));
  check_exact("0-d gradient", Tensor({}, {2.0f}),
             lab2::fake_quantize_grad(Tensor({}, {2.0f}), scalar, 4, 0.25f, 0));
  for (const effml::Shape& shape : {effml::Shape{0}, effml::Shape{2, 0, 3}}) {
    const Tensor empty(shape);
    INFO("shape " << empty.shape_str());
    check_exact("fake", empty, lab2::fake_quantize(empty, 8, 0.5f, 0));
    check_exact("gradient", empty, lab2::fake_quantize_grad(empty, empty, 8, 0.5f, 0));
  }
}

// Quantizing a fake-quantized tensor again changes nothing: its values are grid points, and
// the grid point r' = S (q - Z) gives back q.
TEST_CASE("hidden: fake_quantize is idempotent", "[task13][hidden]") {
  effml::Rng rng(13013);
  for (int bits : {2, 5, 8}) {
    for (float scale : {0.0371f, 0.5f, 3.3f}) {
      const Tensor r = Tensor::randn({64}, rng) * (scale * static_cast<float>(1 << bits) * 0.4f);
      const int32_t zero_point = static_cast<int32_t>(qmin_bits(bits) / 2);
      INFO("bits " << bits << ", S = " << scale << ", Z = " << zero_point);
      const Tensor once = lab2::fake_quantize(r, bits, scale, zero_point);
      check_exact("twice", once, lab2::fake_quantize(once, bits, scale, zero_point));
      const Tensor ones = Tensor::ones({64});
      // Every grid point is inside the range: the gradient passes everywhere.
      check_exact("gradient at grid points", ones,
                 lab2::fake_quantize_grad(ones, once, bits, scale, zero_point));
    }
  }
}

TEST_CASE("hidden: fake_quantize_grad errors name both shapes", "[task13][hidden]") {
  const Tensor r({2, 3});
  check_error_names([&] { lab2::fake_quantize_grad(Tensor({6}), r, 8, 1.0f, 0); }, "(6,)");
  check_error_names([&] { lab2::fake_quantize_grad(Tensor({6}), r, 8, 1.0f, 0); }, "(2, 3)");
  check_error_names([&] { lab2::fake_quantize_grad(r, r, 9, 1.0f, 0); }, "9");
  check_error_names(
      [&] { lab2::fake_quantize_grad(r, r, 8, std::numeric_limits<float>::infinity(), 0); },
      "inf");
}

// ---- Task 14 -----------------------------------------------------------------------------------

// Channels 10^7 apart in one weight: with one scale per channel each keeps its largest
// magnitude (to a float32 rounding) and its 2^b levels; one scale for the whole tensor would
// flush the small channel to 0.
TEST_CASE("hidden: fake_quantize_weight_per_channel scales each channel", "[task14][hidden]") {
  effml::Rng rng(14014);
  Tensor w = Tensor::randn({3, 40}, rng);
  const float magnitude[] = {1.0e-4f, 1.0f, 1.0e3f};
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < 40; ++i) w[c * 40 + i] *= magnitude[c];
  }
  for (int bits = 2; bits <= 8; ++bits) {
    INFO("bits " << bits);
    const Tensor fake = lab2::fake_quantize_weight_per_channel(w, bits);
    check_exact("fake", contract_per_channel(w, bits), fake);
    for (int64_t c = 0; c < 3; ++c) {
      float max_w = 0.0f, max_fake = 0.0f;
      std::set<float> levels;
      for (int64_t i = c * 40; i < (c + 1) * 40; ++i) {
        max_w = std::max(max_w, std::fabs(w[i]));
        max_fake = std::max(max_fake, std::fabs(fake[i]));
        levels.insert(fake[i]);
      }
      INFO("channel " << c << ": max |w| " << max_w << ", max |fake| " << max_fake);
      CHECK(std::fabs(max_fake - max_w) <= 1e-6f * max_w);
      CHECK(levels.size() <= (std::size_t{1} << bits));
      CHECK(levels.size() >= 2);
    }
  }
}

// Kernels 1 and 5, a channel whose largest magnitude is negative or a single value, and an
// all-zero weight (scale 1: zeros, never NaN).
TEST_CASE("hidden: fake_quantize_weight_per_channel on awkward weights", "[task14][hidden]") {
  effml::Rng rng(14015);
  for (const effml::Shape& shape : {effml::Shape{5, 3, 1, 1}, effml::Shape{2, 2, 5, 5},
                                    effml::Shape{1, 1}, effml::Shape{7, 1}}) {
    const Tensor w = Tensor::randn(shape, rng);
    for (int bits : {2, 4, 8}) {
      INFO("shape " << w.shape_str() << ", bits " << bits);
      check_exact("fake", contract_per_channel(w, bits), lab2::fake_quantize_weight_per_channel(w, bits));
    }
  }
  // Channel 0's largest magnitude is -2 (maps to -qmax, exactly -2 up to S's rounding); channel
  // 1 holds one value.
  const Tensor w({2, 3}, {-2.0f, 0.5f, 1.0f, 0.0f, 0.7f, 0.0f});
  for (int bits : {2, 3, 8}) {
    INFO("bits " << bits);
    check_exact("fake", contract_per_channel(w, bits), lab2::fake_quantize_weight_per_channel(w, bits));
  }
  check_exact("zeros", Tensor({3, 2}), lab2::fake_quantize_weight_per_channel(Tensor({3, 2}), 4));
  check_error_names([] { lab2::fake_quantize_weight_per_channel(Tensor({}, {1.0f}), 4); }, "()");
  check_error_names([] { lab2::fake_quantize_weight_per_channel(Tensor({2, 2}), 0); }, "0");
}

// ---- Task 15 -----------------------------------------------------------------------------------

// 10,000 values, only the last kept, G = 2: a run of 9,999 zeros takes floor(9999 / 2) = 4,999
// fillers (gap 1, at positions 1, 3, ..., 9,997), then (1, 4) at position 9,999.
TEST_CASE("hidden: relative_indices with thousands of fillers in a row", "[task15][hidden]") {
  std::vector<int32_t> labels(10000, -1);
  labels.back() = 4;
  const lab2::RelativeIndices r = lab2::relative_indices(i32({100, 100}, labels), 5, 1);
  std::vector<int32_t> gaps(5000, 1), symbols(5000, 5);
  symbols.back() = 4;
  check_exact("gaps", i32({5000}, gaps), r.gaps);
  check_exact("symbols", i32({5000}, symbols), r.symbols);
}

// G = 256 (g = 8), k = 1 (the filler symbol is 1). The value at position 0 has gap 0; the one
// at position 1000 comes 999 zeros later: 3 fillers (255, 1) at positions 256, 512 and 768, then
// 1000 - 768 - 1 = 231. The 199 zeros after it need no entry.
TEST_CASE("hidden: relative_indices with the widest gaps and one centroid", "[task15][hidden]") {
  std::vector<int32_t> labels(1200, -1);
  labels[0] = 0;
  labels[1000] = 0;
  const lab2::RelativeIndices r = lab2::relative_indices(i32({1200}, labels), 1, 8);
  check_exact("gaps", i32({5}, {0, 255, 255, 255, 231}), r.gaps);
  check_exact("symbols", i32({5}, {0, 1, 1, 1, 0}), r.symbols);
}

TEST_CASE("hidden: relative_indices errors name the value", "[task15][hidden]") {
  check_error_names(
      [] { lab2::relative_indices(i32({8}, {0, 0, 0, 0, 0, 0, 0, -7}), 2, 3); }, "-7");
  check_error_names([] { lab2::relative_indices(i32({2}, {0, 5}), 5, 3); }, "5");
  check_error_names([] { lab2::relative_indices(i32({2}, {0, 0}), -3, 3); }, "-3");
  check_error_names([] { lab2::relative_indices(i32({2}, {0, 0}), 1, -1); }, "-1");
  check_error_names([] { lab2::relative_indices(Tensor::from_i8({2}, {0, 0}), 1, 3); }, "int32");
}

// Tasks 15 and 16 together, as the model task uses them: pruned weights of several shapes and
// gap widths stored in a real Deep Compression file, each stream coded with the code lengths
// of its own symbol counts, then read back and decoded by the core.
TEST_CASE("hidden: relative indices and Huffman lengths make a file the core reads back",
          "[task15][task16][hidden]") {
  effml::testing::TempDir dir("lab2-part34");
  effml::Rng rng(15016);
  effml::DeepCompressedModel model;
  std::vector<Tensor> expected;
  struct Case {
    effml::Shape shape;
    float density;
    int32_t k;
    int gap_bits;
  };
  const std::vector<Case> cases = {{{300, 100}, 0.1f, 32, 5}, {{10, 1, 3, 3}, 0.5f, 3, 1},
                                   {{1000}, 0.003f, 1, 4},   {{20, 20}, 0.0f, 4, 2},
                                   {{64}, 1.0f, 256, 8}};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::vector<int32_t> values(static_cast<std::size_t>(effml::shape_numel(c.shape)), -1);
    for (auto& v : values) {
      if (rng.uniform() < c.density) v = static_cast<int32_t>(rng.randint(static_cast<uint64_t>(c.k)));
    }
    const Tensor labels = i32(c.shape, values);
    const lab2::RelativeIndices r = lab2::relative_indices(labels, c.k, c.gap_bits);
    effml::CompressedWeight w;
    w.name = "w" + std::to_string(i);
    w.shape = c.shape;
    for (int32_t j = 0; j < c.k; ++j) w.centroids.push_back(static_cast<float>(j + 1));
    w.gap_bits = c.gap_bits;
    w.gaps = values_of(r.gaps);
    w.symbols = values_of(r.symbols);
    std::vector<int64_t> gap_counts(std::size_t{1} << c.gap_bits, 0);
    std::vector<int64_t> symbol_counts(static_cast<std::size_t>(c.k) + 1, 0);
    for (int32_t g : w.gaps) gap_counts.at(static_cast<std::size_t>(g)) += 1;
    for (int32_t s : w.symbols) symbol_counts.at(static_cast<std::size_t>(s)) += 1;
    w.gap_lengths = lab2::huffman_code_lengths(gap_counts);
    w.symbol_lengths = lab2::huffman_code_lengths(symbol_counts);
    model.weights.push_back(std::move(w));
    expected.push_back(dense_of_labels(labels));
  }
  const std::string path = dir.file("w.efdc");
  effml::save_deep_compressed(path, model);
  const effml::DeepCompressedModel back = effml::load_deep_compressed(path);
  REQUIRE(back.weights.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("weight " << i);
    check_exact("decoded", expected[i], effml::decode_weight(back.weights[i]));
  }
}

// ---- Task 16 -----------------------------------------------------------------------------------

// Random alphabets (zeros, many ties, few distinct counts, large counts): exactly the lengths
// of the two-queue rule computed by a linear scan, and the optimal cost.
TEST_CASE("hidden: huffman_code_lengths follows the two-queue rule exactly", "[task16][hidden]") {
  effml::Rng rng(16016);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = 1 + static_cast<std::size_t>(rng.randint(200));
    std::vector<int64_t> counts(n, 0);
    const uint64_t spread = trial % 3 == 0 ? 3 : (trial % 3 == 1 ? 50 : 1000000);
    for (auto& c : counts) {
      c = rng.randint(5) == 0 ? 0 : 1 + static_cast<int64_t>(rng.randint(spread));
    }
    INFO("trial " << trial << ", " << n << " symbols, counts up to " << spread);
    const std::vector<uint8_t> lengths = lab2::huffman_code_lengths(counts);
    CHECK(as_ints(lengths) == two_queue_by_scan(counts));
    int64_t cost = 0;
    for (std::size_t s = 0; s < n && s < lengths.size(); ++s) cost += counts[s] * lengths[s];
    CHECK(cost == optimal_cost(counts));
  }
}

// Counts near 2^40 in all: sums beyond int32 must not wrap.
TEST_CASE("hidden: huffman_code_lengths on counts near 2^40", "[task16][hidden]") {
  const int64_t big = int64_t{1} << 38;
  const std::vector<int64_t> counts = {big, big + 1, 3, big / 2, 5, big - 7, 1};
  CHECK(as_ints(lab2::huffman_code_lengths(counts)) == two_queue_by_scan(counts));
  CHECK(as_ints(lab2::huffman_code_lengths({int64_t{1} << 39, int64_t{1} << 39})) ==
        std::vector<int>{1, 1});
}

// Fibonacci counts 1, 1, 2, 3, 5, ... make a chain: each merge takes the next leaf and the
// previous node (the node F(i+3) - 1 is below the leaf after next, F(i+3)), so symbol 0 ends
// n - 1 deep. 25 symbols: lengths 24, 24, 23, ..., 1 (the deepest the format accepts, 24);
// 26 symbols need a 25-bit code: an error naming it.
TEST_CASE("hidden: huffman_code_lengths on the deepest tree and one level deeper",
          "[task16][hidden]") {
  std::vector<int64_t> fib = {1, 1};
  while (fib.size() < 26) fib.push_back(fib[fib.size() - 1] + fib[fib.size() - 2]);
  const std::vector<int64_t> counts25(fib.begin(), fib.begin() + 25);
  std::vector<int> want = {24};
  for (int len = 24; len >= 1; --len) want.push_back(len);
  CHECK(as_ints(lab2::huffman_code_lengths(counts25)) == want);
  check_error_names([&] { lab2::huffman_code_lengths(fib); }, "25");
}

// 65,536 equal counts make a complete tree of depth 16; one symbol more is too many.
TEST_CASE("hidden: huffman_code_lengths on 65,536 symbols and on 65,537", "[task16][hidden]") {
  const std::vector<uint8_t> lengths = lab2::huffman_code_lengths(std::vector<int64_t>(65536, 1));
  REQUIRE(lengths.size() == 65536);
  CHECK(std::all_of(lengths.begin(), lengths.end(), [](uint8_t l) { return l == 16; }));
  check_error_names([] { lab2::huffman_code_lengths(std::vector<int64_t>(65537, 1)); }, "65537");
}

// The lengths are a code the core's canonical coder accepts: a random stream of the counted
// symbols is coded in exactly sum counts x lengths bits and decodes back to itself.
TEST_CASE("hidden: huffman_code_lengths code and decode a stream", "[task16][hidden]") {
  effml::Rng rng(16017);
  for (int trial = 0; trial < 5; ++trial) {
    const std::size_t n = 1 + static_cast<std::size_t>(rng.randint(40));
    std::vector<int64_t> counts(n, 0);
    std::vector<int32_t> stream;
    for (std::size_t s = 0; s < n; ++s) {
      counts[s] = rng.randint(3) == 0 ? 0 : static_cast<int64_t>(rng.randint(30));
      for (int64_t j = 0; j < counts[s]; ++j) stream.push_back(static_cast<int32_t>(s));
    }
    if (stream.empty()) continue;
    // Shuffle the stream: the code depends only on the counts.
    for (std::size_t i = stream.size(); i-- > 1;) {
      std::swap(stream[i], stream[static_cast<std::size_t>(rng.randint(i + 1))]);
    }
    INFO("trial " << trial << ", " << stream.size() << " symbols");
    const std::vector<uint8_t> lengths = lab2::huffman_code_lengths(counts);
    uint64_t bits = 0;
    const std::vector<uint8_t> bytes = effml::huffman_encode(stream, lengths, &bits);
    CHECK(static_cast<int64_t>(bits) == optimal_cost(counts));
    CHECK(effml::huffman_decode(bytes.data(), bytes.size(), bits, lengths, stream.size()) ==
          stream);
  }
}
