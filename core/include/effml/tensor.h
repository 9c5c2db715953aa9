/// \file tensor.h
/// \brief effml::Tensor: a plain owning n-dimensional array (float32, int8 or int32).
///
/// The one type every lab works with. It owns contiguous row-major storage (64-byte aligned, so
/// SIMD loads are aligned), copies deeply on copy, and names its methods after PyTorch's
/// (`numel`, `shape`, `abs`, `kthvalue`, `matmul`). Errors name the shapes involved.
///
/// With glibc, the core fixes the process's malloc thresholds when the program starts
/// (`mallopt`: blocks up to 32 MB from the heap, trimmed only when 256 MB are free at its top,
/// no fast bins), so that a training loop that frees and allocates the same tensors every step
/// reuses memory instead of faulting in fresh pages each time. This applies to the whole program
/// that links the core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "effml/error.h"

namespace effml {

/// Element type of a tensor. float32 for training; int8 and int32 for the quantization labs.
enum class DType { Float32, Int8, Int32 };

/// "float32", "int8", "int32".
const char* dtype_name(DType dtype);
/// Bytes per element: 4, 1, 4.
std::size_t dtype_size(DType dtype);

/// A tensor shape: sizes of each dimension, outermost first, e.g. {N, C, H, W}.
using Shape = std::vector<int64_t>;

/// "(2, 3, 4)": used in every error message.
std::string shape_str(const Shape& shape);
/// Product of the sizes (1 for a scalar shape {}).
int64_t shape_numel(const Shape& shape);

class Rng;

namespace detail {
/// Deleter for 64-byte aligned storage.
struct AlignedFree {
  void operator()(std::byte* p) const noexcept;
};
}  // namespace detail

/// A dense, contiguous, row-major tensor that owns its data.
///
/// Copying a Tensor copies its data; moving is cheap. Float32 data is reached with `data()`,
/// int8 with `data_i8()`, int32 with `data_i32()`; each checks the dtype. Element access with
/// `at({i, j})` checks bounds; `operator[]` indexes the flat storage without checks.
class Tensor {
 public:
  /// An empty float32 tensor of shape (0).
  Tensor();
  /// A tensor of the given shape, filled with zeros.
  explicit Tensor(Shape shape, DType dtype = DType::Float32);
  /// A float32 tensor with the given shape and values (values.size() must equal the numel).
  Tensor(Shape shape, const std::vector<float>& values);

  /// Deep copy: new storage holding the same shape, dtype and bytes.
  Tensor(const Tensor& other);
  /// Deep copy; reuses this tensor's storage when the byte size is unchanged.
  Tensor& operator=(const Tensor& other);
  /// Takes `other`'s storage without copying; `other` may then only be assigned or destroyed.
  Tensor(Tensor&& other) noexcept = default;
  /// Takes `other`'s storage without copying; `other` may then only be assigned or destroyed.
  Tensor& operator=(Tensor&& other) noexcept = default;
  /// Frees the storage.
  ~Tensor() = default;

  // ---- factories -------------------------------------------------------------------------
  /// A tensor of `shape` and `dtype` filled with zeros.
  static Tensor zeros(Shape shape, DType dtype = DType::Float32);
  /// A tensor of `shape` and `dtype` whose values are left uninitialised: for outputs that a
  /// kernel overwrites completely, where zero-filling would be wasted work.
  static Tensor empty(Shape shape, DType dtype = DType::Float32);
  /// A float32 tensor of `shape` filled with ones.
  static Tensor ones(Shape shape);
  /// A float32 tensor of `shape` filled with `value`.
  static Tensor full(Shape shape, float value);
  /// Standard normal samples from `rng`.
  static Tensor randn(Shape shape, Rng& rng);
  /// Uniform samples in [low, high) from `rng`.
  static Tensor rand(Shape shape, Rng& rng, float low = 0.0f, float high = 1.0f);
  /// 0, 1, ..., n-1 as float32.
  static Tensor arange(int64_t n);
  /// An int8 tensor with the given values.
  static Tensor from_i8(Shape shape, const std::vector<int8_t>& values);
  /// An int32 tensor with the given values.
  static Tensor from_i32(Shape shape, const std::vector<int32_t>& values);

  // ---- shape -----------------------------------------------------------------------------
  /// Sizes of the dimensions, outermost first.
  const Shape& shape() const { return shape_; }
  /// Size of dimension `d` (negative `d` counts from the end, as in PyTorch); throws if invalid.
  int64_t size(int64_t d) const;
  /// Number of dimensions (0 for a scalar shape {}).
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  /// Number of elements: the product of the sizes.
  int64_t numel() const { return numel_; }
  /// Element type.
  DType dtype() const { return dtype_; }
  /// Storage size in bytes (numel * element size).
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
  /// "(2, 3)"
  std::string shape_str() const { return effml::shape_str(shape_); }

  // ---- data ------------------------------------------------------------------------------
  /// Float32 storage (numel values, row-major); throws effml::Error unless the dtype is float32.
  float* data();
  /// Read-only float32 storage; throws effml::Error unless the dtype is float32.
  const float* data() const;
  /// Int8 storage (numel values, row-major); throws effml::Error unless the dtype is int8.
  int8_t* data_i8();
  /// Read-only int8 storage; throws effml::Error unless the dtype is int8.
  const int8_t* data_i8() const;
  /// Int32 storage (numel values, row-major); throws effml::Error unless the dtype is int32.
  int32_t* data_i32();
  /// Read-only int32 storage; throws effml::Error unless the dtype is int32.
  const int32_t* data_i32() const;
  /// Raw bytes (nbytes of them), whatever the dtype (serialization).
  std::byte* raw() { return storage_.get(); }
  /// Read-only raw bytes (nbytes of them), whatever the dtype.
  const std::byte* raw() const { return storage_.get(); }

  /// Flat float32 element without checks (the hot-loop accessor).
  float& operator[](int64_t i) { return reinterpret_cast<float*>(storage_.get())[i]; }
  /// Flat float32 element by value, without checks.
  float operator[](int64_t i) const { return reinterpret_cast<const float*>(storage_.get())[i]; }
  /// Float32 element at a multi-index, bounds-checked (throws effml::Error): `t.at({n, c, h, w})`.
  float& at(std::initializer_list<int64_t> index);
  /// Float32 element at a multi-index by value, bounds-checked (throws effml::Error).
  float at(std::initializer_list<int64_t> index) const;
  /// Element at flat index `i` converted to double, for any dtype (checked).
  double item_at(int64_t i) const;
  /// The single value of a one-element tensor, as float.
  float item() const;
  /// The values as a std::vector<float> (converting int8/int32).
  std::vector<float> to_vector() const;

  // ---- copies and views ------------------------------------------------------------------
  /// A deep copy (same as copying the Tensor).
  Tensor clone() const { return *this; }
  /// Same data, new shape (one dimension may be -1). Numel must match.
  Tensor reshape(Shape shape) const;
  /// Changes the shape in place (no copy). Numel must match.
  void reshape_(Shape shape);
  /// Merges dimension start_dim and all after it into one; 1 gives (N, ...) -> (N, prod(...)).
  Tensor flatten(int64_t start_dim = 1) const;
  /// Rows [start, start + length) of dimension 0.
  Tensor narrow(int64_t start, int64_t length) const;
  /// Rows `index` of dimension `dim`, in that order (index_select in PyTorch).
  Tensor index_select(int64_t dim, const std::vector<int64_t>& index) const;
  /// Transpose of a 2-D tensor.
  Tensor t() const;
  /// Converts to another dtype (float to int rounds to nearest, ties to even, and saturates).
  Tensor to(DType dtype) const;

  // ---- in place ----------------------------------------------------------------------------
  /// Sets every element to `value` (float32 only); returns *this.
  Tensor& fill_(float value);
  /// Sets every element to 0 (float32 only); returns *this.
  Tensor& zero_() { return fill_(0.0f); }
  /// Copies values from a tensor of the same shape and dtype.
  Tensor& copy_(const Tensor& src);
  /// Multiplies every element by `s` (float32 only); returns *this.
  Tensor& mul_(float s);
  Tensor& add_(const Tensor& other, float alpha = 1.0f);  ///< this += alpha * other
  Tensor& mul_(const Tensor& other);                      ///< this *= other (elementwise)

  // ---- elementwise (float32, same shapes) ------------------------------------------------
  // Each returns a new float32 tensor of this shape. Tensor operands must have the same shape
  // (no broadcasting); a mismatch throws effml::Error naming both shapes.
  Tensor operator+(const Tensor& o) const;  ///< elementwise this + o
  Tensor operator-(const Tensor& o) const;  ///< elementwise this - o
  Tensor operator*(const Tensor& o) const;  ///< elementwise this * o
  Tensor operator/(const Tensor& o) const;  ///< elementwise this / o
  Tensor operator+(float s) const;          ///< this + s, every element
  Tensor operator-(float s) const;          ///< this - s, every element
  Tensor operator*(float s) const;          ///< this * s, every element
  Tensor operator/(float s) const;          ///< this / s, every element
  Tensor operator-() const;                 ///< -this
  Tensor abs() const;                       ///< |x|
  Tensor sqrt() const;                      ///< square root (NaN for negative x)
  Tensor exp() const;                       ///< e^x
  Tensor square() const;                    ///< x * x
  Tensor relu() const;                      ///< max(x, 0)
  Tensor clamp(float low, float high) const;  ///< min(max(x, low), high); throws if low > high
  Tensor round() const;  ///< to nearest, ties to even (as torch.round)
  Tensor sign() const;   ///< -1, 0 or +1 (as torch.sign)

  // ---- reductions (float32) --------------------------------------------------------------
  /// Sum of all elements (accumulated in double); 0 for an empty tensor.
  float sum() const;
  /// Mean of all elements; throws effml::Error on an empty tensor.
  float mean() const;
  /// Largest element; throws effml::Error on an empty tensor.
  float max() const;
  /// Smallest element; throws effml::Error on an empty tensor.
  float min() const;
  /// Frobenius (L2) norm of all elements.
  float norm() const;
  /// Sum over dimension `dim`, which is removed (keepdim=false).
  Tensor sum(int64_t dim) const;
  /// Index of the largest value along the last dimension of a 2-D tensor: (N, C) -> N indices.
  std::vector<int64_t> argmax_rows() const;
  /// The k-th smallest value of all elements, k counted from 1 (torch.kthvalue on the flattened
  /// tensor). Requires 1 <= k <= numel.
  float kthvalue(int64_t k) const;
  /// Values of all elements sorted ascending.
  Tensor sort() const;
  /// Indices that sort a 1-D tensor (descending if asked). Stable.
  std::vector<int64_t> argsort(bool descending = false) const;
  /// Number of non-zero elements, any dtype.
  int64_t count_nonzero() const;
  /// True when any element is NaN or infinite (float32 only; int tensors are always finite).
  bool has_nonfinite() const;

  // ---- linear algebra (float32) ----------------------------------------------------------
  /// (M, K) x (K, N) -> (M, N).
  Tensor matmul(const Tensor& other) const;

  // ---- comparison ------------------------------------------------------------------------
  /// Same shape and dtype and |a - b| <= atol + rtol * |b| everywhere (exact for int dtypes).
  bool allclose(const Tensor& other, float rtol = 1e-5f, float atol = 1e-8f) const;
  /// Same shape, dtype and identical bytes.
  bool equal(const Tensor& other) const;

 private:
  struct Uninitialized {};
  Tensor(Shape shape, DType dtype, Uninitialized);
  void check_dtype(DType want, const char* what) const;
  void allocate();

  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::Float32;
  std::unique_ptr<std::byte[], detail::AlignedFree> storage_;
};

/// Scalar on the left: s * t.
Tensor operator*(float s, const Tensor& t);

/// Throws effml::Error unless `t` has exactly `shape`; `what` names the argument in the message.
void check_shape(const Tensor& t, const Shape& shape, const std::string& what);
/// Throws effml::Error unless `t` has `dtype`; `what` names the argument in the message.
void check_dtype(const Tensor& t, DType dtype, const std::string& what);

}  // namespace effml
