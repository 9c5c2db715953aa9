// The integer-only VGG (quantized.h): requantize() against exact integer arithmetic, the pixel
// conversion, forward() against a direct implementation written here from the header's table,
// validate()'s messages, the file format (round trip, names, missing and mistyped tensors) and
// quantized_accuracy() on a model whose logits are known.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "effml/error.h"
#include "effml/parallel.h"
#include "effml/quantized.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "error_checks.h"
#include "temp_dir.h"

using namespace effml;
using effml::testing::check_error_names;
using effml::testing::error_of;
namespace fs = std::filesystem;
using effml::testing::TempDir;

namespace {

// Exact integer arithmetic wide enough for acc * M0 (|acc * M0| < 2^62) times a few powers of 2.
__extension__ typedef __int128 i128;

constexpr int64_t kTwo30 = int64_t{1} << 30;
constexpr int64_t kTwo31 = int64_t{1} << 31;

// floor(a / b) for b > 0 (C++ division truncates toward zero).
i128 floor_div(i128 a, i128 b) {
  i128 q = a / b;
  if (a % b != 0 && a < 0) --q;
  return q;
}

// The contract of requantize(), written from its definition rather than from gemmlowp's bit
// tricks: with p = acc * M0 exactly,
//   h = round(p / 2^31), halves toward +infinity  = floor((2p + 2^31) / 2^32)
//   r = round(h / 2^n),  halves away from zero    = sign(h) * floor((2|h| + 2^n) / 2^(n+1)).
int64_t requantize_ref(int64_t acc, int64_t m0, int n) {
  const i128 p = static_cast<i128>(acc) * m0;
  const i128 h = floor_div(2 * p + (static_cast<i128>(1) << 31), static_cast<i128>(1) << 32);
  const i128 mag = h < 0 ? -h : h;
  const i128 r = floor_div(2 * mag + (static_cast<i128>(1) << n), static_cast<i128>(1) << (n + 1));
  return static_cast<int64_t>(h < 0 ? -r : r);
}

// Two roundings of at most half a unit each: the result is within 1/2 + 2^-(n+1) of the real
// acc * M0 / 2^(31+n). In integers: |r 2^(31+n) - p| <= 2^(30+n) + 2^30.
bool within_double_rounding(int64_t r, int64_t acc, int64_t m0, int n) {
  const i128 p = static_cast<i128>(acc) * m0;
  i128 diff = static_cast<i128>(r) * (static_cast<i128>(1) << (31 + n)) - p;
  if (diff < 0) diff = -diff;
  return diff <= (static_cast<i128>(1) << (30 + n)) + (static_cast<i128>(1) << 30);
}

// Uniform integer in [lo, hi].
int64_t uniform_int(Rng& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng.randint(static_cast<uint64_t>(hi - lo + 1)));
}

// A random odd integer with |v| < 2^bits (bits >= 1), either sign.
int64_t random_odd(Rng& rng, int bits) {
  const int64_t half = int64_t{1} << (bits - 1);  // odd values 1, 3, ..., 2^bits - 1
  const int64_t v = 2 * uniform_int(rng, 0, half - 1) + 1;
  return rng.randint(2) ? v : -v;
}

std::string cfg_str(const std::vector<int64_t>& cfg) {
  std::ostringstream os;
  os << "{";
  for (std::size_t i = 0; i < cfg.size(); ++i) os << (i ? ", " : "") << cfg[i];
  return os.str() + "}";
}

// ---- random valid models -------------------------------------------------------------------

// A layer of `out` outputs over weights of `wshape`: int8 weights over the whole range, biases in
// [-20000, 20000], M0 = 0 for about 1 output in 10 and in [2^30, 2^31) otherwise, n in [0, 12]
// for about 1 output in 5 (these mostly saturate) and in [7, 12] otherwise (an accumulator of a
// few thousand terms of |x - Zx| |w| ~ 64^2 then lands inside the int8 range), zero points over
// the whole int8 range, positive scales.
QuantizedLayer random_layer(const std::string& name, const Shape& wshape, Rng& rng) {
  const int64_t out = wshape[0];
  QuantizedLayer l;
  l.name = name;
  l.weight = Tensor(wshape, DType::Int8);
  for (int64_t i = 0; i < l.weight.numel(); ++i)
    l.weight.data_i8()[i] = static_cast<int8_t>(uniform_int(rng, -128, 127));
  l.bias = Tensor({out}, DType::Int32);
  l.multiplier = Tensor({out}, DType::Int32);
  l.shift = Tensor({out}, DType::Int32);
  l.weight_scale = Tensor({out});
  for (int64_t o = 0; o < out; ++o) {
    l.bias.data_i32()[o] = static_cast<int32_t>(uniform_int(rng, -20000, 20000));
    l.multiplier.data_i32()[o] =
        rng.randint(10) == 0 ? 0 : static_cast<int32_t>(uniform_int(rng, kTwo30, kTwo31 - 1));
    l.shift.data_i32()[o] = static_cast<int32_t>(
        rng.randint(5) == 0 ? uniform_int(rng, 0, 12) : uniform_int(rng, 7, 12));
    l.weight_scale.data()[o] = rng.uniform(1e-4f, 1e-2f);
  }
  l.input_zero_point = static_cast<int32_t>(uniform_int(rng, -128, 127));
  l.output_zero_point = static_cast<int32_t>(uniform_int(rng, -128, 127));
  l.input_scale = rng.uniform(1e-3f, 1e-1f);
  l.output_scale = rng.uniform(1e-3f, 1e-1f);
  return l;
}

// A random valid QuantizedVgg for `cfg`; conv names follow the fp32 VGG's module indices (3 per
// conv block: conv, batch norm, ReLU; 1 per pool).
QuantizedVgg random_model(const std::vector<int64_t>& cfg, Rng& rng) {
  QuantizedVgg m;
  m.cfg = cfg;
  int64_t channels = 1, size = 28, index = 0;
  for (int64_t c : cfg) {
    if (c == 0) {
      size /= 2;
      index += 1;
      continue;
    }
    m.convs.push_back(random_layer("features." + std::to_string(index), {c, channels, 3, 3}, rng));
    channels = c;
    index += 3;
  }
  m.classifier = random_layer("classifier", {10, channels * size * size}, rng);
  return m;
}

// int8 images (n, 1, 28, 28) over the whole int8 range.
Tensor random_images_i8(int64_t n, Rng& rng) {
  Tensor x({n, 1, 28, 28}, DType::Int8);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data_i8()[i] = static_cast<int8_t>(uniform_int(rng, -128, 127));
  return x;
}

// ---- the direct implementation ------------------------------------------------------------

// One image's activation: (C, H, W) values, row-major.
struct Map {
  int64_t c = 0, h = 0, w = 0;
  std::vector<int32_t> v;
  int32_t at(int64_t ci, int64_t i, int64_t j) const {
    return v[static_cast<std::size_t>((ci * h + i) * w + j)];
  }
};

// How many requantized outputs the direct pass produced and how many the clamp changed, so that
// a test can show its model is not saturated everywhere; and whether an accumulator left int32
// (outside the contract: the model would then be no test).
struct PassStats {
  int64_t outputs = 0, clamped = 0;
  bool acc_outside_int32 = false;
};

int32_t requantize_clamp(int64_t acc, const QuantizedLayer& l, int64_t o, PassStats& st) {
  if (acc < std::numeric_limits<int32_t>::min() || acc > std::numeric_limits<int32_t>::max())
    st.acc_outside_int32 = true;
  const int64_t y = requantize_ref(acc, l.multiplier.data_i32()[o], l.shift.data_i32()[o]) +
                    l.output_zero_point;
  const int64_t c = std::min<int64_t>(std::max<int64_t>(y, -128), 127);
  st.outputs += 1;
  st.clamped += c != y;
  return static_cast<int32_t>(c);
}

// conv3x3, stride 1, padding 1 whose padded positions hold Zx; accumulated in int64.
Map conv_ref(const QuantizedLayer& l, const Map& x, PassStats& st) {
  const int64_t out = l.weight.shape()[0];
  const int8_t* wq = l.weight.data_i8();  // (out, x.c, 3, 3)
  const int64_t zx = l.input_zero_point;
  Map y;
  y.c = out;
  y.h = x.h;
  y.w = x.w;
  y.v.resize(static_cast<std::size_t>(out * x.h * x.w));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < x.h; ++i) {
      for (int64_t j = 0; j < x.w; ++j) {
        int64_t acc = l.bias.data_i32()[o];
        for (int64_t ci = 0; ci < x.c; ++ci) {
          for (int64_t ki = 0; ki < 3; ++ki) {
            for (int64_t kj = 0; kj < 3; ++kj) {
              const int64_t si = i + ki - 1, sj = j + kj - 1;
              const bool inside = si >= 0 && si < x.h && sj >= 0 && sj < x.w;
              const int64_t xv = inside ? x.at(ci, si, sj) : zx;
              acc += (xv - zx) * wq[((o * x.c + ci) * 3 + ki) * 3 + kj];
            }
          }
        }
        y.v[static_cast<std::size_t>((o * y.h + i) * y.w + j)] = requantize_clamp(acc, l, o, st);
      }
    }
  }
  return y;
}

// 2x2 max-pool, stride 2; an odd last row or column is dropped (floor), as nn.MaxPool2d(2).
Map pool_ref(const Map& x) {
  Map y;
  y.c = x.c;
  y.h = x.h / 2;
  y.w = x.w / 2;
  for (int64_t ci = 0; ci < y.c; ++ci)
    for (int64_t i = 0; i < y.h; ++i)
      for (int64_t j = 0; j < y.w; ++j)
        y.v.push_back(std::max({x.at(ci, 2 * i, 2 * j), x.at(ci, 2 * i, 2 * j + 1),
                                x.at(ci, 2 * i + 1, 2 * j), x.at(ci, 2 * i + 1, 2 * j + 1)}));
  return y;
}

// The logits of image `img` of x_q (N, 1, 28, 28): the header's table, one step at a time.
std::vector<int32_t> forward_ref(const QuantizedVgg& m, const Tensor& x_q, int64_t img,
                                 PassStats& st) {
  Map a;
  a.c = 1;
  a.h = 28;
  a.w = 28;
  for (int64_t k = 0; k < 784; ++k) a.v.push_back(x_q.data_i8()[img * 784 + k]);
  std::size_t conv = 0;
  for (int64_t c : m.cfg) a = c == 0 ? pool_ref(a) : conv_ref(m.convs[conv++], a, st);
  // The flattened map, (C, H, W) order, is the classifier's input.
  const QuantizedLayer& l = m.classifier;
  const int64_t in = l.weight.shape()[1];
  REQUIRE(in == static_cast<int64_t>(a.v.size()));
  std::vector<int32_t> logits;
  for (int64_t o = 0; o < 10; ++o) {
    int64_t acc = l.bias.data_i32()[o];
    for (int64_t i = 0; i < in; ++i)
      acc += (static_cast<int64_t>(a.v[static_cast<std::size_t>(i)]) - l.input_zero_point) *
             l.weight.data_i8()[o * in + i];
    logits.push_back(requantize_clamp(acc, l, o, st));
  }
  return logits;
}

// ---- files -----------------------------------------------------------------------------------

// Rewrites the tensors of `src` into `dst`, without `drop` and with `replace` substituted.
void rewrite(const std::string& src, const std::string& dst, const std::string& drop,
             const std::map<std::string, Tensor>& replace = {}) {
  const SafetensorsFile f = load_safetensors(src);
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [name, t] : f.tensors) {
    if (name == drop) continue;
    const auto it = replace.find(name);
    refs.emplace_back(name, it == replace.end() ? &t : &it->second);
  }
  save_safetensors(dst, refs, f.metadata);
}

void check_layers_equal(const QuantizedLayer& a, const QuantizedLayer& b) {
  INFO("layer " << a.name);
  CHECK(a.name == b.name);
  CHECK(a.weight.equal(b.weight));
  CHECK(a.bias.equal(b.bias));
  CHECK(a.multiplier.equal(b.multiplier));
  CHECK(a.shift.equal(b.shift));
  CHECK(a.input_zero_point == b.input_zero_point);
  CHECK(a.output_zero_point == b.output_zero_point);
  CHECK(a.weight_scale.equal(b.weight_scale));
  CHECK(a.input_scale == b.input_scale);
  CHECK(a.output_scale == b.output_scale);
}

}  // namespace

// ---- requantize --------------------------------------------------------------------------------

TEST_CASE("requantize: the worked examples of Lab 2", "[quantized]") {
  // 1000 * 0.3: h = round(1000 * 1288490189 / 2^31) = 600, then 600 / 2 = 300.
  CHECK(requantize(1000, 1288490189, 1) == 300);
  // -6 * 0.25: h = -3 exactly, then -3 / 2 = -1.5 rounds away from zero to -2.
  CHECK(requantize(-6, 1 << 30, 1) == -2);
  // The reference agrees with both, so it is the contract and not a different rounding.
  CHECK(requantize_ref(1000, 1288490189, 1) == 300);
  CHECK(requantize_ref(-6, 1 << 30, 1) == -2);
}

TEST_CASE("requantize: first rounding halves toward +infinity, second away from zero",
          "[quantized]") {
  // 3 * 2^30 / 2^31 = 1.5 -> 2 and -1.5 -> -1 (toward +infinity); no second rounding at n = 0.
  CHECK(requantize(3, 1 << 30, 0) == 2);
  CHECK(requantize(-3, 1 << 30, 0) == -1);
  CHECK(requantize(1, 1 << 30, 0) == 1);   // 0.5 -> 1
  CHECK(requantize(-1, 1 << 30, 0) == 0);  // -0.5 -> 0
  // h = 5 and -5 exactly (acc = 10, M0 = 2^30), n = 1: 2.5 -> 3 and -2.5 -> -3.
  CHECK(requantize(10, 1 << 30, 1) == 3);
  CHECK(requantize(-10, 1 << 30, 1) == -3);
  // Both roundings: h = round(-5 / 2) = -2 (-2.5 toward +infinity), then -2 / 4 = -0.5 -> -1.
  CHECK(requantize(-5, 1 << 30, 2) == -1);
  CHECK(requantize_ref(-5, 1 << 30, 2) == -1);
}

TEST_CASE("requantize: edge values of acc, M0 and n against exact arithmetic", "[quantized]") {
  const int64_t imin = std::numeric_limits<int32_t>::min();
  const int64_t imax = std::numeric_limits<int32_t>::max();
  const std::vector<int64_t> accs = {imin, imin + 1, -kTwo30 - 1, -kTwo30, -3, -2, -1, 0,
                                     1,    2,        3,           kTwo30,  kTwo30 + 1, imax - 1,
                                     imax};
  const std::vector<int64_t> mults = {0, 1, 2, kTwo30 - 1, kTwo30, kTwo30 + 1, 1288490189,
                                      kTwo31 - 2, kTwo31 - 1};
  int64_t cases = 0;
  for (int64_t acc : accs) {
    for (int64_t m0 : mults) {
      for (int n = 0; n <= 31; ++n) {
        const int64_t want = requantize_ref(acc, m0, n);
        const int32_t got = requantize(static_cast<int32_t>(acc), static_cast<int32_t>(m0), n);
        INFO("requantize(" << acc << ", " << m0 << ", " << n << ")");
        REQUIRE(got == want);
        REQUIRE(within_double_rounding(got, acc, m0, n));
        if (m0 == 0) REQUIRE(got == 0);
        ++cases;
      }
    }
  }
  CHECK(cases == 15 * 9 * 32);
}

TEST_CASE("requantize: random cases against exact arithmetic, halves included", "[quantized]") {
  Rng rng(20240611);
  const int64_t imin = std::numeric_limits<int32_t>::min();
  const int64_t imax = std::numeric_limits<int32_t>::max();
  int64_t first_halves = 0, second_halves = 0, negatives = 0, checked = 0;

  auto check_case = [&](int64_t acc, int64_t m0, int n) {
    REQUIRE(acc >= imin);
    REQUIRE(acc <= imax);
    REQUIRE(m0 >= 0);
    REQUIRE(m0 < kTwo31);
    const i128 p = static_cast<i128>(acc) * m0;
    // A half in the first rounding: p an odd multiple of 2^30.
    if (p % kTwo31 != 0 && p % kTwo30 == 0) ++first_halves;
    const i128 h = floor_div(2 * p + kTwo31, static_cast<i128>(kTwo31) * 2);
    // A half in the second rounding: h an odd multiple of 2^(n-1).
    const i128 unit = static_cast<i128>(1) << n;
    if (n >= 1 && h % unit != 0 && h % (unit / 2) == 0) ++second_halves;
    negatives += acc < 0;
    const int64_t want = requantize_ref(acc, m0, n);
    const int32_t got =
        requantize(static_cast<int32_t>(acc), static_cast<int32_t>(m0), static_cast<int32_t>(n));
    INFO("requantize(" << acc << ", " << m0 << ", " << n << ")");
    REQUIRE(got == want);
    REQUIRE(within_double_rounding(got, acc, m0, n));
    ++checked;
  };

  for (int k = 0; k < 4000; ++k) {
    // Anywhere in the domain.
    check_case(uniform_int(rng, imin, imax), uniform_int(rng, 0, kTwo31 - 1),
               static_cast<int>(uniform_int(rng, 0, 31)));
    // As in a model: accumulators up to 2^20, normalised multipliers, shifts up to 12.
    check_case(uniform_int(rng, -(1 << 20), 1 << 20), uniform_int(rng, kTwo30, kTwo31 - 1),
               static_cast<int>(uniform_int(rng, 0, 12)));
    // A half in the first rounding: acc = a 2^k and M0 = m 2^(30-k) with a, m odd, so that
    // p = a m 2^30 is an odd multiple of 2^30 (m < 2^(k+1) keeps M0 < 2^31).
    {
      const int e = static_cast<int>(uniform_int(rng, 0, 30));
      const int64_t acc = random_odd(rng, 31 - e) * (int64_t{1} << e);
      const int64_t m0 = std::abs(random_odd(rng, e + 1)) * (int64_t{1} << (30 - e));
      check_case(acc, m0, static_cast<int>(uniform_int(rng, 0, 31)));
    }
    // A half in the second rounding only: M0 = m 2^(31-e) (m odd, m < 2^e) and
    // acc = t 2^e make p = t m 2^31, so h = t m exactly; t = (odd) 2^(n-1) makes h an odd
    // multiple of 2^(n-1). |acc| < 2^31 needs n - 1 + e <= 30.
    {
      const int n = static_cast<int>(uniform_int(rng, 1, 30));
      const int e = static_cast<int>(uniform_int(rng, 1, 31 - n));
      const int64_t m0 = std::abs(random_odd(rng, e)) * (int64_t{1} << (31 - e));
      const int bits = 31 - (n - 1) - e;  // |odd| < 2^bits
      const int64_t acc = random_odd(rng, bits) * (int64_t{1} << (n - 1 + e));
      check_case(acc, m0, n);
    }
  }
  // The extreme multipliers and shifts, with random accumulators.
  for (int k = 0; k < 500; ++k) {
    const int64_t acc = uniform_int(rng, imin, imax);
    for (int64_t m0 : {int64_t{0}, kTwo31 - 1})
      for (int n : {0, 31}) check_case(acc, m0, n);
  }
  // Measured with this seed: 18000 cases, 4000 halves in the first rounding and 4538 in the
  // second, 9091 negative accumulators; the bounds guard against a generator that stops making
  // them.
  CHECK(checked == 4 * 4000 + 4 * 500);
  CHECK(first_halves >= 4000);
  CHECK(second_halves >= 4000);
  CHECK(negatives >= checked / 3);
}

// ---- pixels_to_int8 -----------------------------------------------------------------------------

TEST_CASE("pixels_to_int8: p / 255 becomes p - 128 exactly for every p", "[quantized]") {
  Tensor v({2, 1, 28, 28});
  for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = static_cast<float>(i % 256) / 255.0f;
  const Tensor q = pixels_to_int8(v);
  REQUIRE(q.dtype() == DType::Int8);
  REQUIRE(q.shape() == Shape{2, 1, 28, 28});
  int64_t wrong = 0;
  for (int64_t i = 0; i < q.numel(); ++i) {
    if (q.data_i8()[i] != static_cast<int>(i % 256) - 128) {
      if (wrong == 0) FAIL_CHECK("p = " << i % 256 << " gave " << int{q.data_i8()[i]});
      ++wrong;
    }
  }
  CHECK(wrong == 0);
  // p = round(255 v) also for a value off the grid: (p - 0.3) / 255 and (p + 0.3) / 255 give p
  // (a truncating conversion would give p - 1 for the first).
  Tensor off({2, 1, 28, 28});
  for (int64_t i = 0; i < off.numel(); ++i) {
    const int64_t p = 1 + i % 254;  // 1..254, so both neighbours stay in [0, 1]
    off.data()[i] = (static_cast<float>(p) + (i % 2 ? 0.3f : -0.3f)) / 255.0f;
  }
  const Tensor q_off = pixels_to_int8(off);
  wrong = 0;
  for (int64_t i = 0; i < off.numel(); ++i) {
    if (q_off.data_i8()[i] != 1 + i % 254 - 128) {
      if (wrong == 0) FAIL_CHECK("v = " << off.data()[i] << " gave " << int{q_off.data_i8()[i]});
      ++wrong;
    }
  }
  CHECK(wrong == 0);
  // The bounds themselves: 0 -> -128, 1 -> 127; and no images at all is no error.
  CHECK(pixels_to_int8(Tensor::zeros({1, 1, 28, 28})).data_i8()[0] == -128);
  CHECK(pixels_to_int8(Tensor::full({1, 1, 28, 28}, 1.0f)).data_i8()[783] == 127);
  CHECK(pixels_to_int8(Tensor({0, 1, 28, 28})).shape() == Shape{0, 1, 28, 28});
}

TEST_CASE("pixels_to_int8: a value outside [0, 1] or a wrong shape throws naming it",
          "[quantized]") {
  auto with_value = [](int64_t index, float value) {
    Tensor v = Tensor::full({2, 1, 28, 28}, 0.5f);
    v.data()[index] = value;
    return v;
  };
  check_error_names([&] { pixels_to_int8(with_value(5, 1.5f)); }, "1.5");
  check_error_names([&] { pixels_to_int8(with_value(900, -0.25f)); }, "-0.25");
  check_error_names([&] { pixels_to_int8(with_value(17, 255.0f)); }, "255");
  check_error_names([&] { pixels_to_int8(with_value(3, std::nanf(""))); }, "nan");
  check_error_names(
      [&] { pixels_to_int8(with_value(3, std::numeric_limits<float>::infinity())); }, "inf");
  check_error_names([&] { pixels_to_int8(Tensor({2, 1, 28, 27})); }, "(2, 1, 28, 27)");
  check_error_names([&] { pixels_to_int8(Tensor({1, 28, 28})); }, "(1, 28, 28)");
  check_error_names([&] { pixels_to_int8(Tensor({1, 3, 28, 28})); }, "(1, 3, 28, 28)");
  check_error_names([&] { pixels_to_int8(Tensor({1, 1, 28, 28}, DType::Int8)); }, "int8");
}

// ---- forward ------------------------------------------------------------------------------------

TEST_CASE("QuantizedVgg::forward equals a direct implementation on random models",
          "[quantized]") {
  Rng rng(77);
  // Shapes that cover: one conv, conv then pool then conv, two convs in a block, a pool on the
  // input, and three pools (28 -> 14 -> 7 -> 3: an odd map's last row and column are dropped).
  const std::vector<std::vector<int64_t>> cfgs = {
      {3, 0, 5}, {4, 4, 0, 6, 0}, {2}, {0, 3}, {2, 0, 3, 0, 2, 0}};
  PassStats total;
  std::set<int32_t> distinct_logits;
  for (const auto& cfg : cfgs) {
    for (int trial = 0; trial < 2; ++trial) {
      INFO("cfg " << cfg_str(cfg) << ", trial " << trial);
      const QuantizedVgg model = random_model(cfg, rng);
      REQUIRE_NOTHROW(model.validate());
      const Tensor x = random_images_i8(3, rng);
      std::vector<std::vector<int32_t>> want;
      for (int64_t img = 0; img < 3; ++img) {
        PassStats st;
        want.push_back(forward_ref(model, x, img, st));
        REQUIRE_FALSE(st.acc_outside_int32);
        total.outputs += st.outputs;
        total.clamped += st.clamped;
        for (int32_t v : want.back()) distinct_logits.insert(v);
      }
      // Both kernels (the same one twice in a build without VNNI).
      for (const Int8Kernel kernel : {Int8Kernel::Best, Int8Kernel::Portable}) {
        INFO((kernel == Int8Kernel::Best ? "kernel Best" : "kernel Portable")
             << " (VNNI in this build: " << int8_vnni_available() << ")");
        const Tensor y = model.forward(x, kernel);
        REQUIRE(y.dtype() == DType::Int8);
        REQUIRE(y.shape() == Shape{3, 10});
        int64_t mismatches = 0;
        for (int64_t img = 0; img < 3; ++img) {
          for (int64_t o = 0; o < 10; ++o) {
            const int32_t got = y.data_i8()[img * 10 + o];
            const int32_t expected =
                want[static_cast<std::size_t>(img)][static_cast<std::size_t>(o)];
            if (got != expected) {
              if (mismatches == 0)
                FAIL_CHECK("image " << img << ", logit " << o << ": got " << got
                                    << ", expected " << expected);
              ++mismatches;
            }
          }
        }
        CHECK(mismatches == 0);
      }
    }
  }
  // The models must exercise the arithmetic, not only the clamp. Measured with these seeds:
  // 91440 requantized outputs, 25% of them clamped (by a small shift or a zero point near the
  // edge of the int8 range), and 68 distinct logit values out of 300.
  INFO(total.clamped << " of " << total.outputs << " outputs clamped, "
                     << distinct_logits.size() << " distinct logits");
  CHECK(total.clamped < total.outputs / 2);
  CHECK(distinct_logits.size() >= 40);
}

TEST_CASE("QuantizedVgg::forward repacks after a change of weights or zero point (in place too)",
          "[quantized]") {
  // forward() keeps its packed weights between calls; a weight written in place through
  // data_i8(), or a new input zero point (which the VNNI kernel folds into its packs), must be
  // seen at the next call. A copy of the model computes with its own weights.
  Rng rng(78);
  QuantizedVgg model = random_model({4, 4, 0, 6, 0}, rng);
  const Tensor x = random_images_i8(3, rng);
  auto expected = [&](const QuantizedVgg& m) {
    Tensor y({3, 10}, DType::Int8);
    for (int64_t img = 0; img < 3; ++img) {
      PassStats st;
      const std::vector<int32_t> want = forward_ref(m, x, img, st);
      for (int64_t o = 0; o < 10; ++o)
        y.data_i8()[img * 10 + o] = static_cast<int8_t>(want[static_cast<std::size_t>(o)]);
    }
    return y;
  };
  for (const Int8Kernel kernel : {Int8Kernel::Best, Int8Kernel::Portable}) {
    INFO((kernel == Int8Kernel::Best ? "kernel Best" : "kernel Portable"));
    const Tensor before = model.forward(x, kernel);
    CHECK(before.equal(expected(model)));
    CHECK(model.forward(x, kernel).equal(before));  // from the cached packs
    const QuantizedVgg copy = model;
    // Every weight of the second conv, in place: a large change, so the logits move.
    Tensor& w = model.convs[1].weight;
    for (int64_t i = 0; i < w.numel(); ++i) w.data_i8()[i] = static_cast<int8_t>(-w.data_i8()[i] / 2);
    const Tensor after_weights = model.forward(x, kernel);
    CHECK(after_weights.equal(expected(model)));
    CHECK_FALSE(after_weights.equal(before));
    model.convs[1].input_zero_point += 9;
    CHECK(model.forward(x, kernel).equal(expected(model)));
    CHECK(copy.forward(x, kernel).equal(before));
  }
}

TEST_CASE("QuantizedVgg::forward: same result on 1 and 2 threads, in a batch or one by one",
          "[quantized]") {
  Rng rng(5);
  const QuantizedVgg model = random_model({4, 4, 0, 6, 0}, rng);
  // 7 images: an odd count, so the two threads get unequal shares.
  const Tensor x = random_images_i8(7, rng);
  const int saved = num_threads();
  set_num_threads(1);
  const Tensor one = model.forward(x);
  set_num_threads(2);
  const Tensor two = model.forward(x);
  // One image at a time, with 2 threads for 1 image (a thread without work).
  for (int64_t i = 0; i < 7; ++i) {
    INFO("image " << i);
    const Tensor alone = model.forward(x.narrow(i, 1));
    CHECK(alone.equal(one.narrow(i, 1)));
  }
  set_num_threads(saved);
  CHECK(one.equal(two));
  // The logits are not all alike, so the comparison can fail (measured: 25 distinct values of 70).
  std::set<int> values;
  for (int64_t i = 0; i < one.numel(); ++i) values.insert(one.data_i8()[i]);
  CHECK(values.size() > 5);
}

TEST_CASE("QuantizedVgg::forward: a wrong input throws naming its shape or dtype",
          "[quantized]") {
  Rng rng(9);
  const QuantizedVgg model = random_model({2}, rng);
  check_error_names([&] { model.forward(Tensor({2, 1, 28, 28})); }, "float32");
  check_error_names([&] { model.forward(Tensor({2, 1, 28, 27}, DType::Int8)); },
                    "(2, 1, 28, 27)");
  check_error_names([&] { model.forward(Tensor({2, 3, 28, 28}, DType::Int8)); },
                    "(2, 3, 28, 28)");
  check_error_names([&] { model.forward(Tensor({784}, DType::Int8)); }, "(784,)");
  // No images: no logits.
  CHECK(model.forward(Tensor({0, 1, 28, 28}, DType::Int8)).shape() == Shape{0, 10});
}

TEST_CASE("QuantizedVgg::parameter_bytes counts int8 weights and int32 per-output values",
          "[quantized]") {
  Rng rng(3);
  const QuantizedVgg model = random_model({3, 0, 5}, rng);
  // conv 3x1x3x3, conv 5x3x3x3, classifier 10x(5*14*14): each weight 1 byte, bias, multiplier
  // and shift 4 bytes per output, the two zero points 4 bytes each.
  const int64_t want = (27 + 12 * 3 + 8) + (135 + 12 * 5 + 8) + (10 * 980 + 12 * 10 + 8);
  CHECK(model.parameter_bytes() == want);
}

// ---- validate -----------------------------------------------------------------------------------

TEST_CASE("QuantizedVgg::validate names each wrong thing", "[quantized]") {
  Rng rng(11);
  // cfg {4, 4, 0, 6, 0}: convs features.0, features.3, features.7; classifier (10, 6 * 7 * 7).
  QuantizedVgg m = random_model({4, 4, 0, 6, 0}, rng);
  REQUIRE(m.convs.size() == 3);
  REQUIRE(m.convs[2].name == "features.7");
  REQUIRE_NOTHROW(m.validate());
  // Checks that validate() throws an effml::Error whose message holds every needle.
  auto expect = [&](const std::vector<std::string>& needles) {
    const std::string msg = error_of([&] { m.validate(); });
    INFO("message: " << msg);
    CHECK(msg != "(no error)");
    for (const std::string& needle : needles)
      CHECK_THAT(msg, Catch::Matchers::Contains(needle, Catch::CaseSensitive::No));
  };

  SECTION("weight dtype") {
    m.convs[0].weight = Tensor({4, 1, 3, 3});
    expect({"features.0.weight", "int8", "float32", "(4, 1, 3, 3)"});
  }
  SECTION("weight shape") {
    m.convs[1].weight = Tensor({4, 3, 3, 3}, DType::Int8);
    expect({"features.3.weight", "(4, 4, 3, 3)", "(4, 3, 3, 3)"});
  }
  SECTION("classifier weight shape") {
    m.classifier.weight = Tensor({10, 293}, DType::Int8);
    expect({"classifier.weight", "(10, 294)", "(10, 293)"});
  }
  SECTION("bias dtype") {
    m.convs[2].bias = Tensor({6});
    expect({"features.7.bias", "int32", "float32"});
  }
  SECTION("multiplier shape") {
    m.convs[2].multiplier = Tensor({5}, DType::Int32);
    expect({"features.7.multiplier", "(6,)", "(5,)"});
  }
  SECTION("shift shape") {
    m.classifier.shift = Tensor({10, 1}, DType::Int32);
    expect({"classifier.shift", "(10,)", "(10, 1)"});
  }
  SECTION("weight_scale dtype") {
    m.convs[0].weight_scale = Tensor({4}, DType::Int32);
    expect({"features.0.weight_scale", "float32", "int32"});
  }
  SECTION("negative multiplier") {
    m.convs[2].multiplier.data_i32()[3] = -5;
    expect({"features.7.multiplier", "-5"});
  }
  SECTION("most negative multiplier") {
    m.classifier.multiplier.data_i32()[9] = std::numeric_limits<int32_t>::min();
    expect({"classifier.multiplier", "-2147483648"});
  }
  SECTION("shift 32") {
    m.convs[0].shift.data_i32()[2] = 32;
    expect({"features.0.shift", "32"});
  }
  SECTION("negative shift") {
    m.convs[1].shift.data_i32()[0] = -1;
    expect({"features.3.shift", "-1"});
  }
  SECTION("input zero point 200") {
    m.convs[1].input_zero_point = 200;
    expect({"features.3.input_zero_point", "200"});
  }
  SECTION("output zero point -129") {
    m.classifier.output_zero_point = -129;
    expect({"classifier.output_zero_point", "-129"});
  }
  SECTION("cfg with more convs than layers") {
    m.cfg.push_back(8);
    expect({"cfg", "conv", "3"});
  }
  SECTION("cfg with fewer convs than layers") {
    m.convs.push_back(m.convs[2]);
    expect({"cfg", "conv", "4"});
  }
  SECTION("empty cfg") {
    m.cfg.clear();
    expect({"cfg", "empty"});
  }
  SECTION("cfg of pools only") {
    m.cfg = {0};
    m.convs.clear();
    expect({"cfg", "conv"});
  }
  SECTION("negative cfg entry") {
    m.cfg[1] = -4;
    expect({"cfg[1]", "-4"});
  }
  SECTION("pool on a 1x1 map") {
    // 28 -> 14 -> 7 -> 3 -> 1, then one pool too many.
    m.cfg = {4, 0, 0, 0, 0, 0};
    m.convs.resize(1);
    m.classifier = random_layer("classifier", {10, 4}, rng);
    expect({"cfg[5]", "1x1"});
  }
}

TEST_CASE("QuantizedVgg::validate accepts the extremes of every range", "[quantized]") {
  Rng rng(12);
  // Four pools down to a 1x1 map (28 -> 14 -> 7 -> 3 -> 1).
  QuantizedVgg m = random_model({4, 0, 0, 0, 0}, rng);
  REQUIRE(m.classifier.weight.shape() == Shape{10, 4});
  m.convs[0].multiplier.data_i32()[0] = 0;
  m.convs[0].multiplier.data_i32()[1] = std::numeric_limits<int32_t>::max();
  m.convs[0].shift.data_i32()[0] = 0;
  m.convs[0].shift.data_i32()[1] = 31;
  m.convs[0].input_zero_point = -128;
  m.convs[0].output_zero_point = 127;
  m.classifier.input_zero_point = 127;
  m.classifier.output_zero_point = -128;
  CHECK_NOTHROW(m.validate());
}

// ---- file format --------------------------------------------------------------------------------

TEST_CASE("save_quantized_vgg / load_quantized_vgg: round trip with the fp32 VGG's names",
          "[quantized]") {
  TempDir dir("quantized");
  Rng rng(21);
  // features: conv 0-2, pool 3, conv 4-6, pool 7, conv 8-10, conv 11-13, pool 14.
  const QuantizedVgg model = random_model({16, 0, 32, 0, 64, 64, 0}, rng);
  const std::string path = dir.file("q.safetensors");
  save_quantized_vgg(path, model, {{"note", "round trip"}});

  // The names in the file.
  const SafetensorsFile f = load_safetensors(path);
  std::set<std::string> names;
  for (const auto& [name, t] : f.tensors) names.insert(name);
  std::set<std::string> want = {"cfg"};
  for (const std::string layer :
       {"features.0", "features.4", "features.8", "features.11", "classifier"})
    for (const std::string what : {"weight", "bias", "multiplier", "shift", "input_zero_point",
                                   "output_zero_point", "weight_scale", "input_scale",
                                   "output_scale"})
      want.insert(layer + "." + what);
  CHECK(names == want);
  const Tensor& cfg = f.at("cfg");
  CHECK(cfg.equal(Tensor::from_i32({7}, {16, 0, 32, 0, 64, 64, 0})));
  CHECK(f.at("features.11.weight").shape() == Shape{64, 64, 3, 3});
  CHECK(f.at("classifier.weight").shape() == Shape{10, 64 * 3 * 3});
  CHECK(f.at("features.4.input_zero_point").shape() == Shape{});
  CHECK(f.at("features.4.input_zero_point").dtype() == DType::Int32);
  CHECK(f.at("classifier.output_scale").dtype() == DType::Float32);
  CHECK(f.metadata.at("note") == "round trip");

  // Everything comes back.
  const QuantizedVgg back = load_quantized_vgg(path);
  CHECK(back.cfg == model.cfg);
  REQUIRE(back.convs.size() == model.convs.size());
  for (std::size_t i = 0; i < model.convs.size(); ++i)
    check_layers_equal(back.convs[i], model.convs[i]);
  check_layers_equal(back.classifier, model.classifier);
  const Tensor x = random_images_i8(2, rng);
  CHECK(back.forward(x).equal(model.forward(x)));
}

TEST_CASE("load_quantized_vgg: a missing or mistyped tensor throws naming the file and tensor",
          "[quantized]") {
  TempDir dir("quantized");
  Rng rng(22);
  const QuantizedVgg model = random_model({3, 0, 4, 0}, rng);  // features.0, features.4
  const std::string good = dir.file("good.safetensors");
  const std::string bad = dir.file("bad.safetensors");
  save_quantized_vgg(good, model);
  REQUIRE_NOTHROW(load_quantized_vgg(good));
  auto expect = [&](const std::vector<std::string>& needles) {
    const std::string msg = error_of([&] { load_quantized_vgg(bad); });
    INFO("message: " << msg);
    CHECK(msg != "(no error)");
    for (const std::string& needle : needles)
      CHECK_THAT(msg, Catch::Matchers::Contains(needle, Catch::CaseSensitive::No));
  };

  SECTION("missing classifier.shift") {
    rewrite(good, bad, "classifier.shift");
    expect({bad, "classifier.shift"});
  }
  SECTION("missing features.4.weight") {
    rewrite(good, bad, "features.4.weight");
    expect({bad, "features.4.weight"});
  }
  SECTION("missing cfg") {
    rewrite(good, bad, "cfg");
    expect({bad, "cfg"});
  }
  SECTION("missing features.0.output_scale") {
    rewrite(good, bad, "features.0.output_scale");
    expect({bad, "features.0.output_scale"});
  }
  SECTION("float32 bias") {
    rewrite(good, bad, "", {{"features.4.bias", Tensor({4})}});
    expect({bad, "features.4.bias"});
  }
  SECTION("int32 weight") {
    rewrite(good, bad, "", {{"features.0.weight", Tensor({3, 1, 3, 3}, DType::Int32)}});
    expect({bad, "features.0.weight"});
  }
  SECTION("float32 zero point") {
    rewrite(good, bad, "", {{"classifier.input_zero_point", Tensor({}, std::vector<float>{3})}});
    expect({bad, "classifier.input_zero_point"});
  }
  SECTION("int32 scale") {
    rewrite(good, bad, "", {{"features.0.input_scale", Tensor::from_i32({}, {1})}});
    expect({bad, "features.0.input_scale"});
  }
  SECTION("float32 cfg") {
    rewrite(good, bad, "", {{"cfg", Tensor({4}, std::vector<float>{3, 0, 4, 0})}});
    expect({bad, "cfg"});
  }
  SECTION("a shift out of range in the file") {
    Tensor shift = model.classifier.shift;
    shift.data_i32()[4] = 40;
    rewrite(good, bad, "", {{"classifier.shift", shift}});
    expect({bad, "classifier.shift", "40"});
  }
  SECTION("no such file") {
    expect({bad});
  }
}

TEST_CASE("save_quantized_vgg validates the model first", "[quantized]") {
  TempDir dir("quantized");
  Rng rng(23);
  QuantizedVgg model = random_model({2}, rng);
  model.convs[0].shift.data_i32()[1] = 32;
  const std::string path = dir.file("q.safetensors");
  check_error_names([&] { save_quantized_vgg(path, model); }, "features.0.shift");
  CHECK_FALSE(fs::exists(path));
}

// ---- quantized_accuracy -------------------------------------------------------------------------

namespace {

// cfg {1} with a zero conv and a zero classifier: every logit is
// clamp(round(bias[c] * 2^30 / 2^31) + 0, -128, 127) = clamp(bias[c] / 2) whatever the image.
QuantizedVgg constant_model(const std::vector<int32_t>& classifier_bias) {
  auto layer = [](const std::string& name, const Shape& wshape, std::vector<int32_t> bias,
                  int32_t m0, int32_t zy) {
    const int64_t out = wshape[0];
    QuantizedLayer l;
    l.name = name;
    l.weight = Tensor(wshape, DType::Int8);
    l.bias = Tensor::from_i32({out}, bias);
    l.multiplier = Tensor::from_i32({out}, std::vector<int32_t>(static_cast<std::size_t>(out), m0));
    l.shift = Tensor({out}, DType::Int32);
    l.weight_scale = Tensor::full({out}, 0.01f);
    l.output_zero_point = zy;
    return l;
  };
  QuantizedVgg m;
  m.cfg = {1};
  m.convs.push_back(layer("features.0", {1, 1, 3, 3}, {0}, 0, -128));
  m.classifier = layer("classifier", {10, 784}, classifier_bias, 1 << 30, 0);
  return m;
}

// n images with random pixels p / 255.
Tensor random_images01(int64_t n, Rng& rng) {
  Tensor x({n, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] = static_cast<float>(rng.randint(256)) / 255.0f;
  return x;
}

}  // namespace

TEST_CASE("quantized_accuracy on a model whose logits are known", "[quantized]") {
  Rng rng(31);
  const Tensor images = random_images01(6, rng);
  // Class 3 has logit 100 / 2 = 50, every other -50.
  std::vector<int32_t> bias(10, -100);
  bias[3] = 100;
  const QuantizedVgg model = constant_model(bias);
  REQUIRE_NOTHROW(model.validate());
  const Tensor logits = model.forward(pixels_to_int8(images));
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t c = 0; c < 10; ++c)
      CHECK(int{logits.data_i8()[i * 10 + c]} == (c == 3 ? 50 : -50));

  CHECK(quantized_accuracy(model, images, std::vector<int32_t>(6, 3)) == 1.0);
  CHECK(quantized_accuracy(model, images, std::vector<int32_t>(6, 5)) == 0.0);
  CHECK(quantized_accuracy(model, images, {3, 0, 3, 9, 3, 1}) == Approx(0.5).margin(1e-12));

  // A tie goes to the lowest class: 1000 / 2 clamps to 127 for classes 6 and 4 alike.
  std::vector<int32_t> tie(10, -100);
  tie[6] = 1000;
  tie[4] = 1000;
  const QuantizedVgg tied = constant_model(tie);
  CHECK(quantized_accuracy(tied, images, std::vector<int32_t>(6, 4)) == 1.0);
  CHECK(quantized_accuracy(tied, images, std::vector<int32_t>(6, 6)) == 0.0);
}

TEST_CASE("quantized_accuracy: mismatched labels or bad pixels throw", "[quantized]") {
  Rng rng(32);
  const Tensor images = random_images01(6, rng);
  const QuantizedVgg model = constant_model(std::vector<int32_t>(10, 0));
  check_error_names([&] { quantized_accuracy(model, images, std::vector<int32_t>(5, 0)); },
                    "(6, 1, 28, 28)");
  check_error_names([&] { quantized_accuracy(model, images, std::vector<int32_t>(7, 0)); },
                    "7 labels");
  Tensor bad = images;
  bad.data()[100] = 2.0f;
  check_error_names([&] { quantized_accuracy(model, bad, std::vector<int32_t>(6, 0)); }, "2");
}
