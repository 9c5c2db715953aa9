/// \file multi_index.h
/// \brief The multi-index of a flat (row-major) element index, written for a test's message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "effml/tensor.h"

namespace effml::testing {

/// "[1, 4]": the multi-index of flat index `flat` in a contiguous row-major tensor of `shape`
/// (the last dimension varies fastest); "[]" for a 0-d shape. `flat` must lie in
/// [0, numel(shape)) and every size must be positive; nothing is checked, as this only names an
/// element that a test already found.
inline std::string multi_index(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream os;
  os << "[";
  for (std::size_t d = 0; d < index.size(); ++d) os << (d ? ", " : "") << index[d];
  os << "]";
  return os.str();
}

}  // namespace effml::testing
