// Hidden tests of Lab 2, part 1 (instructor repository only). They are written against lab2.h,
// so they check whichever implementation they are linked with: the reference in `ctest`, or a
// submission's lab2.cpp compiled in its place.
//
// - multiply_by_quantized_multiplier against an independent exact computation (rational
//   rounding in 128-bit integers) on random and extreme accumulators and every shift;
// - quantize_multiplier's reconstruction error and its edge cases (0, values close to 1,
//   values below 2^-32);
// - quantized_linear and quantized_conv2d against a direct computation in 64-bit integers on a
//   large layer, and extreme zero points with padding;
// - linear_quantize with tiny scales (quotients far outside int32) and every half step;
// - k_means_quantize against an independent computation of its contract (up to 8 bits and
//   10,000 values, duplicates, the 50-update cap), update_codebook and codebook_gradient_step
//   on empty clusters, sums in double and bad codebooks;
// - the stub and the solution have the same text outside the solution markers, and every stub
//   body only throws NotImplemented naming its task.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "effml/error.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "solution_markers.h"

namespace {

using effml::Tensor;
using effml::testing::check_error_names;

// round(num / 2^k), halves up, for any 128-bit num (floor division by a power of two).
__int128 round_half_up_pow2(__int128 num, int k) {
  const __int128 d = static_cast<__int128>(1) << k;
  __int128 q = num / d;
  if (num % d != 0 && num < 0) --q;  // floor
  const __int128 r = num - q * d;    // in [0, d)
  return 2 * r >= d ? q + 1 : q;
}

// round(num / 2^k), halves away from zero.
__int128 round_half_away_pow2(__int128 num, int k) {
  if (k == 0) return num;
  const __int128 a = num < 0 ? -num : num;
  const __int128 d = static_cast<__int128>(1) << k;
  const __int128 q = (a + d / 2) / d;
  return num < 0 ? -q : q;
}

// The contract of multiply_by_quantized_multiplier, computed as two exact rational roundings.
int32_t expected_mbqm(int32_t acc, int32_t m0, int32_t shift) {
  const __int128 high = round_half_up_pow2(static_cast<__int128>(acc) * m0, 31);
  return static_cast<int32_t>(round_half_away_pow2(high, shift));
}

}  // namespace

TEST_CASE("hidden: multiply_by_quantized_multiplier matches exact rational rounding",
          "[task5][hidden]") {
  effml::Rng rng(11);
  int mismatches = 0, checked = 0;
  const int32_t extremes[] = {0, 1, -1, 2, -2, 3, -3, std::numeric_limits<int32_t>::max(),
                              std::numeric_limits<int32_t>::min(), 1 << 20, -(1 << 20)};
  for (int trial = 0; trial < 20000; ++trial) {
    const int32_t acc = trial < 11 * 32 ? extremes[trial % 11]
                                        : static_cast<int32_t>(rng.next_u64() >> (32 + rng.randint(31)))
                                              * (rng.randint(2) ? 1 : -1);
    const int32_t shift = static_cast<int32_t>(trial < 11 * 32 ? trial / 11 : rng.randint(32));
    const int32_t m0 = static_cast<int32_t>((1u << 30) + rng.randint(1u << 30));
    ++checked;
    if (lab2::multiply_by_quantized_multiplier(acc, m0, shift) != expected_mbqm(acc, m0, shift)) {
      if (++mismatches <= 5) {
        FAIL_CHECK("acc " << acc << ", M0 " << m0 << ", shift " << shift << ": expected "
                          << expected_mbqm(acc, m0, shift) << ", got "
                          << lab2::multiply_by_quantized_multiplier(acc, m0, shift));
      }
    }
  }
  INFO(mismatches << " of " << checked << " differ");
  CHECK(mismatches == 0);
  // Exact halves: M0 = 2^30 (0.5): h = acc / 2 rounded up.
  for (int32_t acc = -9; acc <= 9; ++acc) {
    INFO("acc " << acc);
    CHECK(lab2::multiply_by_quantized_multiplier(acc, 1 << 30, 0) == expected_mbqm(acc, 1 << 30, 0));
    CHECK(lab2::multiply_by_quantized_multiplier(acc, 1 << 30, 2) == expected_mbqm(acc, 1 << 30, 2));
  }
  check_error_names([&] { lab2::multiply_by_quantized_multiplier(1, -5, 0); }, "-5");
  check_error_names([&] { lab2::multiply_by_quantized_multiplier(1, 1 << 30, -1); }, "-1");
}

// Given code, checked all the same: the students build on it.
TEST_CASE("hidden: quantize_multiplier reconstructs M", "[task5][hidden]") {
  effml::Rng rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    const double m = std::ldexp(0.5 + 0.5 * rng.uniform(), -static_cast<int>(rng.randint(31)));
    if (!(m < 1.0)) continue;
    const lab2::QuantizedMultiplier q = lab2::quantize_multiplier(m);
    INFO("M " << m);
    REQUIRE(q.multiplier >= (1 << 30));
    const double back = std::ldexp(static_cast<double>(q.multiplier), -31 - q.shift);
    CHECK(std::fabs(back - m) <= std::ldexp(1.0, -32 - q.shift));
  }
  CHECK(lab2::quantize_multiplier(0.0).multiplier == 0);
  const lab2::QuantizedMultiplier near_one = lab2::quantize_multiplier(std::nextafter(1.0, 0.0));
  CHECK(near_one.multiplier == std::numeric_limits<int32_t>::max());
  CHECK(near_one.shift == 0);
  const lab2::QuantizedMultiplier tiny = lab2::quantize_multiplier(1e-12);
  CHECK(tiny.multiplier == 0);
  check_error_names([&] { lab2::quantize_multiplier(1.5); }, "1.5");
}

// A layer of 1000 inputs (accumulators of about 10^5 to 10^6) against a direct computation.
TEST_CASE("hidden: quantized_linear on a large layer", "[task5][hidden]") {
  effml::Rng rng(21);
  const int64_t n = 3, in = 1000, out = 9;
  std::vector<int8_t> xv(n * in), wv(out * in);
  for (auto& v : xv) v = static_cast<int8_t>(static_cast<int>(rng.randint(256)) - 128);
  for (auto& v : wv) v = static_cast<int8_t>(static_cast<int>(rng.randint(256)) - 128);
  std::vector<int32_t> bias, m0, shift;
  for (int64_t o = 0; o < out; ++o) {
    bias.push_back(static_cast<int32_t>(rng.randint(200001)) - 100000);
    const lab2::QuantizedMultiplier m = lab2::quantize_multiplier(1e-4 / (1 + o));
    m0.push_back(m.multiplier);
    shift.push_back(m.shift);
  }
  const int32_t zx = 127, zy = -20;
  const Tensor y = lab2::quantized_linear(Tensor::from_i8({n, in}, xv), Tensor::from_i8({out, in}, wv),
                                          Tensor::from_i32({out}, bias), zx, zy,
                                          Tensor::from_i32({out}, m0), Tensor::from_i32({out}, shift));
  REQUIRE(y.shape() == effml::Shape{n, out});
  int distinct = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      int64_t acc = bias[o];
      for (int64_t j = 0; j < in; ++j) acc += (int64_t{xv[i * in + j]} - zx) * wv[o * in + j];
      REQUIRE(std::abs(acc) < (int64_t{1} << 31));
      const int64_t v = std::clamp<int64_t>(
          expected_mbqm(static_cast<int32_t>(acc), m0[o], shift[o]) + zy, -128, 127);
      INFO("output (" << i << ", " << o << "), accumulator " << acc);
      CHECK(y.data_i8()[i * out + o] == v);
      if (v != -128 && v != 127) ++distinct;
    }
  }
  // Measured: all 27 outputs lie inside (-128, 127), so the check is not one of saturation.
  INFO(distinct << " of " << n * out << " outputs are not saturated");
  CHECK(distinct >= 10);
}

// Zx = -128 and 127 with padding 2 and a 5x5 kernel on a 3x3 image: most of every window is
// padding. Checked against a direct computation that skips padded positions.
TEST_CASE("hidden: quantized_conv2d with extreme zero points and padding", "[task6][hidden]") {
  effml::Rng rng(8);
  const int64_t c = 3, h = 3, w = 3, o = 4, k = 5, p = 2;
  for (int32_t zx : {-128, 127}) {
    for (int64_t stride : {1, 2}) {
      std::vector<int8_t> xv(c * h * w), wv(o * c * k * k);
      for (auto& v : xv) v = static_cast<int8_t>(static_cast<int>(rng.randint(256)) - 128);
      for (auto& v : wv) v = static_cast<int8_t>(static_cast<int>(rng.randint(31)) - 15);
      std::vector<int32_t> bias(o, 50), m0, shift;
      for (int64_t q = 0; q < o; ++q) {
        const lab2::QuantizedMultiplier m = lab2::quantize_multiplier(0.003 + 0.002 * q);
        m0.push_back(m.multiplier);
        shift.push_back(m.shift);
      }
      const Tensor y = lab2::quantized_conv2d(
          Tensor::from_i8({1, c, h, w}, xv), Tensor::from_i8({o, c, k, k}, wv),
          Tensor::from_i32({o}, bias), zx, 3, Tensor::from_i32({o}, m0),
          Tensor::from_i32({o}, shift), stride, p);
      const int64_t oh = (h + 2 * p - k) / stride + 1, ow = (w + 2 * p - k) / stride + 1;
      REQUIRE(y.shape() == effml::Shape{1, o, oh, ow});
      for (int64_t q = 0; q < o; ++q) {
        for (int64_t a = 0; a < oh; ++a) {
          for (int64_t b = 0; b < ow; ++b) {
            int64_t acc = bias[q];
            for (int64_t ch = 0; ch < c; ++ch)
              for (int64_t i = 0; i < k; ++i)
                for (int64_t j = 0; j < k; ++j) {
                  const int64_t r = a * stride + i - p, s = b * stride + j - p;
                  if (r < 0 || r >= h || s < 0 || s >= w) continue;
                  acc += (int64_t{xv[(ch * h + r) * w + s]} - zx) * wv[((q * c + ch) * k + i) * k + j];
                }
            const int64_t v = std::clamp<int64_t>(
                expected_mbqm(static_cast<int32_t>(acc), m0[q], shift[q]) + 3, -128, 127);
            INFO("Zx " << zx << ", stride " << stride << ", output (" << q << ", " << a << ", " << b << ")");
            CHECK(y.data_i8()[(q * oh + a) * ow + b] == v);
          }
        }
      }
    }
  }
  check_error_names(
      [&] {
        lab2::quantized_conv2d(Tensor::from_i8({1, 1, 2, 2}, {0, 0, 0, 0}),
                               Tensor::from_i8({1, 1, 5, 5}, std::vector<int8_t>(25, 1)),
                               Tensor::from_i32({1}, {0}), 0, 0, Tensor::from_i32({1}, {1 << 30}),
                               Tensor::from_i32({1}, {0}), 1, 1);
      },
      "padding");
}

// Quotients far outside int32 (scale 1e-30) must clamp, not overflow; every half step of a
// power-of-two scale rounds to even.
TEST_CASE("hidden: linear_quantize with tiny scales and every half step", "[task1][hidden]") {
  const Tensor r({4}, {1.0f, -1.0f, 3e38f, -3e38f});
  const Tensor q = lab2::linear_quantize(r, 8, 1e-30f, 5);
  CHECK(q.equal(Tensor::from_i8({4}, {127, -128, 127, -128})));
  std::vector<float> halves;
  std::vector<int8_t> expected;
  for (int k = -140; k <= 140; ++k) {
    halves.push_back((static_cast<float>(k) + 0.5f) * 0.125f);
    const int even = (k % 2 == 0) ? k : k + 1;  // k + 0.5 goes to the even one of k, k + 1
    expected.push_back(static_cast<int8_t>(std::clamp(even - 3, -128, 127)));
  }
  const auto n = static_cast<int64_t>(halves.size());
  CHECK(lab2::linear_quantize(Tensor({n}, halves), 8, 0.125f, -3).equal(Tensor::from_i8({n}, expected)));
}

TEST_CASE("hidden: get_quantization_scale_and_zero_point on one value and on 1 bit",
          "[task2][hidden]") {
  // One value 0.5 on 1 bit: range [0, 0.5], S = 0.5 / 1, Z = qmin = -1.
  const lab2::QuantParams p = lab2::get_quantization_scale_and_zero_point(Tensor({1}, {0.5f}), 1);
  CHECK(p.scale == 0.5f);
  CHECK(p.zero_point == -1);
  check_error_names(
      [&] { lab2::get_quantization_scale_and_zero_point(Tensor({2}, {0.0f, INFINITY}), 8); },
      "infinity");
}

namespace {

// The contract of k_means_quantize, computed independently: nearest centroid found by a scan
// from the highest index down with <= (so the lowest index wins a tie), clusters gathered
// first and averaged afterwards. `updates` counts the update steps made.
struct KMeansContract {
  std::vector<float> centroids;
  std::vector<int32_t> labels;
  int updates = 0;
};

KMeansContract k_means_contract(const std::vector<float>& w, int bits) {
  const int k = 1 << bits;
  const double low = *std::min_element(w.begin(), w.end());
  const double high = *std::max_element(w.begin(), w.end());
  KMeansContract r;
  for (int j = 0; j < k; ++j) {
    r.centroids.push_back(static_cast<float>(low + static_cast<double>(j) * (high - low) / (k - 1)));
  }
  const auto nearest = [&](float v) {
    int32_t best = k - 1;
    for (int j = k - 1; j >= 0; --j) {
      if (std::fabs(double{v} - r.centroids[j]) <= std::fabs(double{v} - r.centroids[best])) best = j;
    }
    return best;
  };
  for (float v : w) r.labels.push_back(nearest(v));
  while (r.updates < 50) {
    std::vector<std::vector<float>> clusters(k);
    for (std::size_t i = 0; i < w.size(); ++i) clusters[r.labels[i]].push_back(w[i]);
    for (int j = 0; j < k; ++j) {
      if (clusters[j].empty()) continue;
      double sum = 0.0;
      for (float v : clusters[j]) sum += v;
      r.centroids[j] = static_cast<float>(sum / static_cast<double>(clusters[j].size()));
    }
    ++r.updates;
    std::vector<int32_t> next;
    for (float v : w) next.push_back(nearest(v));
    const bool same = next == r.labels;
    r.labels = next;
    if (same) break;
  }
  return r;
}

// Compares k_means_quantize(w, bits) with the contract, exactly; returns the updates made.
int check_k_means(const Tensor& w, int bits) {
  const KMeansContract want = k_means_contract(w.to_vector(), bits);
  const lab2::Codebook got = lab2::k_means_quantize(w, bits);
  INFO("w " << w.shape_str() << ", " << bits << " bits, " << want.updates << " updates");
  REQUIRE(got.centroids.shape() == effml::Shape{int64_t{1} << bits});
  REQUIRE(got.labels.shape() == w.shape());
  REQUIRE(got.labels.dtype() == effml::DType::Int32);
  int differ = 0;
  for (std::size_t j = 0; j < want.centroids.size(); ++j) {
    if (got.centroids[static_cast<int64_t>(j)] != want.centroids[j] && ++differ <= 3) {
      FAIL_CHECK("centroid " << j << ": expected " << want.centroids[j] << ", got "
                             << got.centroids[static_cast<int64_t>(j)]);
    }
  }
  for (std::size_t i = 0; i < want.labels.size(); ++i) {
    if (got.labels.data_i32()[i] != want.labels[i] && ++differ <= 3) {
      FAIL_CHECK("label " << i << ": expected " << want.labels[i] << ", got "
                          << got.labels.data_i32()[i]);
    }
  }
  CHECK(differ == 0);
  return want.updates;
}

}  // namespace

TEST_CASE("hidden: k_means_quantize matches its contract", "[task7][hidden]") {
  effml::Rng rng(17);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t n : {1, 2, 3, 33, 300}) {
      Tensor w = Tensor::randn({n}, rng);
      if (n == 300 && bits % 2 == 0) {
        // Few distinct values: duplicates and tied distances.
        for (int64_t i = 0; i < n; ++i) w[i] = 0.5f * static_cast<float>(rng.randint(6)) - 1.0f;
      }
      check_k_means(w, bits);
    }
  }
}

// 10,000 normal values. Measured with the contract (seed 23): 5 bits is still moving after the
// 50 updates of the cap, 8 bits stops after 18 (with 256 clusters most hold a few nearly equal
// values, which settle fast): a check that the cap is counted as specified, and that stopping
// early is too.
TEST_CASE("hidden: k_means_quantize on 10,000 values up to 8 bits", "[task7][hidden]") {
  effml::Rng rng(23);
  const Tensor w = Tensor::randn({100, 100}, rng) * 0.05f;
  const int updates8 = check_k_means(w, 8);
  const int updates5 = check_k_means(w, 5);
  INFO("updates: 8 bits " << updates8 << ", 5 bits " << updates5);
  CHECK(updates5 == 50);
  CHECK(updates8 < 50);
}

TEST_CASE("hidden: k_means_quantize on constants and extreme ranges", "[task7][hidden]") {
  for (int bits : {1, 4, 8}) {
    const lab2::Codebook c = lab2::k_means_quantize(Tensor::full({3, 5}, 7.25f), bits);
    CHECK(c.centroids.equal(Tensor::full({int64_t{1} << bits}, 7.25f)));
    CHECK(c.labels.equal(Tensor::from_i32({3, 5}, std::vector<int32_t>(15, 0))));
  }
  // Two values far apart on 8 bits: 254 empty clusters keep their linear initialisation.
  const lab2::Codebook two = lab2::k_means_quantize(Tensor({2}, {-3e30f, 3e30f}), 8);
  CHECK(two.centroids[0] == -3e30f);
  CHECK(two.centroids[255] == 3e30f);
  CHECK(two.labels.equal(Tensor::from_i32({2}, {0, 255})));
  check_k_means(Tensor({4}, {-3e30f, 3e30f, 1.0f, -1.0f}), 3);
  check_error_names([&] { lab2::k_means_quantize(Tensor({2}, {0.0f, INFINITY}), 2); }, "infinity");
  check_error_names([&] { lab2::k_means_quantize(Tensor::from_i32({2}, {0, 1}), 2); }, "int32");
}

TEST_CASE("hidden: update_codebook and codebook_gradient_step on edge cases",
          "[task8][task9][hidden]") {
  // Sums in double: 2^24 + 1 + 1 (a float32 sum stays at 2^24).
  lab2::Codebook c{Tensor({3}, {5.0f, 6.0f, 7.0f}), Tensor::from_i32({3}, {1, 1, 1})};
  lab2::codebook_gradient_step(c, Tensor({3}, {16777216.0f, 1.0f, 1.0f}), 1.0f);
  CHECK(c.centroids.equal(Tensor({3}, {5.0f, 6.0f - 16777218.0f, 7.0f})));
  // lr 0 leaves every centroid as it was; a negative lr is an ascent step.
  lab2::Codebook d{Tensor({2}, {1.0f, 2.0f}), Tensor::from_i32({2, 2}, {0, 1, 1, 1})};
  lab2::codebook_gradient_step(d, Tensor({2, 2}, {3.0f, 1.0f, 1.0f, 1.0f}), 0.0f);
  CHECK(d.centroids.equal(Tensor({2}, {1.0f, 2.0f})));
  lab2::codebook_gradient_step(d, Tensor({2, 2}, {3.0f, 1.0f, 1.0f, 1.0f}), -0.5f);
  CHECK(d.centroids.equal(Tensor({2}, {2.5f, 3.5f})));
  // A codebook whose every value is in one cluster: the others keep their centroids.
  lab2::Codebook e{Tensor({4}, {9.0f, 8.0f, 7.0f, 6.0f}), Tensor::from_i32({3}, {2, 2, 2})};
  lab2::update_codebook(Tensor({3}, {1.0f, 2.0f, 6.0f}), e);
  CHECK(e.centroids.equal(Tensor({4}, {9.0f, 8.0f, 3.0f, 6.0f})));
  // Bad codebooks are named.
  lab2::Codebook negative{Tensor({2}, {0.0f, 1.0f}), Tensor::from_i32({2}, {0, -1})};
  check_error_names([&] { lab2::update_codebook(Tensor({2}), negative); }, "-1");
  check_error_names([&] { lab2::dequantize(negative); }, "-1");
  lab2::Codebook no_centroids{Tensor({0}), Tensor::from_i32({1}, {0})};
  check_error_names([&] { lab2::codebook_gradient_step(no_centroids, Tensor({1}), 0.1f); }, "(0,)");
  lab2::Codebook float_labels{Tensor({2}, {0.0f, 1.0f}), Tensor({2})};
  check_error_names([&] { lab2::update_codebook(Tensor({2}), float_labels); }, "labels");
  lab2::Codebook ok{Tensor({2}, {0.0f, 1.0f}), Tensor::from_i32({2}, {0, 1})};
  check_error_names([&] { lab2::codebook_gradient_step(ok, Tensor({2}, {0.0f, NAN}), 0.1f); }, "NaN");
  check_error_names([&] { lab2::update_codebook(Tensor({2}, {0.0f, NAN}), ok); }, "NaN");
}

TEST_CASE("hidden: the stub is the solution with the solution regions replaced",
          "[hidden][stub]") {
  const std::string top = EFFML_SOURCE_DIR;
  const auto both = effml::testing::check_stub_matches_solution(
      top + "/labs/lab2_quantization/lab2.cpp", top + "/reference/lab2_quantization/lab2.cpp");
  const std::vector<std::string> tasks = {
      "Task 1: linear_quantize", "Task 2: get_quantization_scale_and_zero_point",
      "Task 3: linear_quantize_weight_per_channel", "Task 4: quantize_bias",
      "Task 5: multiply_by_quantized_multiplier", "Task 5: quantized_linear",
      "Task 6: quantized_conv2d", "Task 7: k_means_quantize", "Task 8: update_codebook",
      "Task 9: codebook_gradient_step", "Task 10: fold_conv_bn",
      "Task 11: calibrate_activation_ranges", "Task 12: input_quant_params",
      "Task 12: quantize_vgg", "Task 13: fake_quantize", "Task 13: fake_quantize_grad",
      "Task 14: fake_quantize_weight_per_channel", "Task 15: relative_indices",
      "Task 16: huffman_code_lengths"};
  REQUIRE(both.stub.regions.size() == tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    INFO("region " << i);
    CHECK(both.stub.regions[i] == "throw effml::NotImplemented(\"" + tasks[i] + "\");\n");
    CHECK(both.solution.regions[i].find("NotImplemented") == std::string::npos);
  }
}
