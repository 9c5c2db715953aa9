/// \file dropout.h
/// \brief Inverted dropout, as torch.nn.Dropout, with its own seeded random source.
#pragma once

#include <cstdint>

#include "effml/module.h"
#include "effml/rng.h"

namespace effml {

/// Inverted dropout: in training mode each element is kept with probability \f$ 1 - p \f$ and
/// scaled by \f$ 1/(1 - p) \f$, so the expected output equals the input; in evaluation mode it
/// is the identity.
///
/// \f$ y = m \odot x \f$ with \f$ m_i = [u_i \ge p] / (1 - p) \f$, \f$ u_i \sim U[0, 1) \f$
/// (all zeros when p = 1); backward \f$ dx = m \odot dy \f$. Any shape. The mask comes from the
/// layer's own Rng, so a given seed gives the same masks on every platform; `reseed` restarts it.
class Dropout : public Module {
 public:
  /// Requires 0 <= p <= 1.
  explicit Dropout(float p = 0.5f, uint64_t seed = 0);

  Tensor forward(const Tensor& x) override;
  /// The same; the identity returns x itself, without a copy.
  Tensor forward_owned(Tensor&& x) override;
  Tensor backward(const Tensor& dy) override;
  /// The same, computed in dy's storage.
  Tensor backward_owned(Tensor&& dy) override;
  /// "Dropout(p=0.5)"
  std::string describe() const override;
  /// The input's shape (any shape).
  Shape output_shape(const Shape& in) const override { return in; }

  /// Restarts the mask sequence from `seed`.
  void reseed(uint64_t seed) { rng_ = Rng(seed); }
  /// The drop probability p.
  float p() const { return p_; }

 private:
  float p_;
  Rng rng_;
  // Cached by forward: the input's shape, whether the forward was the identity (evaluation mode
  // or p = 0; then so is backward), and otherwise the mask m with values 0 or 1/(1-p).
  Shape in_shape_;
  bool have_forward_ = false;
  bool identity_ = true;
  Tensor mask_;
};

}  // namespace effml
