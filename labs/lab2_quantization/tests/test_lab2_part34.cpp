// Public tests of Lab 2, parts 3 and 4 (Tasks 13 to 16): fake quantization and its
// straight-through gradient, per-channel fake quantization of a weight, relative indices and
// Huffman code lengths. Run them with
// `build/tests/lab2_quantization_tests "[task13],[task14],[task15],[task16]"`, or `ctest -R lab2`.
//
// Every expectation is computed here, independently of your code: small cases worked out by
// hand (the derivation is in the comment above each one); the contracts' float32 arithmetic
// written out in this file; the core's own decoder (effml::decode_weight) for the relative
// indices; and for the Huffman lengths the Kraft sum and the cost of a code built by a plain
// priority queue (the optimal cost is unique even where optimal codes are not). Every test calls
// your code, so none of them passes before you have written it. The whole file runs in well
// under a second.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "effml/deep_compression.h"
#include "effml/error.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "multi_index.h"
#include "tests/part34_support.h"
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

// The weight that the entries of `r` describe, decoded by the core (effml::decode_weight), with
// centroid j equal to j + 1.
Tensor decode_entries(const lab2::RelativeIndices& r, const effml::Shape& shape, int32_t k,
                      int gap_bits) {
  effml::CompressedWeight c;
  c.name = "w";
  c.shape = shape;
  for (int32_t j = 0; j < k; ++j) c.centroids.push_back(static_cast<float>(j + 1));
  c.gap_bits = gap_bits;
  c.gaps.assign(r.gaps.data_i32(), r.gaps.data_i32() + r.gaps.numel());
  c.symbols.assign(r.symbols.data_i32(), r.symbols.data_i32() + r.symbols.numel());
  return effml::decode_weight(c);
}

int64_t cost_of(const std::vector<int64_t>& counts, const std::vector<uint8_t>& lengths) {
  int64_t cost = 0;
  for (std::size_t s = 0; s < counts.size(); ++s) cost += counts[s] * lengths[s];
  return cost;
}

// The Kraft sum of the used symbols' lengths, times 2^24 (exact in integers for lengths up to 24).
int64_t kraft_times_2_24(const std::vector<uint8_t>& lengths) {
  int64_t sum = 0;
  for (uint8_t l : lengths) {
    if (l > 0 && l <= 24) sum += int64_t{1} << (24 - l);
  }
  return sum;
}

}  // namespace

// ---- Task 13 -----------------------------------------------------------------------------------

// 2 bits: qmin = -2, qmax = 1. S = 0.5, Z = -1, so the representable reals are
// S (q - Z) = -0.5, 0, 0.5, 1.0 (q = -2, -1, 0, 1):
//   r      r / S   round   + Z   clamped   S (q - Z)
//  -3.0    -6      -6      -7    -2        -0.5
//  -0.25   -0.5    -0      -1    -1         0
//   0.2     0.4     0      -1    -1         0
//   0.3     0.6     1       0     0         0.5
//   1.0     2       2       1     1         1.0
//   5.0    10      10       9     1         1.0
TEST_CASE("fake_quantize: 2 bits, S = 0.5, Z = -1, worked by hand", "[task13]") {
  const Tensor r({2, 3}, {-3.0f, -0.25f, 0.2f, 0.3f, 1.0f, 5.0f});
  check_exact("fake", Tensor({2, 3}, {-0.5f, 0.0f, 0.0f, 0.5f, 1.0f, 1.0f}),
             lab2::fake_quantize(r, 2, 0.5f, -1));
}

// Normal values whose tails clamp, at every width and at zero points inside and outside the
// range: the contract's arithmetic written out here, and S (q - Z) of Task 1's q.
TEST_CASE("fake_quantize: S (q - Z) of linear_quantize's q", "[task13]") {
  effml::Rng rng(1301);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int32_t zero_point : {-200, -5, 0, 3, 90}) {
      const Tensor r = Tensor::randn({3, 7}, rng);
      // A range about 2.4 units wide: the normal tails fall outside it.
      const float scale = 2.4f / static_cast<float>(int64_t{1} << bits);
      INFO("bits " << bits << ", S = " << scale << ", Z = " << zero_point);
      const Tensor fake = lab2::fake_quantize(r, bits, scale, zero_point);
      check_exact("fake against the contract", contract_fake(r, bits, scale, zero_point), fake);
      const Tensor q = lab2::linear_quantize(r, bits, scale, zero_point);
      Tensor from_q(r.shape());
      for (int64_t i = 0; i < r.numel(); ++i) {
        from_q[i] = static_cast<float>(static_cast<int32_t>(q.data_i8()[i]) - zero_point) * scale;
      }
      check_exact("fake against S (q - Z) of linear_quantize", from_q, fake);
    }
  }
}

// Same grid as above (2 bits, S = 0.5, Z = -1): the levels round(r / S) + Z must stay in
// [-2, 1]. The edges, where the rounding decides (halves go to even):
//   r       r / S    round   level   gradient
//  -0.5     -1       -1      -2      passes (qmin exactly)
//  -0.74    -1.48    -1      -2      passes (rounds into the range)
//  -0.75    -1.5     -2      -3      0      (the half goes to even -2: clamped)
//   1.0      2        2       1      passes (qmax exactly)
//   1.24     2.48     2       1      passes (above S (qmax - Z) = 1.0 but rounds to qmax)
//   1.25     2.5      2       1      passes (the half goes to even 2)
//   1.26     2.52     3       2      0      (clamped)
//   0.1      0.2      0      -1      passes
TEST_CASE("fake_quantize_grad: passes unless the value clamps, decided after rounding",
          "[task13]") {
  const Tensor r({8}, {-0.5f, -0.74f, -0.75f, 1.0f, 1.24f, 1.25f, 1.26f, 0.1f});
  const Tensor grad({8}, {1.0f, 2.0f, 3.0f, 4.0f, -5.0f, 6.0f, 7.0f, -8.0f});
  check_exact("gradient", Tensor({8}, {1.0f, 2.0f, 0.0f, 4.0f, -5.0f, 6.0f, 0.0f, -8.0f}),
             lab2::fake_quantize_grad(grad, r, 2, 0.5f, -1));
}

// On random tensors, the gradient is the incoming one where the level is in range and 0 where
// it clamps; where it passes, the fake value is within half a step of r, and where it is 0, the
// fake value sits at a bound of the range.
TEST_CASE("fake_quantize_grad: 0 exactly where the value clamps", "[task13]") {
  effml::Rng rng(1302);
  int passed = 0, blocked = 0;
  for (int bits : {1, 2, 4, 8}) {
    for (int32_t zero_point : {-100, -2, 0, 7}) {
      const float scale = 3.0f / static_cast<float>(int64_t{1} << bits);
      const Tensor r = Tensor::randn({5, 11}, rng);
      const Tensor grad = Tensor::randn({5, 11}, rng);
      INFO("bits " << bits << ", S = " << scale << ", Z = " << zero_point);
      const Tensor got = lab2::fake_quantize_grad(grad, r, bits, scale, zero_point);
      check_exact("gradient", contract_grad(grad, r, bits, scale, zero_point), got);
      const Tensor fake = lab2::fake_quantize(r, bits, scale, zero_point);
      const float low = static_cast<float>(-(int64_t{1} << (bits - 1)) - zero_point) * scale;
      const float high = static_cast<float>((int64_t{1} << (bits - 1)) - 1 - zero_point) * scale;
      for (int64_t i = 0; i < r.numel(); ++i) {
        INFO("element " << i << ": r = " << r[i] << ", fake " << fake[i] << ", gradient "
                        << got[i] << " of " << grad[i]);
        if (got[i] == grad[i]) {
          ++passed;
          CHECK(std::fabs(fake[i] - r[i]) <= 0.5f * scale * (1.0f + 1e-5f));
        } else {
          ++blocked;
          CHECK(got[i] == 0.0f);
          CHECK((fake[i] == low || fake[i] == high));
        }
      }
    }
  }
  // The grid is chosen so that both cases occur.
  CHECK(passed > 100);
  CHECK(blocked > 100);
}

TEST_CASE("fake_quantize and fake_quantize_grad: errors name the value and the shapes",
          "[task13]") {
  const Tensor r({2, 3}, {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f});
  check_error_names([&] { lab2::fake_quantize(r, 9, 1.0f, 0); }, "9");
  check_error_names([&] { lab2::fake_quantize(r, 8, 0.0f, 0); }, "0");
  const Tensor nan({2}, {0.0f, std::nanf("")});
  check_error_names([&] { lab2::fake_quantize(nan, 8, 1.0f, 0); }, "NaN");
  const Tensor grad_t({3, 2});
  check_error_names([&] { lab2::fake_quantize_grad(grad_t, r, 8, 1.0f, 0); }, "(3, 2)");
  check_error_names([&] { lab2::fake_quantize_grad(grad_t, r, 8, 1.0f, 0); }, "(2, 3)");
  check_error_names([&] { lab2::fake_quantize_grad(r, r, 0, 1.0f, 0); }, "0");
  check_error_names([&] { lab2::fake_quantize_grad(r, r, 8, -1.0f, 0); }, "-1");
  check_error_names([&] { lab2::fake_quantize_grad(nan, nan, 8, 1.0f, 0); }, "NaN");
}

// ---- Task 14 -----------------------------------------------------------------------------------

// A (2, 3) weight; channel 1 is all zeros (S = 1, every value 0).
// Channel 0 = {0.75, -1.5, 0.25}: max |w| = 1.5.
//   2 bits (qmax 1): S = 1.5; w / S = 0.5, -1, 0.1667 -> 0 (half to even), -1, 0
//                    -> {0, -1.5, 0}
//   3 bits (qmax 3): S = 0.5; w / S = 1.5, -3, 0.5 -> 2, -3, 0 -> {1.0, -1.5, 0}
TEST_CASE("fake_quantize_weight_per_channel: worked by hand at 2 and 3 bits", "[task14]") {
  const Tensor w({2, 3}, {0.75f, -1.5f, 0.25f, 0.0f, 0.0f, 0.0f});
  check_exact("2 bits", Tensor({2, 3}, {0.0f, -1.5f, 0.0f, 0.0f, 0.0f, 0.0f}),
             lab2::fake_quantize_weight_per_channel(w, 2));
  check_exact("3 bits", Tensor({2, 3}, {1.0f, -1.5f, 0.0f, 0.0f, 0.0f, 0.0f}),
             lab2::fake_quantize_weight_per_channel(w, 3));
}

// Linear and conv weights whose channels differ in magnitude by up to 1000x, with a channel of
// zeros, at every width: the value is q S_c of Task 3 (and of the formula written out here),
// each channel holds at most 2^b values, and each value is within half a step of the weight.
TEST_CASE("fake_quantize_weight_per_channel: Task 3 dequantized, at most 2^b values a channel",
          "[task14]") {
  effml::Rng rng(1401);
  const std::vector<effml::Shape> shapes = {{5, 7}, {3, 2, 3, 3}, {1, 13}};
  for (const auto& shape : shapes) {
    for (int bits = 2; bits <= 8; ++bits) {
      Tensor w = Tensor::randn(shape, rng);
      const int64_t out = shape[0], per = w.numel() / out;
      for (int64_t c = 0; c < out; ++c) {
        const float magnitude = c == 2 ? 0.0f : std::pow(10.0f, static_cast<float>(c % 4) - 1.0f);
        for (int64_t i = c * per; i < (c + 1) * per; ++i) w[i] *= magnitude;
      }
      INFO("weight " << w.shape_str() << ", bits " << bits);
      const Tensor fake = lab2::fake_quantize_weight_per_channel(w, bits);
      const lab2::PerChannelQuantized q = lab2::linear_quantize_weight_per_channel(w, bits);
      REQUIRE(q.scales.numel() == out);
      Tensor from_task3(shape), by_formula(shape);
      const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
      for (int64_t c = 0; c < out; ++c) {
        float max_abs = 0.0f;
        for (int64_t i = c * per; i < (c + 1) * per; ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
        const float scale = max_abs == 0.0f ? 1.0f : max_abs / qmax;
        for (int64_t i = c * per; i < (c + 1) * per; ++i) {
          from_task3[i] = static_cast<float>(q.q.data_i8()[i]) * q.scales[c];
          const float level = std::clamp(std::nearbyint(w[i] / scale), -qmax - 1.0f, qmax);
          by_formula[i] = level * scale;
        }
      }
      check_exact("fake against Task 3 dequantized", from_task3, fake);
      check_exact("fake against the formula", by_formula, fake);
      REQUIRE(fake.shape() == w.shape());
      for (int64_t c = 0; c < out; ++c) {
        std::set<float> values;
        float max_abs = 0.0f;
        for (int64_t i = c * per; i < (c + 1) * per; ++i) {
          values.insert(fake[i]);
          max_abs = std::max(max_abs, std::fabs(w[i]));
        }
        INFO("channel " << c);
        CHECK(values.size() <= (std::size_t{1} << bits));
        const float step = max_abs / qmax;
        for (int64_t i = c * per; i < (c + 1) * per; ++i) {
          CHECK(std::fabs(fake[i] - w[i]) <= 0.5f * step * (1.0f + 1e-5f));
        }
      }
    }
  }
}

TEST_CASE("fake_quantize_weight_per_channel: errors name the shape or the value", "[task14]") {
  const Tensor w({2, 2}, {1.0f, 2.0f, 3.0f, 4.0f});
  check_error_names([&] { lab2::fake_quantize_weight_per_channel(w, 1); }, "1");
  check_error_names([&] { lab2::fake_quantize_weight_per_channel(w, 9); }, "9");
  const Tensor vec({4}, {1.0f, 2.0f, 3.0f, 4.0f});
  check_error_names([&] { lab2::fake_quantize_weight_per_channel(vec, 4); }, "(4,)");
  const Tensor nan({1, 2}, {1.0f, std::nanf("")});
  check_error_names([&] { lab2::fake_quantize_weight_per_channel(nan, 4); }, "NaN");
}

// ---- Task 15 -----------------------------------------------------------------------------------

// lab2.h's example: G = 4 (g = 2), k = 2. Position 1 is 1 zero after the start: (1, 1).
// Position 9 is 7 zeros after position 1: 7 > 3, so a filler (3, 2) stands for a zero at
// position 1 + 4 = 5; then 9 - 5 - 1 = 3 fits: (3, 0).
TEST_CASE("relative_indices: the header's example", "[task15]") {
  const Tensor labels = i32({10}, {-1, 1, -1, -1, -1, -1, -1, -1, -1, 0});
  const lab2::RelativeIndices r = lab2::relative_indices(labels, 2, 2);
  check_exact("gaps", i32({3}, {1, 3, 3}), r.gaps);
  check_exact("symbols", i32({3}, {1, 2, 0}), r.symbols);
}

// Gaps at the limit (G = 4): 3 zeros then a value fit in one entry (3, 0); 4 zeros need a
// filler at position 3, then (0, 0) at position 4. With G = 2 (g = 1) and k = 3, 5 zeros then a
// value at position 5: fillers (1, 3) at positions 1 and 3, then (1, 2).
TEST_CASE("relative_indices: fillers only where a gap does not fit, several in a row",
          "[task15]") {
  lab2::RelativeIndices r = lab2::relative_indices(i32({4}, {-1, -1, -1, 0}), 1, 2);
  check_exact("gap of G - 1: gaps", i32({1}, {3}), r.gaps);
  check_exact("gap of G - 1: symbols", i32({1}, {0}), r.symbols);
  r = lab2::relative_indices(i32({5}, {-1, -1, -1, -1, 0}), 1, 2);
  check_exact("gap of G: gaps", i32({2}, {3, 0}), r.gaps);
  check_exact("gap of G: symbols", i32({2}, {1, 0}), r.symbols);
  r = lab2::relative_indices(i32({6}, {-1, -1, -1, -1, -1, 2}), 3, 1);
  check_exact("two fillers: gaps", i32({3}, {1, 1, 1}), r.gaps);
  check_exact("two fillers: symbols", i32({3}, {3, 3, 2}), r.symbols);
}

// A (2, 3) weight is walked in row-major order: positions 1 and 5, so (1, 0) then (3, 1).
// Zeros after the last kept value need no entry; a weight with nothing kept, or no value at
// all, has none; a weight with everything kept has gaps 0 and its labels as symbols.
TEST_CASE("relative_indices: row-major order, trailing zeros, empty and full weights",
          "[task15]") {
  lab2::RelativeIndices r = lab2::relative_indices(i32({2, 3}, {-1, 0, -1, -1, -1, 1}), 2, 3);
  check_exact("(2, 3): gaps", i32({2}, {1, 3}), r.gaps);
  check_exact("(2, 3): symbols", i32({2}, {0, 1}), r.symbols);
  r = lab2::relative_indices(i32({9}, {2, -1, -1, -1, -1, -1, -1, -1, -1}), 3, 1);
  check_exact("trailing zeros: gaps", i32({1}, {0}), r.gaps);
  check_exact("trailing zeros: symbols", i32({1}, {2}), r.symbols);
  r = lab2::relative_indices(i32({3, 4}, std::vector<int32_t>(12, -1)), 4, 2);
  check_exact("all pruned: gaps", i32({0}, {}), r.gaps);
  check_exact("all pruned: symbols", i32({0}, {}), r.symbols);
  r = lab2::relative_indices(i32({0}, {}), 4, 2);
  check_exact("no value: gaps", i32({0}, {}), r.gaps);
  check_exact("no value: symbols", i32({0}, {}), r.symbols);
  r = lab2::relative_indices(i32({2, 2}, {3, 0, 1, 3}), 4, 1);
  check_exact("all kept: gaps", i32({4}, {0, 0, 0, 0}), r.gaps);
  check_exact("all kept: symbols", i32({4}, {3, 0, 1, 3}), r.symbols);
}

// Random labels of several densities, shapes and gap widths: the core's decoder puts every
// kept value back at its position, every gap is in [0, G) and every symbol in [0, k], fillers
// have gap G - 1, and there are no more entries than needed: one per kept value plus
// floor(d / G) fillers for a run of d zeros before it.
TEST_CASE("relative_indices: decode_weight reproduces the labels with the fewest entries",
          "[task15]") {
  effml::Rng rng(1501);
  const std::vector<effml::Shape> shapes = {{1}, {37}, {6, 25}, {4, 3, 5, 5}};
  for (const auto& shape : shapes) {
    for (float density : {0.0f, 0.02f, 0.3f, 1.0f}) {
      for (int gap_bits : {1, 3, 5, 8}) {
        const int32_t k = 1 + static_cast<int32_t>(rng.randint(20));
        std::vector<int32_t> values(static_cast<std::size_t>(effml::shape_numel(shape)), -1);
        for (auto& v : values) {
          if (rng.uniform() < density) v = static_cast<int32_t>(rng.randint(static_cast<uint64_t>(k)));
        }
        const Tensor labels = i32(shape, values);
        INFO("labels " << labels.shape_str() << ", density " << density << ", gap_bits "
                       << gap_bits << ", k " << k);
        const lab2::RelativeIndices r = lab2::relative_indices(labels, k, gap_bits);
        REQUIRE(r.gaps.dtype() == DType::Int32);
        REQUIRE(r.symbols.dtype() == DType::Int32);
        REQUIRE(r.gaps.dim() == 1);
        REQUIRE(r.symbols.shape() == r.gaps.shape());
        const int64_t big_g = int64_t{1} << gap_bits;
        int64_t needed = 0, last = -1;
        for (int64_t p = 0; p < labels.numel(); ++p) {
          if (values[static_cast<std::size_t>(p)] < 0) continue;
          needed += 1 + (p - last - 1) / big_g;
          last = p;
        }
        CHECK(r.gaps.numel() == needed);
        for (int64_t e = 0; e < r.gaps.numel(); ++e) {
          const int32_t gap = r.gaps.data_i32()[e], symbol = r.symbols.data_i32()[e];
          INFO("entry " << e << ": (" << gap << ", " << symbol << ")");
          CHECK((gap >= 0 && gap < big_g));
          CHECK((symbol >= 0 && symbol <= k));
          if (symbol == k) CHECK(gap == big_g - 1);
        }
        check_exact("decoded weight", dense_of_labels(labels),
                   decode_entries(r, shape, k, gap_bits));
      }
    }
  }
}

TEST_CASE("relative_indices: errors name the value", "[task15]") {
  const Tensor labels = i32({4}, {0, -1, 1, -1});
  check_error_names([&] { lab2::relative_indices(i32({3}, {0, -2, 1}), 2, 3); }, "-2");
  check_error_names([&] { lab2::relative_indices(i32({3}, {0, 2, 1}), 2, 3); }, "2");
  check_error_names([&] { lab2::relative_indices(labels, 0, 3); }, "0");
  check_error_names([&] { lab2::relative_indices(labels, 2, 0); }, "0");
  check_error_names([&] { lab2::relative_indices(labels, 2, 9); }, "9");
  check_error_names([&] { lab2::relative_indices(Tensor({2}, {0.0f, 1.0f}), 2, 3); }, "int32");
}

// ---- Task 16 -----------------------------------------------------------------------------------

// lab2.h's example, counts {5, 1, 1, 2}. Leaf queue by (count, index): s1:1 s2:1 s3:2 s0:5.
//   take s1, s2 (leaves)                  -> node A = 2
//   fronts s3:2 and A:2 tie: the leaf s3; then A:2 against s0:5: A -> node B = 4
//   fronts s0:5 and B:4: B, then s0      -> root C = 9
// Depths: s0 1 (in C), s3 2 (in B), s1 and s2 3 (in A): {1, 3, 3, 2}.
TEST_CASE("huffman_code_lengths: {5, 1, 1, 2} gives {1, 3, 3, 2}", "[task16]") {
  CHECK(as_ints(lab2::huffman_code_lengths({5, 1, 1, 2})) == std::vector<int>{1, 3, 3, 2});
}

// Two codes can both be optimal; the two-queue rule picks one.
// Counts {1, 1, 2, 2}: s0 + s1 -> A = 2. Fronts s2:2, A:2 tie: leaf s2; fronts s3:2, A:2 tie:
// leaf s3 -> B = 4 (s2, s3). Then A + B: every length 2 (cost 12). Had ties gone to the node
// queue: A + s2 -> B = 4, s3 + B -> root: lengths {3, 3, 2, 1}, also cost 12.
// Counts {3, 1, 1, 1}: leaves s1 s2 s3 (count 1, by index) then s0:3. s1 + s2 -> A = 2;
// s3:1 then A:2 -> B = 3; fronts s0:3 and B:3 tie: leaf s0, then B -> root. Lengths
// {1, 3, 3, 2}: the lower indices s1, s2 go deepest. Leaves ordered by count alone in reverse
// index order would give {1, 2, 3, 3}.
TEST_CASE("huffman_code_lengths: ties go to the leaf queue, equal counts by index", "[task16]") {
  CHECK(as_ints(lab2::huffman_code_lengths({1, 1, 2, 2})) == std::vector<int>{2, 2, 2, 2});
  CHECK(as_ints(lab2::huffman_code_lengths({3, 1, 1, 1})) == std::vector<int>{1, 3, 3, 2});
}

// Counts {0, 5, 0, 1, 3}: the unused s0, s2 get 0. Leaves s3:1 s4:3 s1:5: s3 + s4 -> A = 4;
// A:4 then s1:5 -> root: {0, 1, 0, 2, 2}. One used symbol gets length 1; none, all 0.
TEST_CASE("huffman_code_lengths: unused symbols, a single symbol, none", "[task16]") {
  CHECK(as_ints(lab2::huffman_code_lengths({0, 5, 0, 1, 3})) == std::vector<int>{0, 1, 0, 2, 2});
  CHECK(as_ints(lab2::huffman_code_lengths({0, 0, 7, 0})) == std::vector<int>{0, 0, 1, 0});
  CHECK(as_ints(lab2::huffman_code_lengths({42})) == std::vector<int>{1});
  CHECK(as_ints(lab2::huffman_code_lengths({0, 0, 0})) == std::vector<int>{0, 0, 0});
  CHECK(lab2::huffman_code_lengths({}).empty());
}

// Random alphabets with zeros and ties: a length for every symbol, 0 exactly for the unused
// ones, a complete code (Kraft sum 1) and the optimal cost.
TEST_CASE("huffman_code_lengths: a complete optimal code on random counts", "[task16]") {
  effml::Rng rng(1601);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t n = 2 + static_cast<std::size_t>(rng.randint(60));
    std::vector<int64_t> counts(n, 0);
    for (auto& c : counts) {
      c = rng.randint(4) == 0 ? 0 : 1 + static_cast<int64_t>(rng.randint(trial % 2 ? 5 : 1000));
    }
    counts[0] = 1 + static_cast<int64_t>(rng.randint(3));  // at least two used symbols
    counts[n - 1] = 1 + static_cast<int64_t>(rng.randint(3));
    INFO("trial " << trial << ", " << n << " symbols");
    const std::vector<uint8_t> lengths = lab2::huffman_code_lengths(counts);
    REQUIRE(lengths.size() == n);
    for (std::size_t s = 0; s < n; ++s) {
      INFO("symbol " << s << ": count " << counts[s] << ", length " << int(lengths[s]));
      CHECK((counts[s] == 0) == (lengths[s] == 0));
      CHECK(int(lengths[s]) <= effml::kMaxCodeLength);
    }
    CHECK(kraft_times_2_24(lengths) == (int64_t{1} << 24));
    CHECK(cost_of(counts, lengths) == optimal_cost(counts));
  }
}

TEST_CASE("huffman_code_lengths: errors name the value", "[task16]") {
  check_error_names([] { lab2::huffman_code_lengths({3, -4, 1}); }, "-4");
  check_error_names([] { lab2::huffman_code_lengths({3, -4, 1}); }, "1");
}
