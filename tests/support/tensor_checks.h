/// \file tensor_checks.h
/// \brief Exact comparison of tensors in tests, with a message naming the first difference.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "effml/tensor.h"
#include "multi_index.h"

namespace effml::testing {

/// Checks that `got` has `expected`'s shape and dtype and exactly its values; the message names
/// `what` and the first differing element (its multi-index, both values).
inline void check_exact(const std::string& what, const Tensor& expected, const Tensor& got) {
  INFO(what << ": expected " << dtype_name(expected.dtype()) << " " << expected.shape_str()
            << ", got " << dtype_name(got.dtype()) << " " << got.shape_str());
  REQUIRE(got.dtype() == expected.dtype());
  REQUIRE(got.shape() == expected.shape());
  for (int64_t k = 0; k < expected.numel(); ++k) {
    if (got.item_at(k) != expected.item_at(k)) {
      FAIL_CHECK(what << " differs at " << multi_index(expected.shape(), k) << ": expected "
                      << expected.item_at(k) << ", got " << got.item_at(k));
      return;
    }
  }
  SUCCEED(what);
}

}  // namespace effml::testing
