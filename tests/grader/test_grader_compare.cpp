// Tests of the output comparison: tolerances per dtype, NaN and infinities, missing, extra and
// wrongly shaped outputs, and the exact wording of the messages students read.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "effml/grader/compare.h"

namespace {

using Catch::Matchers::Contains;
using effml::DType;
using effml::Tensor;
using effml::grader::compare_outputs;
using effml::grader::compare_tensor;
using effml::grader::multi_index_str;
using effml::grader::NamedTensors;
using effml::grader::Tolerances;

Tensor iota(const effml::Shape& shape) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = 0.5f * static_cast<float>(i);
  return t;
}

}  // namespace

TEST_CASE("multi_index_str converts a flat index to a row-major multi-index", "[grader][compare]") {
  CHECK(multi_index_str({17, 23}, 40) == "[1, 17]");
  CHECK(multi_index_str({2, 3, 4}, 23) == "[1, 2, 3]");
  CHECK(multi_index_str({5}, 4) == "[4]");
  CHECK(multi_index_str({}, 0) == "[]");
}

TEST_CASE("equal tensors and differences within tolerance pass", "[grader][compare]") {
  const Tensor e = iota({3, 7});
  Tensor g = e;
  // atol 1e-5 + rtol 1e-4 * 10 = 1.01e-3 allowed at value 10; 1e-3 is inside.
  g.at({2, 6}) += 1e-3f;
  const auto c = compare_tensor("y", e, g, Tolerances{});
  CHECK(c.ok);
  CHECK(c.message.empty());
  CHECK(c.mismatches == 0);
  CHECK(c.max_abs_diff == Approx(1e-3).epsilon(1e-2));
}

TEST_CASE("a float difference names the output, shapes, indices, values and count",
          "[grader][compare]") {
  const Tensor e = iota({17, 23});
  Tensor g = e;
  g[40] = 99.0f;  // [1, 17], expected 20
  g[41] = -1.0f;
  const auto c = compare_tensor("y", e, g, Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK(c.mismatches == 2);
  CHECK(c.message ==
        "output 'y' (shape (17, 23), float32): 2 of 391 elements differ; first at [1, 17] (flat "
        "index 40): expected 20, got 99 (difference 79, allowed 0.00201 = atol 1e-05 + rtol "
        "0.0001 * |expected|)");
}

TEST_CASE("NaN in got fails, NaN expected matches NaN, infinities must match",
          "[grader][compare]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Tensor e({4}, std::vector<float>{1, nan, inf, 2});
  Tensor g({4}, std::vector<float>{1, nan, inf, 2});
  CHECK(compare_tensor("x", e, g, Tolerances{}).ok);

  g[0] = nan;
  auto c = compare_tensor("x", e, g, Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK_THAT(c.message, Contains("first at [0] (flat index 0): expected 1, got NaN"));

  g[0] = 1;
  g[2] = -inf;
  c = compare_tensor("x", e, g, Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK_THAT(c.message, Contains("expected inf, got -inf"));

  // A huge tolerance does not make NaN acceptable.
  Tolerances loose;
  loose.float32 = {1e6, 1e6};
  g[2] = inf;
  g[3] = nan;
  CHECK_FALSE(compare_tensor("x", e, g, loose).ok);
}

TEST_CASE("integer outputs must match exactly unless an atol is given", "[grader][compare]") {
  const Tensor e = Tensor::from_i32({2, 2}, {1, 2, 3, 4});
  const Tensor g = Tensor::from_i32({2, 2}, {1, 2, 3, 5});
  auto c = compare_tensor("q", e, g, Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK(c.message ==
        "output 'q' (shape (2, 2), int32): 1 of 4 elements differs; first at [1, 1] (flat index "
        "3): expected 4, got 5 (int32 values must match exactly)");
  Tolerances off_by_one;
  off_by_one.int32.atol = 1;
  CHECK(compare_tensor("q", e, g, off_by_one).ok);
}

TEST_CASE("dtype and shape mismatches are reported before values", "[grader][compare]") {
  const Tensor e = iota({3, 4});
  auto c = compare_tensor("y", e, iota({4, 3}), Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK(c.message == "output 'y': expected shape (3, 4), got (4, 3)");
  c = compare_tensor("y", e, Tensor({3, 4}, DType::Int32), Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK(c.message == "output 'y': expected dtype float32, got int32");
}

TEST_CASE("compare_outputs reports missing and unexpected outputs by name", "[grader][compare]") {
  NamedTensors expected = {{"dx", iota({2, 3})}, {"dweight", iota({4, 3})}};
  NamedTensors got = {{"dx", iota({2, 3})}, {"extra", iota({1})}};
  const auto c = compare_outputs(expected, got, Tolerances{});
  REQUIRE_FALSE(c.ok);
  CHECK_THAT(c.message, Contains("missing output 'dweight' (expected shape (4, 3), float32); the "
                                 "runner wrote dx, extra"));
  CHECK_THAT(c.message, Contains("unexpected output 'extra' (shape (1,))"));
  CHECK(c.mismatches == 12);

  NamedTensors none;
  const auto d = compare_outputs(expected, none, Tolerances{});
  CHECK_THAT(d.message, Contains("the runner wrote no tensors"));

  CHECK(compare_outputs(expected, expected, Tolerances{}).ok);
}
