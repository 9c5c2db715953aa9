// Output comparison with per-dtype tolerances and precise messages (see compare.h).
#include "effml/grader/compare.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace effml::grader {

namespace {

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

std::string short_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// True when `got` is acceptable for `expected` under `tol` (float semantics, see compare.h).
bool float_close(double expected, double got, const Tolerance& tol) {
  if (std::isnan(expected)) return std::isnan(got);
  if (std::isnan(got)) return false;
  if (std::isinf(expected) || std::isinf(got)) return expected == got;
  return std::fabs(got - expected) <= tol.atol + tol.rtol * std::fabs(expected);
}

void add_line(Comparison& c, const std::string& line) {
  c.ok = false;
  if (!c.message.empty()) c.message += "\n";
  c.message += line;
}

}  // namespace

const Tolerance& Tolerances::for_dtype(DType dtype) const {
  switch (dtype) {
    case DType::Int8:
      return int8;
    case DType::Int32:
      return int32;
    case DType::Float32:
      break;
  }
  return float32;
}

std::string multi_index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size(), 0);
  for (std::size_t d = shape.size(); d-- > 0;) {
    const int64_t size = shape[d] > 0 ? shape[d] : 1;
    index[d] = flat % size;
    flat /= size;
  }
  std::string out = "[";
  for (std::size_t d = 0; d < index.size(); ++d) {
    if (d > 0) out += ", ";
    out += std::to_string(index[d]);
  }
  return out + "]";
}

Comparison compare_tensor(const std::string& name, const Tensor& expected, const Tensor& got,
                          const Tolerances& tolerances) {
  Comparison c;
  const std::string what = "output '" + name + "'";
  if (got.dtype() != expected.dtype()) {
    add_line(c, what + ": expected dtype " + dtype_name(expected.dtype()) + ", got " +
                    dtype_name(got.dtype()));
    c.mismatches = expected.numel();
    return c;
  }
  if (got.shape() != expected.shape()) {
    add_line(c, what + ": expected shape " + expected.shape_str() + ", got " + got.shape_str());
    c.mismatches = expected.numel();
    return c;
  }
  const bool is_float = expected.dtype() == DType::Float32;
  const Tolerance& tol = tolerances.for_dtype(expected.dtype());
  int64_t first = -1;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double e = expected.item_at(i);
    const double g = got.item_at(i);
    bool close;
    if (is_float) {
      close = float_close(e, g, tol);
    } else {
      close = std::fabs(g - e) <= tol.atol;
    }
    if (std::isfinite(e) && std::isfinite(g)) {
      c.max_abs_diff = std::max(c.max_abs_diff, std::fabs(g - e));
    }
    if (!close) {
      if (first < 0) first = i;
      ++c.mismatches;
    }
  }
  if (first < 0) return c;

  const double e = expected.item_at(first);
  const double g = got.item_at(first);
  std::string line = what + " (shape " + expected.shape_str() + ", " +
                     dtype_name(expected.dtype()) + "): " + std::to_string(c.mismatches) + " of " +
                     std::to_string(expected.numel()) +
                     (c.mismatches == 1 ? " elements differs" : " elements differ") +
                     "; first at " + multi_index_str(expected.shape(), first) + " (flat index " +
                     std::to_string(first) + "): expected " + number(e) + ", got " + number(g);
  if (is_float && std::isfinite(e) && std::isfinite(g)) {
    line += " (difference " + short_number(std::fabs(g - e)) + ", allowed " +
            short_number(tol.atol + tol.rtol * std::fabs(e)) + " = atol " + short_number(tol.atol) +
            " + rtol " + short_number(tol.rtol) + " * |expected|)";
  } else if (!is_float) {
    line += tol.atol == 0
                ? std::string(" (") + dtype_name(expected.dtype()) + " values must match exactly)"
                : " (allowed difference " + short_number(tol.atol) + ")";
  }
  add_line(c, line);
  return c;
}

Comparison compare_outputs(const NamedTensors& expected, const NamedTensors& got,
                           const Tolerances& tolerances) {
  Comparison total;
  std::map<std::string, const Tensor*> got_by_name;
  for (const auto& [name, t] : got) got_by_name[name] = &t;
  std::set<std::string> wanted;
  for (const auto& [name, e] : expected) {
    wanted.insert(name);
    auto it = got_by_name.find(name);
    if (it == got_by_name.end()) {
      std::string have;
      for (const auto& [n, t] : got) have += (have.empty() ? "" : ", ") + n;
      add_line(total, "missing output '" + name + "' (expected shape " + e.shape_str() + ", " +
                          dtype_name(e.dtype()) + "); the runner wrote " +
                          (have.empty() ? std::string("no tensors") : have));
      total.mismatches += e.numel();
      continue;
    }
    Comparison c = compare_tensor(name, e, *it->second, tolerances);
    total.mismatches += c.mismatches;
    total.max_abs_diff = std::max(total.max_abs_diff, c.max_abs_diff);
    if (!c.ok) add_line(total, c.message);
  }
  for (const auto& [name, t] : got) {
    if (wanted.count(name) == 0) {
      add_line(total, "unexpected output '" + name + "' (shape " + t.shape_str() +
                          "): the task does not produce a tensor of that name");
    }
  }
  return total;
}

}  // namespace effml::grader
