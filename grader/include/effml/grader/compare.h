/// \file compare.h
/// \brief Compares the tensors a runner returned with the expected ones, per-dtype tolerances.
///
/// A float32 element passes when
/// \f$ |g - e| \le \mathrm{atol} + \mathrm{rtol} \cdot |e| \f$ (as `torch.allclose`); a NaN in
/// `got` always fails unless the expected value is NaN too, and infinities must match exactly.
/// Integer elements pass when \f$ |g - e| \le \mathrm{atol} \f$ (exact by default).
///
/// A failure message names the output, its shape and dtype, how many elements differ, and the
/// first one as a multi-index and a flat index with both values, e.g.
/// `output 'y' (shape (17, 23), float32): 5 of 391 elements differ; first at [1, 17] (flat index
/// 40): expected 0.52341, got 0.61234 (difference 0.08893, allowed 6.23e-05 = atol 1e-05 + rtol
/// 0.0001 * |expected|)`.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "effml/tensor.h"

namespace effml::grader {

/// Allowed difference: \f$ \mathrm{atol} + \mathrm{rtol} \cdot |e| \f$.
struct Tolerance {
  double rtol = 0;  ///< relative part (times |expected|)
  double atol = 0;  ///< absolute part
};

/// One tolerance per dtype. float32 defaults to rtol 1e-4, atol 1e-5 (a few ulps of float32 over
/// sums of a few hundred terms computed in another order); integers are exact.
struct Tolerances {
  Tolerance float32{1e-4, 1e-5};  ///< for float32 tensors
  Tolerance int8{0, 0};           ///< for int8 tensors
  Tolerance int32{0, 0};          ///< for int32 tensors
  /// The tolerance of `dtype`.
  const Tolerance& for_dtype(DType dtype) const;
};

/// What a comparison found.
struct Comparison {
  bool ok = true;           ///< every output present, of the right shape, within tolerance
  std::string message;      ///< empty when ok; otherwise one line per problem
  int64_t mismatches = 0;   ///< elements out of tolerance, over all outputs
  double max_abs_diff = 0;  ///< largest |got - expected| over finite elements of all outputs
};

/// A named list of tensors, in file order (as effml::SafetensorsFile::tensors).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// "[1, 17]": the row-major multi-index of flat index `flat` in `shape` ("[]" for a scalar).
std::string multi_index_str(const Shape& shape, int64_t flat);

/// Compares one output. `name` is how the message calls it (e.g. "y").
Comparison compare_tensor(const std::string& name, const Tensor& expected, const Tensor& got,
                          const Tolerances& tolerances);

/// Compares every expected output with the output of the same name in `got`. Missing outputs,
/// outputs that were not asked for, and wrong shapes or dtypes are failures with their own
/// message lines.
Comparison compare_outputs(const NamedTensors& expected, const NamedTensors& got,
                           const Tolerances& tolerances);

}  // namespace effml::grader
