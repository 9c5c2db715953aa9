#include "effml/tensor.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
// GCC 12 reports a false -Warray-bounds inside xtensor's small vector (svector::insert, from
// xsort.hpp's get_permutations), or not, depending on what else this file inlines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xsort.hpp>
#pragma GCC diagnostic pop

#include "effml/rng.h"

namespace effml {

namespace detail {
void AlignedFree::operator()(std::byte* p) const noexcept { std::free(p); }

void throw_check_failure(const char* file, int line, const char* cond,
                         const std::string& message) {
  std::ostringstream os;
  os << message << " [check `" << cond << "` failed at " << file << ":" << line << "]";
  throw Error(os.str());
}
}  // namespace detail

namespace {
constexpr std::size_t kAlign = 64;

// xtensor view over the float storage, without copying (xt::adapt with no ownership).
auto xview(float* p, int64_t n) {
  return xt::adapt(p, static_cast<std::size_t>(n), xt::no_ownership(),
                   std::vector<std::size_t>{static_cast<std::size_t>(n)});
}
auto xview(const float* p, int64_t n) {
  return xt::adapt(const_cast<float*>(p), static_cast<std::size_t>(n), xt::no_ownership(),
                   std::vector<std::size_t>{static_cast<std::size_t>(n)});
}
}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Int8: return "int8";
    case DType::Int32: return "int32";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) { return dtype == DType::Int8 ? 1 : 4; }

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

int64_t shape_numel(const Shape& shape) {
  // The sizes other than 0 must multiply to at most 2^60, even when a 0 makes the count 0: then
  // no product of sizes overflows, and neither does a byte count (at most 8 bytes an element).
  constexpr int64_t kMaxProduct = int64_t{1} << 60;
  int64_t n = 1;
  bool zero = false;
  for (int64_t d : shape) {
    EFFML_CHECK(d >= 0, "negative dimension in shape " << shape_str(shape));
    if (d == 0) {
      zero = true;
      continue;
    }
    EFFML_CHECK(n <= kMaxProduct / d,
                "shape " << shape_str(shape) << " is too large: its sizes multiply past 2^60");
    n *= d;
  }
  return zero ? 0 : n;
}

// ---- construction ------------------------------------------------------------------------

Tensor::Tensor() : Tensor(Shape{0}) {}

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  numel_ = shape_numel(shape_);
  allocate();
  if (nbytes()) std::memset(storage_.get(), 0, nbytes());
}

Tensor::Tensor(Shape shape, const std::vector<float>& values) : shape_(std::move(shape)) {
  numel_ = shape_numel(shape_);
  EFFML_CHECK(static_cast<int64_t>(values.size()) == numel_,
              "Tensor: shape " << effml::shape_str(shape_) << " holds " << numel_
                               << " values, got " << values.size());
  allocate();
  if (nbytes()) std::memcpy(storage_.get(), values.data(), nbytes());
}

namespace {
// A training step allocates and frees the same tensors, up to megabytes each, at every step.
// With glibc's default, dynamic thresholds, freeing a block served by mmap raises the mmap
// threshold and the top of the heap is then trimmed and grown again, step after step, faulting
// in fresh zeroed pages each time; whether that happens depends on the sizes and on where the
// heap happens to start. Measured: the same LeNet-5 benchmark binary took 3.5 to 3.7 s per
// epoch in some runs and 2.3 to 2.4 s with fixed thresholds (page faults were 10% of its
// profile). Fixed thresholds, set once when the program starts (this file is linked into every
// program that uses tensors): blocks of up to 32 MB (glibc's largest mmap threshold) come from
// the heap, which keeps up to 256 MB free at its top. The peak memory does not change; memory
// freed after a peak is kept for reuse. No "fast bins" either: a batch-1 forward frees small
// blocks (shapes) between large ones (outputs), and each large request then first merged the
// fast bins back (malloc_consolidate, 1% of LeNet-5's latency); the per-thread cache still
// serves small blocks. LeNet-5 at batch 1: 12.5 -> 12.4 us.
bool fix_malloc_thresholds() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MXFAST, 0);
#endif
  return true;
}
[[maybe_unused]] const bool kMallocThresholdsFixed = fix_malloc_thresholds();
}  // namespace

void Tensor::allocate() {
  // Round up to the alignment: aligned_alloc requires a multiple of it. Never zero bytes.
  std::size_t bytes = std::max<std::size_t>(nbytes(), 1);
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(kAlign, bytes));
  if (!p) throw Error("Tensor: out of memory allocating " + std::to_string(bytes) + " bytes for " +
                      effml::shape_str(shape_));
  storage_.reset(p);
}

Tensor::Tensor(const Tensor& other)
    : shape_(other.shape_), numel_(other.numel_), dtype_(other.dtype_) {
  allocate();
  if (nbytes()) std::memcpy(storage_.get(), other.storage_.get(), nbytes());
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this == &other) return *this;
  if (nbytes() != other.nbytes() || !storage_) {
    shape_ = other.shape_;
    numel_ = other.numel_;
    dtype_ = other.dtype_;
    allocate();
  } else {
    shape_ = other.shape_;
    numel_ = other.numel_;
    dtype_ = other.dtype_;
  }
  if (nbytes()) std::memcpy(storage_.get(), other.storage_.get(), nbytes());
  return *this;
}

Tensor Tensor::zeros(Shape shape, DType dtype) { return Tensor(std::move(shape), dtype); }

Tensor::Tensor(Shape shape, DType dtype, Uninitialized) : shape_(std::move(shape)), dtype_(dtype) {
  numel_ = shape_numel(shape_);
  allocate();
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  return Tensor(std::move(shape), dtype, Uninitialized{});
}
Tensor Tensor::ones(Shape shape) { return full(std::move(shape), 1.0f); }
Tensor Tensor::full(Shape shape, float value) {
  Tensor t(std::move(shape));
  t.fill_(value);
  return t;
}
Tensor Tensor::randn(Shape shape, Rng& rng) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel_; ++i) t[i] = rng.normal();
  return t;
}
Tensor Tensor::rand(Shape shape, Rng& rng, float low, float high) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel_; ++i) t[i] = rng.uniform(low, high);
  return t;
}
Tensor Tensor::arange(int64_t n) {
  Tensor t(Shape{n});
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<float>(i);
  return t;
}
Tensor Tensor::from_i8(Shape shape, const std::vector<int8_t>& values) {
  Tensor t(std::move(shape), DType::Int8);
  EFFML_CHECK(static_cast<int64_t>(values.size()) == t.numel_,
              "from_i8: shape " << t.shape_str() << " holds " << t.numel_ << " values, got "
                                << values.size());
  if (t.numel_) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}
Tensor Tensor::from_i32(Shape shape, const std::vector<int32_t>& values) {
  Tensor t(std::move(shape), DType::Int32);
  EFFML_CHECK(static_cast<int64_t>(values.size()) == t.numel_,
              "from_i32: shape " << t.shape_str() << " holds " << t.numel_ << " values, got "
                                 << values.size());
  if (t.numel_) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

// ---- shape and data -----------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  EFFML_CHECK(d >= -n && d < n, "size(" << d << "): tensor of shape " << shape_str()
                                        << " has " << n << " dimensions");
  return shape_[static_cast<std::size_t>(d < 0 ? d + n : d)];
}

void Tensor::check_dtype(DType want, const char* what) const {
  EFFML_CHECK(dtype_ == want, what << ": tensor of shape " << shape_str() << " is "
                                   << dtype_name(dtype_) << ", not " << dtype_name(want));
}

float* Tensor::data() {
  check_dtype(DType::Float32, "data()");
  return reinterpret_cast<float*>(storage_.get());
}
const float* Tensor::data() const {
  check_dtype(DType::Float32, "data()");
  return reinterpret_cast<const float*>(storage_.get());
}
int8_t* Tensor::data_i8() {
  check_dtype(DType::Int8, "data_i8()");
  return reinterpret_cast<int8_t*>(storage_.get());
}
const int8_t* Tensor::data_i8() const {
  check_dtype(DType::Int8, "data_i8()");
  return reinterpret_cast<const int8_t*>(storage_.get());
}
int32_t* Tensor::data_i32() {
  check_dtype(DType::Int32, "data_i32()");
  return reinterpret_cast<int32_t*>(storage_.get());
}
const int32_t* Tensor::data_i32() const {
  check_dtype(DType::Int32, "data_i32()");
  return reinterpret_cast<const int32_t*>(storage_.get());
}

namespace {
int64_t flat_index(const Shape& shape, std::initializer_list<int64_t> index) {
  EFFML_CHECK(index.size() == shape.size(),
              "at(): " << index.size() << " indices for a tensor of shape " << shape_str(shape));
  int64_t flat = 0;
  std::size_t d = 0;
  for (int64_t i : index) {
    EFFML_CHECK(i >= 0 && i < shape[d], "at(): index " << i << " out of range for dimension "
                                                       << d << " of shape " << shape_str(shape));
    flat = flat * shape[d] + i;
    ++d;
  }
  return flat;
}
}  // namespace

float& Tensor::at(std::initializer_list<int64_t> index) {
  return data()[flat_index(shape_, index)];
}
float Tensor::at(std::initializer_list<int64_t> index) const {
  return data()[flat_index(shape_, index)];
}

double Tensor::item_at(int64_t i) const {
  EFFML_CHECK(i >= 0 && i < numel_,
              "item_at(" << i << "): out of range for shape " << shape_str());
  switch (dtype_) {
    case DType::Float32: return reinterpret_cast<const float*>(storage_.get())[i];
    case DType::Int8: return reinterpret_cast<const int8_t*>(storage_.get())[i];
    case DType::Int32: return reinterpret_cast<const int32_t*>(storage_.get())[i];
  }
  return 0;
}

float Tensor::item() const {
  EFFML_CHECK(numel_ == 1, "item(): tensor of shape " << shape_str() << " has " << numel_
                                                      << " elements, not 1");
  return static_cast<float>(item_at(0));
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<std::size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[i] = static_cast<float>(item_at(i));
  return v;
}

// ---- copies and views ----------------------------------------------------------------------

Tensor Tensor::reshape(Shape shape) const {
  Tensor t(*this);
  t.reshape_(std::move(shape));
  return t;
}

void Tensor::reshape_(Shape shape) {
  int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      EFFML_CHECK(infer < 0, "reshape: more than one -1 in " << effml::shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    EFFML_CHECK(known > 0 && numel_ % known == 0,
                "reshape: cannot view " << shape_str() << " as " << effml::shape_str(shape));
    shape[infer] = numel_ / known;
  }
  EFFML_CHECK(shape_numel(shape) == numel_,
              "reshape: cannot view " << shape_str() << " (" << numel_ << " elements) as "
                                      << effml::shape_str(shape));
  shape_ = std::move(shape);
}

Tensor Tensor::flatten(int64_t start_dim) const {
  EFFML_CHECK(start_dim >= 0 && start_dim < std::max<int64_t>(dim(), 1),
              "flatten(" << start_dim << "): tensor of shape " << shape_str());
  Shape s(shape_.begin(), shape_.begin() + start_dim);
  s.push_back(-1);
  return reshape(s);
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  EFFML_CHECK(dim() >= 1 && start >= 0 && length >= 0 && start + length <= shape_[0],
              "narrow(" << start << ", " << length << "): out of range for shape "
                        << shape_str());
  Shape s = shape_;
  s[0] = length;
  Tensor t(s, dtype_);
  const std::size_t row = nbytes() / std::max<int64_t>(shape_[0], 1);
  if (t.nbytes()) std::memcpy(t.raw(), raw() + start * row, t.nbytes());
  return t;
}

Tensor Tensor::index_select(int64_t dim_, const std::vector<int64_t>& index) const {
  EFFML_CHECK(dim_ >= 0 && dim_ < dim(),
              "index_select: dim " << dim_ << " for a tensor of shape " << shape_str());
  Shape s = shape_;
  s[dim_] = static_cast<int64_t>(index.size());
  Tensor t(s, dtype_);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim_; ++d) outer *= shape_[d];
  for (int64_t d = dim_ + 1; d < dim(); ++d) inner *= shape_[d];
  const std::size_t es = dtype_size(dtype_);
  const std::size_t chunk = static_cast<std::size_t>(inner) * es;
  for (int64_t o = 0; o < outer; ++o) {
    for (std::size_t j = 0; j < index.size(); ++j) {
      const int64_t i = index[j];
      EFFML_CHECK(i >= 0 && i < shape_[dim_], "index_select: index " << i << " out of range for "
                                                                     << "dimension " << dim_
                                                                     << " of " << shape_str());
      std::memcpy(t.raw() + ((o * s[dim_] + static_cast<int64_t>(j)) * inner) * es,
                  raw() + ((o * shape_[dim_] + i) * inner) * es, chunk);
    }
  }
  return t;
}

Tensor Tensor::t() const {
  EFFML_CHECK(dim() == 2, "t(): expected a 2-D tensor, got " << shape_str());
  check_dtype(DType::Float32, "t()");
  const int64_t r = shape_[0], c = shape_[1];
  Tensor out({c, r});
  const float* a = data();
  float* b = out.data();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) b[j * r + i] = a[i * c + j];
  return out;
}

namespace {
template <typename T>
T saturate_round(float v) {
  const float lo = static_cast<float>(std::numeric_limits<T>::min());
  const float hi = static_cast<float>(std::numeric_limits<T>::max());
  const float r = std::nearbyint(v);  // default rounding mode: to nearest, ties to even
  if (!(r >= lo)) return std::numeric_limits<T>::min();  // also NaN -> min
  if (r >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(r);
}
}  // namespace

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out(shape_, dtype);
  for (int64_t i = 0; i < numel_; ++i) {
    const double v = item_at(i);
    switch (dtype) {
      case DType::Float32: out.data()[i] = static_cast<float>(v); break;
      case DType::Int8: out.data_i8()[i] = saturate_round<int8_t>(static_cast<float>(v)); break;
      case DType::Int32:
        out.data_i32()[i] = dtype_ == DType::Float32 ? saturate_round<int32_t>(static_cast<float>(v))
                                                     : static_cast<int32_t>(v);
        break;
    }
  }
  return out;
}

// ---- in place -------------------------------------------------------------------------------

Tensor& Tensor::fill_(float value) {
  check_dtype(DType::Float32, "fill_()");
  std::fill(data(), data() + numel_, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  EFFML_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_,
              "copy_: source " << src.shape_str() << " " << dtype_name(src.dtype_)
                               << " does not match destination " << shape_str() << " "
                               << dtype_name(dtype_));
  if (nbytes()) std::memcpy(raw(), src.raw(), nbytes());
  return *this;
}

Tensor& Tensor::mul_(float s) {
  auto x = xview(data(), numel_);
  x *= s;
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, float alpha) {
  check_shape(other, shape_, "add_: other");
  auto x = xview(data(), numel_);
  x += alpha * xview(other.data(), numel_);
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_shape(other, shape_, "mul_: other");
  auto x = xview(data(), numel_);
  x *= xview(other.data(), numel_);
  return *this;
}

// ---- elementwise ----------------------------------------------------------------------------

namespace {
template <typename F>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  EFFML_CHECK(a.shape() == b.shape(), "operator" << op << ": shapes " << a.shape_str() << " and "
                                                 << b.shape_str() << " differ");
  Tensor out(a.shape());
  auto o = xview(out.data(), out.numel());
  o = f(xview(a.data(), a.numel()), xview(b.data(), b.numel()));
  return out;
}
template <typename F>
Tensor unary(const Tensor& a, F f) {
  Tensor out(a.shape());
  auto o = xview(out.data(), out.numel());
  o = f(xview(a.data(), a.numel()));
  return out;
}
}  // namespace

Tensor Tensor::operator+(const Tensor& o) const {
  return binary(*this, o, "+", [](auto&& x, auto&& y) { return x + y; });
}
Tensor Tensor::operator-(const Tensor& o) const {
  return binary(*this, o, "-", [](auto&& x, auto&& y) { return x - y; });
}
Tensor Tensor::operator*(const Tensor& o) const {
  return binary(*this, o, "*", [](auto&& x, auto&& y) { return x * y; });
}
Tensor Tensor::operator/(const Tensor& o) const {
  return binary(*this, o, "/", [](auto&& x, auto&& y) { return x / y; });
}
Tensor Tensor::operator+(float s) const {
  return unary(*this, [s](auto&& x) { return x + s; });
}
Tensor Tensor::operator-(float s) const {
  return unary(*this, [s](auto&& x) { return x - s; });
}
Tensor Tensor::operator*(float s) const {
  return unary(*this, [s](auto&& x) { return x * s; });
}
Tensor Tensor::operator/(float s) const {
  return unary(*this, [s](auto&& x) { return x / s; });
}
Tensor Tensor::operator-() const {
  return unary(*this, [](auto&& x) { return -x; });
}
Tensor operator*(float s, const Tensor& t) { return t * s; }

Tensor Tensor::abs() const {
  return unary(*this, [](auto&& x) { return xt::abs(x); });
}
Tensor Tensor::sqrt() const {
  return unary(*this, [](auto&& x) { return xt::sqrt(x); });
}
Tensor Tensor::exp() const {
  return unary(*this, [](auto&& x) { return xt::exp(x); });
}
Tensor Tensor::square() const {
  return unary(*this, [](auto&& x) { return x * x; });
}
Tensor Tensor::relu() const {
  return unary(*this, [](auto&& x) { return xt::maximum(x, 0.0f); });
}
Tensor Tensor::clamp(float low, float high) const {
  EFFML_CHECK(low <= high, "clamp: low " << low << " > high " << high);
  return unary(*this, [=](auto&& x) { return xt::clip(x, low, high); });
}
Tensor Tensor::round() const {
  return unary(*this, [](auto&& x) { return xt::nearbyint(x); });
}
Tensor Tensor::sign() const {
  return unary(*this, [](auto&& x) { return xt::sign(x); });
}

// ---- reductions -----------------------------------------------------------------------------

float Tensor::sum() const {
  // Accumulate in double: a float sum of a million terms loses digits that tests would see.
  double s = 0.0;
  const float* p = data();
  for (int64_t i = 0; i < numel_; ++i) s += p[i];
  return static_cast<float>(s);
}
float Tensor::mean() const {
  EFFML_CHECK(numel_ > 0, "mean(): empty tensor " << shape_str());
  return static_cast<float>(static_cast<double>(sum()) / static_cast<double>(numel_));
}
float Tensor::max() const {
  EFFML_CHECK(numel_ > 0, "max(): empty tensor " << shape_str());
  return xt::amax(xview(data(), numel_))();
}
float Tensor::min() const {
  EFFML_CHECK(numel_ > 0, "min(): empty tensor " << shape_str());
  return xt::amin(xview(data(), numel_))();
}
float Tensor::norm() const {
  double s = 0.0;
  const float* p = data();
  for (int64_t i = 0; i < numel_; ++i) s += static_cast<double>(p[i]) * p[i];
  return static_cast<float>(std::sqrt(s));
}

Tensor Tensor::sum(int64_t d) const {
  EFFML_CHECK(d >= 0 && d < dim(), "sum(" << d << "): tensor of shape " << shape_str());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= shape_[i];
  for (int64_t i = d + 1; i < dim(); ++i) inner *= shape_[i];
  Shape s = shape_;
  s.erase(s.begin() + d);
  Tensor out(s);
  const float* p = data();
  float* q = out.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < shape_[d]; ++k)
      for (int64_t i = 0; i < inner; ++i) q[o * inner + i] += p[(o * shape_[d] + k) * inner + i];
  return out;
}

std::vector<int64_t> Tensor::argmax_rows() const {
  EFFML_CHECK(dim() == 2, "argmax_rows: expected (N, C), got " << shape_str());
  const int64_t n = shape_[0], c = shape_[1];
  std::vector<int64_t> out(static_cast<std::size_t>(n));
  const float* p = data();
  for (int64_t i = 0; i < n; ++i)
    out[i] = std::max_element(p + i * c, p + (i + 1) * c) - (p + i * c);
  return out;
}

float Tensor::kthvalue(int64_t k) const {
  EFFML_CHECK(k >= 1 && k <= numel_, "kthvalue(" << k << "): k must be in [1, " << numel_
                                                 << "] for a tensor of shape " << shape_str());
  auto x = xview(data(), numel_);
  // xt::partition places the (k-1)-th smallest at its sorted position in O(n).
  auto part = xt::partition(x, static_cast<std::size_t>(k - 1));
  return part(static_cast<std::size_t>(k - 1));
}

Tensor Tensor::sort() const {
  Tensor out(Shape{numel_});
  auto o = xview(out.data(), numel_);
  o = xt::sort(xview(data(), numel_));
  return out;
}

std::vector<int64_t> Tensor::argsort(bool descending) const {
  EFFML_CHECK(dim() == 1, "argsort: expected a 1-D tensor, got " << shape_str());
  std::vector<int64_t> idx(static_cast<std::size_t>(numel_));
  std::iota(idx.begin(), idx.end(), 0);
  const float* p = data();
  if (descending)
    std::stable_sort(idx.begin(), idx.end(), [p](int64_t a, int64_t b) { return p[a] > p[b]; });
  else
    std::stable_sort(idx.begin(), idx.end(), [p](int64_t a, int64_t b) { return p[a] < p[b]; });
  return idx;
}

int64_t Tensor::count_nonzero() const {
  int64_t n = 0;
  for (int64_t i = 0; i < numel_; ++i) n += item_at(i) != 0.0;
  return n;
}

bool Tensor::has_nonfinite() const {
  if (dtype_ != DType::Float32) return false;
  const float* p = data();
  for (int64_t i = 0; i < numel_; ++i)
    if (!std::isfinite(p[i])) return true;
  return false;
}

// ---- linear algebra -------------------------------------------------------------------------

Tensor Tensor::matmul(const Tensor& other) const {
  EFFML_CHECK(dim() == 2 && other.dim() == 2 && shape_[1] == other.shape_[0],
              "matmul: cannot multiply " << shape_str() << " by " << other.shape_str());
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t m = shape_[0], k = shape_[1], n = other.shape_[1];
  Tensor out({m, n});
  Eigen::Map<const RowMat> a(data(), m, k);
  Eigen::Map<const RowMat> b(other.data(), k, n);
  Eigen::Map<RowMat> c(out.data(), m, n);
  c.noalias() = a * b;
  return out;
}

// ---- comparison -----------------------------------------------------------------------------

bool Tensor::allclose(const Tensor& other, float rtol, float atol) const {
  if (shape_ != other.shape_ || dtype_ != other.dtype_) return false;
  if (dtype_ != DType::Float32) return equal(other);
  const float* a = data();
  const float* b = other.data();
  for (int64_t i = 0; i < numel_; ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return false;
    if (std::fabs(a[i] - b[i]) > atol + rtol * std::fabs(b[i])) return false;
  }
  return true;
}

bool Tensor::equal(const Tensor& other) const {
  return shape_ == other.shape_ && dtype_ == other.dtype_ &&
         (nbytes() == 0 || std::memcmp(raw(), other.raw(), nbytes()) == 0);
}

void check_shape(const Tensor& t, const Shape& shape, const std::string& what) {
  EFFML_CHECK(t.shape() == shape,
              what << ": expected shape " << shape_str(shape) << ", got " << t.shape_str());
}

void check_dtype(const Tensor& t, DType dtype, const std::string& what) {
  EFFML_CHECK(t.dtype() == dtype, what << ": expected " << dtype_name(dtype) << ", got "
                                       << dtype_name(t.dtype()) << " of shape " << t.shape_str());
}

}  // namespace effml
