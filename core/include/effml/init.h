/// \file init.h
/// \brief Kaiming (He) initialisation of a model's weights.
#pragma once

#include <cstdint>

#include "effml/module.h"

namespace effml {

class Rng;

/// Fills `w` with \f$ \mathcal{N}(0, \sigma^2) \f$, \f$ \sigma = \sqrt{2 / \text{fan\_in}} \f$
/// (He et al. 2015, torch.nn.init.kaiming_normal_ with mode='fan_in', nonlinearity='relu').
/// fan_in is numel / shape[0]: in_features for Linear, Cin/groups * K * K for Conv2d.
void kaiming_normal_(Tensor& w, Rng& rng);

/// Re-initialises a model, deterministically for `seed`: every weight with two or more dimensions
/// gets kaiming_normal_, every bias zero; batch-norm scales 1 and shifts 0, running statistics
/// reset (mean 0, variance 1).
void init_kaiming(Module& model, uint64_t seed);

}  // namespace effml
