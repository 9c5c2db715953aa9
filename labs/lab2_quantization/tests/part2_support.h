// Helpers of Lab 2's part-2 tests (public and hidden): random VGGs with batch norms far from the
// identity, and calibration ranges measured module by module, independently of Task 11.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "effml/init.h"
#include "effml/layers.h"
#include "effml/module.h"
#include "effml/rng.h"
#include "effml/tensor.h"
#include "lab2.h"

namespace lab2_tests {

// Gives a VGG of make_vgg Kaiming weights (from `seed`) and batch norms that are not the
// identity (from `seed + bn_salt`): gamma in [0.5, 1.5], beta and the running mean around 0,
// running variances in [0.3, 3], and a classifier bias. With running statistics this far from a batch's own, a forward pass in
// training mode gives clearly different activations from one in evaluation mode.
inline void randomize_vgg(effml::Sequential& vgg, uint64_t seed, uint64_t bn_salt) {
  effml::init_kaiming(vgg, seed);
  effml::Rng rng(seed + bn_salt);
  auto& features = dynamic_cast<effml::Sequential&>(vgg[0]);
  for (std::size_t i = 0; i < features.size(); ++i) {
    auto* bn = dynamic_cast<effml::BatchNorm2d*>(&features[i]);
    if (bn == nullptr) continue;
    for (int64_t c = 0; c < bn->num_features(); ++c) {
      bn->weight.value[c] = rng.uniform(0.5f, 1.5f);
      bn->bias.value[c] = 0.3f * rng.normal();
      bn->running_mean[c] = 0.5f * rng.normal();
      bn->running_var[c] = rng.uniform(0.3f, 3.0f);
    }
  }
  auto& classifier = dynamic_cast<effml::Linear&>(vgg[2]);
  for (int64_t o = 0; o < classifier.bias.value.numel(); ++o) {
    classifier.bias.value[o] = 0.1f * rng.normal();
  }
}

// Smallest and largest value of a float32 tensor, by a plain loop.
inline lab2::ActivationRange range_of(const effml::Tensor& t) {
  const float* v = t.data();
  lab2::ActivationRange r{v[0], v[0]};
  for (int64_t k = 1; k < t.numel(); ++k) {
    r.min = std::min(r.min, v[k]);
    r.max = std::max(r.max, v[k]);
  }
  return r;
}

// Task 11's ranges measured directly: all images in one pass, in evaluation mode, module by
// module through `features`, recording each ReLU's output, then flatten and classifier.
inline std::vector<lab2::ActivationRange> expected_ranges(effml::Sequential& vgg,
                                                          const effml::Tensor& images) {
  vgg.eval();
  auto& features = dynamic_cast<effml::Sequential&>(vgg[0]);
  std::vector<lab2::ActivationRange> ranges;
  effml::Tensor x = images;
  for (std::size_t i = 0; i < features.size(); ++i) {
    x = features[i].forward(x);
    if (dynamic_cast<effml::ReLU*>(&features[i]) != nullptr) ranges.push_back(range_of(x));
  }
  ranges.push_back(range_of(vgg[2].forward(vgg[1].forward(x))));
  return ranges;
}

}  // namespace lab2_tests
