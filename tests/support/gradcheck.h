/// \file gradcheck.h
/// \brief Central-difference gradient check of any Module, reported through Catch2.
///
/// For a random upstream gradient g (seeded), the scalar loss is \f$ L = \sum_i y_i g_i \f$ with
/// y = forward(x), so backward(g) must return \f$ \partial L / \partial x \f$ and accumulate
/// \f$ \partial L / \partial \theta \f$ into every parameter's grad. Each checked element is
/// compared with \f$ (L(v + h) - L(v - h)) / (2h) \f$, the loss summed in double. A mismatch is a
/// failed Catch2 check whose message names the layer, the argument, the flat index, the expected
/// (finite-difference) and the obtained (backward) value.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "effml/module.h"
#include "effml/rng.h"
#include "effml/tensor.h"

namespace effml::testing {

/// Settings of gradcheck. The defaults suit float32 layers that are linear or piecewise linear
/// in the checked value; smooth non-linear layers (batch norm) still pass with h = 1e-2, whose
/// truncation error is of order h^2.
struct GradCheckOptions {
  double h = 1e-2;     ///< finite-difference step
  double rtol = 1e-2;  ///< relative tolerance, on |expected|
  double atol = 1e-3;  ///< absolute tolerance
  /// Tensors with more elements are checked at this many distinct random indices.
  int64_t max_indices = 200;
  /// Called before every forward (e.g. to reseed a Dropout so each forward draws the same mask).
  std::function<void(Module&)> before_forward;
  /// Also check that a second backward adds the same parameter gradients again (+=).
  bool check_accumulation = true;
};

/// Largest |expected - got| / (atol + rtol * |expected|) seen by the last gradcheck call, for
/// tests that record their measured margin.
inline double& gradcheck_worst_ratio() {
  static double worst = 0.0;
  return worst;
}

namespace detail {

inline double loss_of(Module& m, const Tensor& x, const Tensor& g, const GradCheckOptions& opt) {
  if (opt.before_forward) opt.before_forward(m);
  const Tensor y = m.forward(x);
  double loss = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) loss += static_cast<double>(y[i]) * g[i];
  return loss;
}

// All indices of a small tensor, or `cap` distinct random ones (sorted) of a large one.
inline std::vector<int64_t> pick_indices(int64_t numel, int64_t cap, Rng& rng) {
  std::vector<int64_t> idx(static_cast<std::size_t>(numel));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  if (numel <= cap) return idx;
  for (int64_t i = 0; i < cap; ++i) {  // partial Fisher-Yates
    const int64_t j = i + static_cast<int64_t>(rng.randint(static_cast<uint64_t>(numel - i)));
    std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  idx.resize(static_cast<std::size_t>(cap));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Compares `analytic` with central differences of the loss in the values of `target`, which is
// either the input itself (then `x` and `target` are the same tensor) or a parameter's value.
inline void check_argument(Module& m, const Tensor& x, Tensor& target, const Tensor& analytic,
                           const std::string& arg, const Tensor& g, const GradCheckOptions& opt,
                           Rng& rng) {
  const std::vector<int64_t> idx = pick_indices(target.numel(), opt.max_indices, rng);
  int failures = 0;
  for (int64_t i : idx) {
    const float v = target[i];
    const float vp = static_cast<float>(v + opt.h), vm = static_cast<float>(v - opt.h);
    target[i] = vp;
    const double lp = loss_of(m, x, g, opt);
    target[i] = vm;
    const double lm = loss_of(m, x, g, opt);
    target[i] = v;
    // Divide by the step actually taken in float32, not by the nominal 2h.
    const double expected = (lp - lm) / (static_cast<double>(vp) - static_cast<double>(vm));
    const double got = analytic[i];
    const double bound = opt.atol + opt.rtol * std::fabs(expected);
    const double err = std::fabs(expected - got);
    gradcheck_worst_ratio() = std::max(gradcheck_worst_ratio(), err / bound);
    if (!(err <= bound)) {  // also catches NaN
      ++failures;
      if (failures <= 5) {
        std::ostringstream os;
        os << m.describe() << ": gradient of " << arg << " " << target.shape_str()
           << " at flat index " << i << ": expected (central difference) " << expected
           << ", got (backward) " << got << ", |diff| " << err << " > tolerance " << bound;
        FAIL_CHECK(os.str());
      }
    }
  }
  INFO(m.describe() << ": " << arg << ": " << failures << " of " << idx.size()
                    << " checked elements differ");
  CHECK(failures == 0);
}

}  // namespace detail

/// Checks dx and every parameter gradient of `m` at input `x` against central differences.
///
/// Runs in the module's current mode (train or eval); the forward must be deterministic given
/// `opt.before_forward`. Parameter gradients are zeroed first. `seed` picks the upstream gradient
/// and the sampled indices.
inline void gradcheck(Module& m, const Tensor& x, uint64_t seed, GradCheckOptions opt = {}) {
  gradcheck_worst_ratio() = 0.0;
  Rng rng(seed);
  m.needs_input_grad = true;
  const Shape out_shape = m.output_shape(x.shape());
  const Tensor g = Tensor::randn(out_shape, rng);

  // Analytic gradients.
  m.zero_grad();
  if (opt.before_forward) opt.before_forward(m);
  const Tensor y = m.forward(x);
  REQUIRE(y.shape() == out_shape);
  const Tensor dx = m.backward(g);
  {
    INFO(m.describe() << ": backward returned dx " << dx.shape_str() << " for input "
                      << x.shape_str());
    REQUIRE(dx.shape() == x.shape());
  }
  std::vector<NamedParameter> params = m.named_parameters();
  std::vector<Tensor> grads;
  for (auto& p : params) grads.push_back(p.param->grad);

  if (opt.check_accumulation && !params.empty()) {
    // A second forward and backward must add the same gradients again.
    if (opt.before_forward) opt.before_forward(m);
    m.forward(x);
    m.backward(g);
    for (std::size_t k = 0; k < params.size(); ++k) {
      const Tensor twice = grads[k] * 2.0f;
      INFO(m.describe() << ": a second backward must accumulate (+=) the gradient of "
                        << params[k].name);
      CHECK(params[k].param->grad.allclose(twice, 1e-4f, 1e-5f));
    }
  }

  Tensor xc = x;
  detail::check_argument(m, xc, xc, dx, "input", g, opt, rng);
  for (std::size_t k = 0; k < params.size(); ++k)
    detail::check_argument(m, x, params[k].param->value, grads[k], params[k].name, g, opt, rng);
}

/// A tensor of the given shape whose values are a random permutation of
/// {0, spacing, 2 spacing, ...} shifted to be centred on zero: no two values tie, so max pooling
/// has a unique maximum in every window and finite differences with h < spacing/2 stay valid.
inline Tensor distinct_values(const Shape& shape, Rng& rng, float spacing = 0.1f) {
  Tensor t(shape);
  const int64_t n = t.numel();
  std::vector<int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(rng.randint(static_cast<uint64_t>(i + 1)))]);
  for (int64_t i = 0; i < n; ++i)
    t[i] = spacing * (static_cast<float>(perm[static_cast<std::size_t>(i)]) - 0.5f * (n - 1));
  return t;
}

/// Fills every parameter of `m` with normal samples times `scale`.
inline void randomize_parameters(Module& m, Rng& rng, float scale = 0.5f) {
  for (auto& p : m.named_parameters())
    p.param->value = Tensor::randn(p.param->value.shape(), rng) * scale;
}

}  // namespace effml::testing
