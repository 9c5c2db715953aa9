// Helpers of Lab 2's part-3 and part-4 tests (public and hidden): the contracts of Task 13
// written out independently of your code, label maps as dense weights, and the cost of an
// optimal prefix code.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "effml/tensor.h"

namespace lab2_tests {

inline int64_t qmin_bits(int bits) { return -(int64_t{1} << (bits - 1)); }
inline int64_t qmax_bits(int bits) { return (int64_t{1} << (bits - 1)) - 1; }

// Task 13 (a) by its contract: r / S in float32, rounded with std::nearbyint, plus Z, then
// clamped to [qmin, qmax]; the fake value S (q - Z) in float32.
inline effml::Tensor contract_fake(const effml::Tensor& r, int bits, float scale,
                                   int32_t zero_point) {
  effml::Tensor out(r.shape());
  for (int64_t i = 0; i < r.numel(); ++i) {
    const double level = static_cast<double>(std::nearbyint(r[i] / scale)) + zero_point;
    const double q = std::clamp(level, static_cast<double>(qmin_bits(bits)),
                                static_cast<double>(qmax_bits(bits)));
    out[i] = static_cast<float>(static_cast<int64_t>(q) - zero_point) * scale;
  }
  return out;
}

// Task 13 (b), the straight-through gradient, by its contract: grad where round(r / S) + Z lies
// in [qmin, qmax], else 0.
inline effml::Tensor contract_grad(const effml::Tensor& grad, const effml::Tensor& r, int bits,
                                   float scale, int32_t zero_point) {
  effml::Tensor out(r.shape());
  for (int64_t i = 0; i < r.numel(); ++i) {
    const double level = static_cast<double>(std::nearbyint(r[i] / scale)) + zero_point;
    const bool inside = level >= static_cast<double>(qmin_bits(bits)) &&
                        level <= static_cast<double>(qmax_bits(bits));
    out[i] = inside ? grad[i] : 0.0f;
  }
  return out;
}

// Code lengths as ints, so that Catch prints them as numbers rather than characters.
inline std::vector<int> as_ints(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

inline effml::Tensor i32(const effml::Shape& shape, const std::vector<int32_t>& v) {
  return effml::Tensor::from_i32(shape, v);
}

// The dense weight that `labels` stand for when centroid j is j + 1 (non-zero and distinct, so a
// misplaced entry shows): labels[p] + 1 at a kept position, 0 at a pruned one (label -1).
inline effml::Tensor dense_of_labels(const effml::Tensor& labels) {
  effml::Tensor w(labels.shape());
  for (int64_t p = 0; p < labels.numel(); ++p) {
    const int32_t l = labels.data_i32()[p];
    w[p] = l >= 0 ? static_cast<float>(l + 1) : 0.0f;
  }
  return w;
}

// The cost sum_s counts[s] * length[s] of an optimal prefix code, by the textbook construction
// with a min-priority queue: the cost is the sum of the weights of the merged nodes. One used
// symbol costs its count (a 1-bit code); none costs 0.
inline int64_t optimal_cost(const std::vector<int64_t>& counts) {
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> heap;
  for (int64_t c : counts) {
    if (c > 0) heap.push(c);
  }
  if (heap.size() == 1) return heap.top();
  int64_t cost = 0;
  while (heap.size() > 1) {
    const int64_t a = heap.top();
    heap.pop();
    const int64_t b = heap.top();
    heap.pop();
    cost += a + b;
    heap.push(a + b);
  }
  return cost;
}

}  // namespace lab2_tests
