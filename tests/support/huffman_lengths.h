/// \file huffman_lengths.h
/// \brief A plain Huffman construction for tests of the core's Huffman coder and file format
/// (the core has none: students write Lab 2's huffman_code_lengths).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "effml/huffman.h"

namespace effml::testing {

// Huffman code lengths for symbol counts (plain merge of the two lightest trees), for the tests
// only. When the longest code exceeds `limit`, the counts are flattened (c -> c / 2 + 1) and the
// code rebuilt, which keeps every used symbol used. Unused symbols (count 0) get length 0; a lone
// used symbol gets length 1.
inline std::vector<uint8_t> huffman_lengths(std::vector<int64_t> counts, int limit = kMaxCodeLength) {
  const std::size_t m = counts.size();
  for (;;) {
    std::vector<int64_t> parent;  // parent of each node; leaves first (one per used symbol)
    std::vector<std::size_t> leaf_of(m, SIZE_MAX);
    using Item = std::pair<int64_t, std::size_t>;  // (weight, node)
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    for (std::size_t s = 0; s < m; ++s) {
      if (counts[s] <= 0) continue;
      leaf_of[s] = parent.size();
      heap.push({counts[s], parent.size()});
      parent.push_back(-1);
    }
    std::vector<uint8_t> lengths(m, 0);
    if (heap.empty()) return lengths;
    if (heap.size() == 1) {
      lengths[static_cast<std::size_t>(std::find_if(counts.begin(), counts.end(),
                                                    [](int64_t c) { return c > 0; }) -
                                       counts.begin())] = 1;
      return lengths;
    }
    while (heap.size() > 1) {
      const Item a = heap.top();
      heap.pop();
      const Item b = heap.top();
      heap.pop();
      const std::size_t node = parent.size();
      parent.push_back(-1);
      parent[a.second] = static_cast<int64_t>(node);
      parent[b.second] = static_cast<int64_t>(node);
      heap.push({a.first + b.first, node});
    }
    int longest = 0;
    for (std::size_t s = 0; s < m; ++s) {
      if (leaf_of[s] == SIZE_MAX) continue;
      int depth = 0;
      for (int64_t n = static_cast<int64_t>(leaf_of[s]); parent[static_cast<std::size_t>(n)] >= 0;
           n = parent[static_cast<std::size_t>(n)])
        ++depth;
      longest = std::max(longest, depth);
      lengths[s] = static_cast<uint8_t>(std::min(depth, 255));
    }
    if (longest <= limit) return lengths;
    for (int64_t& c : counts)
      if (c > 0) c = c / 2 + 1;
  }
}

}  // namespace effml::testing
