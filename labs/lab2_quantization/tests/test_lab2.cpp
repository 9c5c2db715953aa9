// Public tests of Lab 2, part 1 (Tasks 1 to 9). Run them all with `ctest -R lab2`, or one task
// with the test program's tag, e.g. `build/tests/lab2_quantization_tests "[task5]"`.
//
// Small cases worked out by hand (the derivation is in the comment above each one), a golden
// quantized linear layer computed independently in Python (golden/quantized_linear_4x8x8.safetensors:
// batch 4, 8 inputs, 8 outputs, every intermediate included), and properties: a 1x1
// convolution is a linear layer applied to every pixel; k-means labels are nearest centroids
// and its centroids means; a step on tied weights lowers a loss. Every test calls your code, so
// none of them passes before you have written it.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "effml/error.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "effml/tensor.h"
#include "error_checks.h"
#include "lab2.h"
#include "multi_index.h"
#include "tensor_checks.h"

namespace {

using effml::DType;
using effml::Tensor;
using effml::testing::check_error_names;
using effml::testing::check_exact;
using effml::testing::multi_index;

Tensor i8(const effml::Shape& shape, const std::vector<int8_t>& v) { return Tensor::from_i8(shape, v); }
Tensor i32(const effml::Shape& shape, const std::vector<int32_t>& v) { return Tensor::from_i32(shape, v); }

constexpr int32_t kHalf = 1 << 30;  // M0 of the real multipliers 0.5 (shift 0) and 0.25 (shift 1)

}  // namespace

// ---- Task 1 ------------------------------------------------------------------------------------

// 2 bits: qmin = -2, qmax = 1. S = 1/3, Z = -1, so q = clamp(round(3 r) - 1, -2, 1):
//   -0.6 -> -1.8 -> -2 -> -3 -> -2 (clamped)    -0.25 -> -0.75 -> -1 -> -2
//   -0.1 -> -0.3 -> 0 -> -1                      0     -> 0 -> -1
//    0.1 -> 0.3 -> 0 -> -1                       0.2   -> 0.6 -> 1 -> 0
//    0.45 -> 1.35 -> 1 -> 0                      0.75  -> 2.25 -> 2 -> 1
//    1.0 -> 3 -> 2 -> 1 (clamped)
TEST_CASE("linear_quantize: 2 bits, S = 1/3, Z = -1", "[task1]") {
  const Tensor r({3, 3}, {-0.6f, -0.25f, -0.1f, 0.0f, 0.1f, 0.2f, 0.45f, 0.75f, 1.0f});
  check_exact("q", i8({3, 3}, {-2, -2, -1, -1, -1, 0, 0, 1, 1}),
              lab2::linear_quantize(r, 2, 1.0f / 3.0f, -1));
}

// S = 0.5, so r / S = 0.5, 1.5, 2.5, -0.5, -1.5, exactly: halves go to the even neighbour
// (0, 2, 2, -0, -2), not away from zero (1, 2, 3, -1, -2). With Z = 3 every value moves up by 3.
TEST_CASE("linear_quantize: halves round to even", "[task1]") {
  const Tensor r({5}, {0.25f, 0.75f, 1.25f, -0.25f, -0.75f});
  check_exact("Z = 0", i8({5}, {0, 2, 2, 0, -2}), lab2::linear_quantize(r, 8, 0.5f, 0));
  check_exact("Z = 3", i8({5}, {3, 5, 5, 3, 1}), lab2::linear_quantize(r, 8, 0.5f, 3));
}

// 8 bits clamp to [-128, 127]: 100 / 0.1 = 1000 -> 127 and -1000 -> -128; a zero point outside
// the range (Z = 300) moves 0 to 300, clamped to 127 (and -1000 + 300 still clamps to -128).
// 1 bit: the range is [-1, 0].
TEST_CASE("linear_quantize: clamping and 1 bit", "[task1]") {
  const Tensor r({3}, {100.0f, -100.0f, 0.0f});
  check_exact("8 bits", i8({3}, {127, -128, 0}), lab2::linear_quantize(r, 8, 0.1f, 0));
  check_exact("Z = 300", i8({3}, {127, -128, 127}), lab2::linear_quantize(r, 8, 0.1f, 300));
  const Tensor s({3}, {-1.0f, 0.4f, 5.0f});
  check_exact("1 bit", i8({3}, {-1, 0, 0}), lab2::linear_quantize(s, 1, 1.0f, 0));
}

TEST_CASE("linear_quantize: errors name the value", "[task1]") {
  const Tensor r({2}, {0.0f, 1.0f});
  check_error_names([&] { lab2::linear_quantize(r, 9, 1.0f, 0); }, "9");
  check_error_names([&] { lab2::linear_quantize(r, 0, 1.0f, 0); }, "0");
  check_error_names([&] { lab2::linear_quantize(r, 8, -2.0f, 0); }, "-2");
  const Tensor bad({2}, {0.0f, std::nanf("")});
  check_error_names([&] { lab2::linear_quantize(bad, 8, 1.0f, 0); }, "NaN");
}

// ---- Task 2 ------------------------------------------------------------------------------------

// The golden case of the lab: range [-0.25, 0.75] on 2 bits (qmax - qmin = 3):
// S = 1 / 3, Z = round(-2 - (-0.25) / (1/3)) = round(-1.25) = -1.
TEST_CASE("get_quantization_scale_and_zero_point: 2 bits, S = 1/3, Z = -1", "[task2]") {
  const Tensor r({4}, {0.1f, -0.25f, 0.75f, 0.5f});
  const lab2::QuantParams p = lab2::get_quantization_scale_and_zero_point(r, 2);
  CHECK(p.scale == 1.0f / 3.0f);
  CHECK(p.zero_point == -1);
}

// 3 bits (7 steps), range [-0.75, 2.75]: S = 3.5 / 7 = 0.5, Z = round(-4 + 1.5) = round(-2.5),
// which is -2 (halves to even), not -3.
TEST_CASE("get_quantization_scale_and_zero_point: the zero point rounds halves to even",
          "[task2]") {
  const Tensor r({3}, {2.75f, 0.0f, -0.75f});
  const lab2::QuantParams p = lab2::get_quantization_scale_and_zero_point(r, 3);
  CHECK(p.scale == 0.5f);
  CHECK(p.zero_point == -2);
}

// A range that does not contain 0: [1, 4] on 8 bits gives S = 3 / 255 and
// Z = round(-128 - 85) = -213, clamped to -128; [-4, -1] gives Z = round(-128 + 340) = 212,
// clamped to 127.
TEST_CASE("get_quantization_scale_and_zero_point: the zero point is clamped", "[task2]") {
  const lab2::QuantParams pos =
      lab2::get_quantization_scale_and_zero_point(Tensor({3}, {1.0f, 2.0f, 4.0f}), 8);
  CHECK(pos.scale == static_cast<float>(3.0 / 255.0));
  CHECK(pos.zero_point == -128);
  const lab2::QuantParams neg =
      lab2::get_quantization_scale_and_zero_point(Tensor({2}, {-4.0f, -1.0f}), 8);
  CHECK(neg.scale == static_cast<float>(3.0 / 255.0));
  CHECK(neg.zero_point == 127);
}

// Constant tensors: the range is widened to include 0. c = 2 on 8 bits: [0, 2], S = 2 / 255,
// Z = -128, and 2 quantizes to round(255) - 128 = 127. c = -3 on 4 bits: [-3, 0], S = 0.2,
// Z = round(-8 + 15) = 7, and -3 quantizes to -15 + 7 = -8. Zeros: S = 1, Z = 0.
TEST_CASE("get_quantization_scale_and_zero_point: constant tensors", "[task2]") {
  const Tensor two = Tensor::full({2, 2}, 2.0f);
  const lab2::QuantParams p = lab2::get_quantization_scale_and_zero_point(two, 8);
  CHECK(p.scale == static_cast<float>(2.0 / 255.0));
  CHECK(p.zero_point == -128);
  check_exact("2 quantized", i8({2, 2}, {127, 127, 127, 127}),
              lab2::linear_quantize(two, 8, p.scale, p.zero_point));
  const Tensor minus3 = Tensor::full({1}, -3.0f);
  const lab2::QuantParams m = lab2::get_quantization_scale_and_zero_point(minus3, 4);
  CHECK(m.scale == static_cast<float>(3.0 / 15.0));
  CHECK(m.zero_point == 7);
  check_exact("-3 quantized", i8({1}, {-8}), lab2::linear_quantize(minus3, 4, m.scale, m.zero_point));
  const lab2::QuantParams z = lab2::get_quantization_scale_and_zero_point(Tensor::zeros({3}), 8);
  CHECK(z.scale == 1.0f);
  CHECK(z.zero_point == 0);
}

TEST_CASE("get_quantization_scale_and_zero_point: errors name the value", "[task2]") {
  check_error_names([&] { lab2::get_quantization_scale_and_zero_point(Tensor({2}, {0.0f, 1.0f}), 12); },
                    "12");
  check_error_names([&] { lab2::get_quantization_scale_and_zero_point(Tensor({0}), 8); }, "(0,)");
}

// ---- Task 3 ------------------------------------------------------------------------------------

// 8 bits (qmax 127). Channel 0: max |w| = 1.27, S = 0.01: 0.5 -> 50, -1.27 -> -127,
// 0.254 -> 25.4 -> 25. Channel 1 is all zeros: S = 1, q = 0. Channel 2: S = 2.54 / 127 = 0.02:
// -2.54 -> -127, 1.0 -> 50, 0 -> 0.
TEST_CASE("linear_quantize_weight_per_channel: a linear weight", "[task3]") {
  const Tensor w({3, 3}, {0.5f, -1.27f, 0.254f, 0.0f, 0.0f, 0.0f, -2.54f, 1.0f, 0.0f});
  const lab2::PerChannelQuantized out = lab2::linear_quantize_weight_per_channel(w, 8);
  check_exact("q", i8({3, 3}, {50, -127, 25, 0, 0, 0, -127, 50, 0}), out.q);
  check_exact("scales", Tensor({3}, {1.27f / 127.0f, 1.0f, 2.54f / 127.0f}), out.scales);
}

// A conv weight (2, 1, 2, 2) on 4 bits (qmax 7). Channel 0: S = 0.7 / 7 = 0.1: 7, -3, 1, 0.
// Channel 1: S = 1.4 / 7 = 0.2: -7, 1, 3, 5.
TEST_CASE("linear_quantize_weight_per_channel: a conv weight", "[task3]") {
  const Tensor w({2, 1, 2, 2}, {0.7f, -0.3f, 0.1f, 0.0f, -1.4f, 0.2f, 0.6f, 1.0f});
  const lab2::PerChannelQuantized out = lab2::linear_quantize_weight_per_channel(w, 4);
  check_exact("q", i8({2, 1, 2, 2}, {7, -3, 1, 0, -7, 1, 3, 5}), out.q);
  check_exact("scales", Tensor({2}, {0.7f / 7.0f, 1.4f / 7.0f}), out.scales);
}

TEST_CASE("linear_quantize_weight_per_channel: errors name the shape or the value", "[task3]") {
  check_error_names([&] { lab2::linear_quantize_weight_per_channel(Tensor({4}), 8); }, "(4,)");
  check_error_names([&] { lab2::linear_quantize_weight_per_channel(Tensor({2, 2}), 1); }, "1");
}

// ---- Task 4 ------------------------------------------------------------------------------------

// S_x = 0.5. 0.5 / (0.01 * 0.5) = 100, -0.25 / 0.025 = -10, 0 -> 0; with S_w = 0.25 (product
// 0.125, exact): 0.3125 / 0.125 = 2.5 -> 2 and 0.4375 / 0.125 = 3.5 -> 4 (halves to even).
TEST_CASE("quantize_bias: round(b / (S_w S_x))", "[task4]") {
  const Tensor bias({5}, {0.5f, -0.25f, 0.0f, 0.3125f, 0.4375f});
  const Tensor scales({5}, {0.01f, 0.05f, 0.1f, 0.25f, 0.25f});
  check_exact("bias_q", i32({5}, {100, -10, 0, 2, 4}), lab2::quantize_bias(bias, scales, 0.5f));
}

// 1e6 / (1e-4 * 1e-4) = 1e14 saturates to 2^31 - 1, and its negative to -2^31.
TEST_CASE("quantize_bias: saturates to int32", "[task4]") {
  const Tensor bias({2}, {1e6f, -1e6f});
  check_exact("bias_q",
              i32({2}, {std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}),
              lab2::quantize_bias(bias, Tensor({2}, {1e-4f, 1e-4f}), 1e-4f));
}

TEST_CASE("quantize_bias: errors name the shapes", "[task4]") {
  check_error_names([&] { lab2::quantize_bias(Tensor({3}), Tensor({4}, {1, 1, 1, 1}), 1.0f); },
                    "(4,)");
}

// ---- Task 5 ------------------------------------------------------------------------------------

// quantize_multiplier (given): 0.3 = 0.6 * 2^-1, M0 = round(0.6 * 2^31) = 1288490189, n = 1;
// 0.5 = 0.5 * 2^0: M0 = 2^30, n = 0; 0.25: M0 = 2^30, n = 1.
// multiply_by_quantized_multiplier:
//   (1000, 0.3): h = round(1000 * 0.6) = 600, 600 / 2 = 300.
//   (3, 0.5): h = 1.5 rounded up = 2, no shift.     (-3, 0.5): h = -1.5 rounded up = -1.
//   (6, 0.25): h = 3, 3 / 2 = 1.5 -> 2.             (-6, 0.25): h = -3, -1.5 -> -2 (away from 0).
TEST_CASE("multiply_by_quantized_multiplier: worked examples and rounding", "[task5]") {
  const lab2::QuantizedMultiplier m = lab2::quantize_multiplier(0.3);
  REQUIRE(m.multiplier == 1288490189);
  REQUIRE(m.shift == 1);
  CHECK(lab2::multiply_by_quantized_multiplier(1000, m.multiplier, m.shift) == 300);
  CHECK(lab2::multiply_by_quantized_multiplier(-1000, m.multiplier, m.shift) == -300);
  CHECK(lab2::multiply_by_quantized_multiplier(3, kHalf, 0) == 2);
  CHECK(lab2::multiply_by_quantized_multiplier(-3, kHalf, 0) == -1);
  CHECK(lab2::multiply_by_quantized_multiplier(6, kHalf, 1) == 2);
  CHECK(lab2::multiply_by_quantized_multiplier(-6, kHalf, 1) == -2);
  CHECK(lab2::multiply_by_quantized_multiplier(0, kHalf, 5) == 0);
  check_error_names([&] { lab2::multiply_by_quantized_multiplier(1, kHalf, 32); }, "32");
}

// N = 1, I = 2, O = 2. x - Zx = (10 - 2, -5 - 2) = (8, -7).
//   output 0: 100 + 8 * 1 + (-7) * 2 = 94; x 0.5 (M0 2^30, n 0) = 47; + Zy 5 = 52.
//   output 1: -10 + 8 * (-3) + (-7) * 4 = -62; x 0.25 (M0 2^30, n 1): h = -31, -15.5 -> -16
//             (away from zero); + 5 = -11.
TEST_CASE("quantized_linear: a hand-worked layer", "[task5]") {
  const Tensor y = lab2::quantized_linear(i8({1, 2}, {10, -5}), i8({2, 2}, {1, 2, -3, 4}),
                                          i32({2}, {100, -10}), 2, 5, i32({2}, {kHalf, kHalf}),
                                          i32({2}, {0, 1}));
  check_exact("y_q", i8({1, 2}, {52, -11}), y);
}

// Accumulators of +-2,000,000 times 0.5 are far outside int8: 127 and -128.
TEST_CASE("quantized_linear: outputs saturate to int8", "[task5]") {
  const Tensor y = lab2::quantized_linear(i8({1, 1}, {0}), i8({2, 1}, {0, 0}),
                                          i32({2}, {2000000, -2000000}), 0, 0,
                                          i32({2}, {kHalf, kHalf}), i32({2}, {0, 0}));
  check_exact("y_q", i8({1, 2}, {127, -128}), y);
}

// The golden layer (batch 4, 8 inputs, 8 outputs), made by
// reference/lab2_quantization/make_golden.py from float inputs with torch's seeded generator and
// an independent implementation in numpy and Python integers. Every step of the pipeline is
// checked against it: Task 2 on x and on the float output's range, Task 1 on x, Task 3 on w,
// Task 4 on b, quantize_multiplier on S_x S_w / S_y, and Task 5 on the integers.
TEST_CASE("quantized_linear: the golden 4x8x8 layer, step by step", "[task5][golden]") {
  const effml::SafetensorsFile g = effml::load_safetensors(
      std::string(EFFML_SOURCE_DIR) + "/labs/lab2_quantization/golden/quantized_linear_4x8x8.safetensors");
  const int32_t x_zero_point = g.at("x_zero_point").data_i32()[0];
  const int32_t y_zero_point = g.at("y_zero_point").data_i32()[0];
  const float x_scale = g.at("x_scale").item();
  const float y_scale = g.at("y_scale").item();
  SECTION("Tasks 1 and 2: the input") {
    const lab2::QuantParams p = lab2::get_quantization_scale_and_zero_point(g.at("x"), 8);
    CHECK(p.scale == x_scale);
    CHECK(p.zero_point == x_zero_point);
    check_exact("x_q", g.at("x_q"), lab2::linear_quantize(g.at("x"), 8, x_scale, x_zero_point));
  }
  SECTION("Tasks 3 and 4: the weight and the bias") {
    const lab2::PerChannelQuantized w = lab2::linear_quantize_weight_per_channel(g.at("w"), 8);
    check_exact("w_q", g.at("w_q"), w.q);
    check_exact("w_scales", g.at("w_scales"), w.scales);
    check_exact("bias_q", g.at("bias_q"), lab2::quantize_bias(g.at("b"), g.at("w_scales"), x_scale));
  }
  SECTION("Task 5: the integer layer") {
    const Tensor& w_scales = g.at("w_scales");
    for (int64_t o = 0; o < w_scales.numel(); ++o) {
      const lab2::QuantizedMultiplier m = lab2::quantize_multiplier(
          static_cast<double>(x_scale) * static_cast<double>(w_scales[o]) / y_scale);
      CHECK(m.multiplier == g.at("multiplier").data_i32()[o]);
      CHECK(m.shift == g.at("shift").data_i32()[o]);
    }
    check_exact("y_q", g.at("y_q"),
                lab2::quantized_linear(g.at("x_q"), g.at("w_q"), g.at("bias_q"), x_zero_point,
                                       y_zero_point, g.at("multiplier"), g.at("shift")));
  }
}

TEST_CASE("quantized_linear: errors name the shapes", "[task5]") {
  check_error_names(
      [&] {
        lab2::quantized_linear(i8({1, 3}, {0, 0, 0}), i8({2, 2}, {0, 0, 0, 0}), i32({2}, {0, 0}),
                               0, 0, i32({2}, {kHalf, kHalf}), i32({2}, {0, 0}));
      },
      "(1, 3)");
}

// ---- Task 6 ------------------------------------------------------------------------------------

// x (1, 1, 2, 2) = [[1, 2], [3, 4]] with Zx = 1, so x - Zx = [[0, 1], [2, 3]]; a 3x3 kernel
// 1..9 (row-major), padding 1, stride 1: the output is 2x2 and every window holds the whole
// input. Output (0, 0) sees the input through kernel rows 1-2 and columns 1-2 (5, 6, 8, 9):
// 0*5 + 1*6 + 2*8 + 3*9 = 49; (0, 1) through 4, 5, 7, 8: 43; (1, 0) through 2, 3, 5, 6: 31;
// (1, 1) through 1, 2, 4, 5: 25. Bias 1: 50, 44, 32, 26; x 0.5: 25, 22, 16, 13; Zy = -3:
// 22, 19, 13, 10. Padding with 0 instead of Zx = 1 would add -(sum of the 5 padded weights).
TEST_CASE("quantized_conv2d: padding holds the zero point", "[task6]") {
  const Tensor y = lab2::quantized_conv2d(i8({1, 1, 2, 2}, {1, 2, 3, 4}),
                                          i8({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}),
                                          i32({1}, {1}), 1, -3, i32({1}, {kHalf}), i32({1}, {0}),
                                          1, 1);
  check_exact("y_q", i8({1, 1, 2, 2}, {22, 19, 13, 10}), y);
}

// x (1, 1, 3, 3) = 0..8, a 1x1 kernel of 2, stride 2, no padding: the output (2x2) reads
// x at (0, 0), (0, 2), (2, 0), (2, 2) = 0, 2, 6, 8; x 2 x 0.5 gives 0, 2, 6, 8.
TEST_CASE("quantized_conv2d: stride 2", "[task6]") {
  const Tensor y = lab2::quantized_conv2d(i8({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8}),
                                          i8({1, 1, 1, 1}, {2}), i32({1}, {0}), 0, 0,
                                          i32({1}, {kHalf}), i32({1}, {0}), 2, 0);
  check_exact("y_q", i8({1, 1, 2, 2}, {0, 2, 6, 8}), y);
}

// A 1x1 convolution is quantized_linear applied to each pixel's channel vector: both of your
// functions must agree on random integers (N 2, C 7, 3x5 image, 5 outputs).
TEST_CASE("quantized_conv2d: a 1x1 convolution is a linear layer per pixel", "[task6]") {
  effml::Rng rng(3);
  const int64_t n = 2, c = 7, h = 3, w = 5, o = 5;
  std::vector<int8_t> xv(static_cast<std::size_t>(n * c * h * w)), wv(static_cast<std::size_t>(o * c));
  for (auto& v : xv) v = static_cast<int8_t>(static_cast<int>(rng.randint(256)) - 128);
  for (auto& v : wv) v = static_cast<int8_t>(static_cast<int>(rng.randint(255)) - 127);
  std::vector<int32_t> bias, m0, shift;
  for (int64_t k = 0; k < o; ++k) {
    bias.push_back(static_cast<int32_t>(rng.randint(20001)) - 10000);
    const lab2::QuantizedMultiplier m = lab2::quantize_multiplier(0.002 + 0.001 * k);
    m0.push_back(m.multiplier);
    shift.push_back(m.shift);
  }
  const Tensor x = i8({n, c, h, w}, xv), weight = i8({o, c, 1, 1}, wv);
  const Tensor y = lab2::quantized_conv2d(x, weight, i32({o}, bias), -7, 4, i32({o}, m0),
                                          i32({o}, shift), 1, 0);
  REQUIRE(y.shape() == effml::Shape{n, o, h, w});
  // Pixels as rows: (n h w, c).
  std::vector<int8_t> rows;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < h * w; ++p)
      for (int64_t k = 0; k < c; ++k) rows.push_back(xv[static_cast<std::size_t>((b * c + k) * h * w + p)]);
  const Tensor lin = lab2::quantized_linear(i8({n * h * w, c}, rows), i8({o, c}, wv), i32({o}, bias),
                                            -7, 4, i32({o}, m0), i32({o}, shift));
  int mismatches = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k)
      for (int64_t p = 0; p < h * w; ++p)
        if (y.data_i8()[(b * o + k) * h * w + p] != lin.data_i8()[(b * h * w + p) * o + k]) ++mismatches;
  CHECK(mismatches == 0);
}

TEST_CASE("quantized_conv2d: errors name the shapes and values", "[task6]") {
  const Tensor x = i8({1, 2, 3, 3}, std::vector<int8_t>(18, 0));
  const Tensor w3 = i8({1, 3, 1, 1}, {1, 1, 1});
  check_error_names([&] { lab2::quantized_conv2d(x, w3, i32({1}, {0}), 0, 0, i32({1}, {kHalf}), i32({1}, {0}), 1, 0); },
                    "(1, 3, 1, 1)");
  const Tensor w2 = i8({1, 2, 1, 1}, {1, 1});
  check_error_names([&] { lab2::quantized_conv2d(x, w2, i32({1}, {0}), 0, 0, i32({1}, {kHalf}), i32({1}, {0}), 0, 0); },
                    "stride");
}

// ---- Task 7 ------------------------------------------------------------------------------------

// 1 bit (k = 2) on {0, 1, 9, 10}: the linear initialisation gives c = (0, 10); 0 and 1 are
// nearer 0, 9 and 10 nearer 10: labels (0, 0, 1, 1). Update: c = (0.5, 9.5); no label changes.
TEST_CASE("k_means_quantize: 1 bit on {0, 1, 9, 10}", "[task7]") {
  const Tensor w({2, 2}, {0.0f, 1.0f, 9.0f, 10.0f});
  const lab2::Codebook c = lab2::k_means_quantize(w, 1);
  check_exact("centroids", Tensor({2}, {0.5f, 9.5f}), c.centroids);
  check_exact("labels", i32({2, 2}, {0, 0, 1, 1}), c.labels);
}

// 1 bit on {0, 5, 10}: c = (0, 10) and 5 is as far from both: the tie goes to the lower index,
// 0. Update: c = (2.5, 10); 5 is now nearer 2.5: nothing changes.
TEST_CASE("k_means_quantize: a tie goes to the lower index", "[task7]") {
  const lab2::Codebook c = lab2::k_means_quantize(Tensor({3}, {0.0f, 5.0f, 10.0f}), 1);
  check_exact("centroids", Tensor({2}, {2.5f, 10.0f}), c.centroids);
  check_exact("labels", i32({3}, {0, 0, 1}), c.labels);
}

// 2 bits (k = 4) on {0, 1, 2, 12}: c = (0, 4, 8, 12); 2 ties between 0 and 4 and goes to 0, so
// labels (0, 0, 0, 3) and clusters 1 and 2 are empty: they keep 4 and 8. Update: c0 = 1, and
// 2 is then nearer 1 than 4: nothing changes.
TEST_CASE("k_means_quantize: empty clusters keep their centroid", "[task7]") {
  const lab2::Codebook c = lab2::k_means_quantize(Tensor({4}, {0.0f, 1.0f, 2.0f, 12.0f}), 2);
  check_exact("centroids", Tensor({4}, {1.0f, 4.0f, 8.0f, 12.0f}), c.centroids);
  check_exact("labels", i32({4}, {0, 0, 0, 3}), c.labels);
}

// 1 bit on {0, 9, 11, 11, 11, 11, 20}: c = (0, 20), the boundary at 10: labels
// (0, 0, 1, 1, 1, 1, 1). Update: c = (4.5, 64 / 5 = 12.8); 9 is now nearer 12.8 (3.8 < 4.5), so
// its label changes. Update: c = (0, 73 / 6); the boundary is at 6.08: no label changes.
TEST_CASE("k_means_quantize: iterates until no label changes", "[task7]") {
  const Tensor w({7}, {0.0f, 9.0f, 11.0f, 11.0f, 11.0f, 11.0f, 20.0f});
  const lab2::Codebook c = lab2::k_means_quantize(w, 1);
  check_exact("centroids", Tensor({2}, {0.0f, static_cast<float>(73.0 / 6.0)}), c.centroids);
  check_exact("labels", i32({7}, {0, 1, 1, 1, 1, 1, 1}), c.labels);
}

// A constant weight: every centroid is the constant, every label 0 (all distances tie).
// 3 bits on one value is the same case.
TEST_CASE("k_means_quantize: a constant weight", "[task7]") {
  const lab2::Codebook c = lab2::k_means_quantize(Tensor::full({2, 3}, -1.5f), 2);
  check_exact("centroids", Tensor::full({4}, -1.5f), c.centroids);
  check_exact("labels", i32({2, 3}, {0, 0, 0, 0, 0, 0}), c.labels);
  const lab2::Codebook one = lab2::k_means_quantize(Tensor({1}, {0.25f}), 3);
  check_exact("one value: centroids", Tensor::full({8}, 0.25f), one.centroids);
  check_exact("one value: labels", i32({1}, {0}), one.labels);
}

// Properties on 500 normal values and 3 bits: every label is the nearest centroid, and the
// codebook is a fixed point of update_codebook (each non-empty centroid is its cluster's mean;
// measured: this case stops after fewer than 50 updates). The dequantized weight is closer to
// w than with 2 bits.
TEST_CASE("k_means_quantize: labels are nearest and centroids are means", "[task7]") {
  effml::Rng rng(3);
  const Tensor w = Tensor::randn({20, 25}, rng);
  const lab2::Codebook c = lab2::k_means_quantize(w, 3);
  REQUIRE(c.centroids.shape() == effml::Shape{8});
  REQUIRE(c.labels.shape() == w.shape());
  int not_nearest = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const int32_t l = c.labels.data_i32()[i];
    REQUIRE(l >= 0);
    REQUIRE(l < 8);
    for (int64_t j = 0; j < 8; ++j) {
      if (std::fabs(double{w[i]} - c.centroids[j]) < std::fabs(double{w[i]} - c.centroids[l])) {
        ++not_nearest;
      }
    }
  }
  CHECK(not_nearest == 0);
  lab2::Codebook again{c.centroids.clone(), c.labels.clone()};
  lab2::update_codebook(w, again);
  check_exact("centroids after update_codebook", c.centroids, again.centroids);
  const Tensor two_bits = lab2::dequantize(lab2::k_means_quantize(w, 2));
  CHECK((lab2::dequantize(c) - w).norm() < (two_bits - w).norm());
}

TEST_CASE("k_means_quantize: errors name the value", "[task7]") {
  const Tensor w({2}, {0.0f, 1.0f});
  check_error_names([&] { lab2::k_means_quantize(w, 0); }, "0");
  check_error_names([&] { lab2::k_means_quantize(w, 9); }, "9");
  check_error_names([&] { lab2::k_means_quantize(Tensor({0}), 2); }, "(0,)");
  check_error_names([&] { lab2::k_means_quantize(Tensor({2}, {0.0f, std::nanf("")}), 2); }, "NaN");
}

// ---- Task 8 ------------------------------------------------------------------------------------

// The codebook of {0, 1, 9, 10} (labels 0, 0, 1, 1) with a third, unused centroid 3; the
// weight moved to {0.25, 1.75, 8, 10.5}: c0 = 2 / 2 = 1, c1 = 18.5 / 2 = 9.25, c2 stays 3.
TEST_CASE("update_codebook: centroid = mean of its cluster", "[task8]") {
  lab2::Codebook c{Tensor({3}, {0.5f, 9.5f, 3.0f}), i32({4}, {0, 0, 1, 1})};
  lab2::update_codebook(Tensor({4}, {0.25f, 1.75f, 8.0f, 10.5f}), c);
  check_exact("centroids", Tensor({3}, {1.0f, 9.25f, 3.0f}), c.centroids);
  check_exact("labels unchanged", i32({4}, {0, 0, 1, 1}), c.labels);
}

// The mean is summed in double: 2^24 + 1 + 1 is 16777218 in double, and 2^24 in float32 (each
// + 1 rounds back to 2^24, the spacing of float32 there being 2). Double: 16777218 / 3 =
// 5592406 exactly; float32: 16777216 / 3 rounds to 5592405.5.
TEST_CASE("update_codebook: the mean is computed in double", "[task8]") {
  lab2::Codebook c{Tensor({1}, {0.0f}), i32({3}, {0, 0, 0})};
  lab2::update_codebook(Tensor({3}, {16777216.0f, 1.0f, 1.0f}), c);
  check_exact("centroids", Tensor({1}, {5592406.0f}), c.centroids);
}

TEST_CASE("update_codebook: errors name the shapes and the label", "[task8]") {
  lab2::Codebook c{Tensor({2}, {0.0f, 1.0f}), i32({3}, {0, 1, 2})};
  check_error_names([&] { lab2::update_codebook(Tensor({3}), c); }, "2");
  lab2::Codebook d{Tensor({2}, {0.0f, 1.0f}), i32({3}, {0, 1, 1})};
  check_error_names([&] { lab2::update_codebook(Tensor({4}), d); }, "(4,)");
}

// ---- Task 9 ------------------------------------------------------------------------------------

// Labels (0, 0, 1, 1), gradients (1, 2, -4, 0.5), lr 0.25 (every product exact):
// c0 = 0.5 - 0.25 * 3 = -0.25, c1 = 9.5 - 0.25 * (-3.5) = 10.375, the unused c2 stays 3. The
// dequantized weights of a cluster move together: they stay tied.
TEST_CASE("codebook_gradient_step: each centroid takes the sum of its gradients", "[task9]") {
  lab2::Codebook c{Tensor({3}, {0.5f, 9.5f, 3.0f}), i32({4}, {0, 0, 1, 1})};
  lab2::codebook_gradient_step(c, Tensor({4}, {1.0f, 2.0f, -4.0f, 0.5f}), 0.25f);
  check_exact("centroids", Tensor({3}, {-0.25f, 10.375f, 3.0f}), c.centroids);
  check_exact("labels unchanged", i32({4}, {0, 0, 1, 1}), c.labels);
  check_exact("dequantized", Tensor({4}, {-0.25f, -0.25f, 10.375f, 10.375f}), lab2::dequantize(c));
}

// A step that lowers a loss: L = 0.5 |w_hat - target|^2 has gradient w_hat - target; one step
// of lr 0.1 on the tied weights lowers L (each centroid moves toward its cluster's targets).
TEST_CASE("codebook_gradient_step: a step lowers a quadratic loss", "[task9]") {
  effml::Rng rng(9);
  const Tensor w = Tensor::randn({7, 17}, rng);
  const Tensor target = w + Tensor::randn({7, 17}, rng) * 0.3f;
  lab2::Codebook c = lab2::k_means_quantize(w, 2);
  const float before = (lab2::dequantize(c) - target).norm();
  lab2::codebook_gradient_step(c, lab2::dequantize(c) - target, 0.01f);
  const float after = (lab2::dequantize(c) - target).norm();
  INFO("loss before " << before << ", after " << after);
  CHECK(after < before);
}

TEST_CASE("codebook_gradient_step: errors name the shapes and the value", "[task9]") {
  lab2::Codebook c{Tensor({2}, {0.0f, 1.0f}), i32({3}, {0, 1, 1})};
  check_error_names([&] { lab2::codebook_gradient_step(c, Tensor({2, 2}), 0.1f); }, "(2, 2)");
  check_error_names([&] { lab2::codebook_gradient_step(c, Tensor({3}), INFINITY); }, "inf");
}
