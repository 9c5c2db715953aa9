/// \file deep_compression.h
/// \brief The Deep Compression storage format (Han et al. 2016): pruned, k-means-quantized
/// weights stored as two Huffman-coded symbol streams, and the file that holds a whole model.
///
/// **Entries.** A weight of \f$ n \f$ values (flat, row-major) whose non-zeros take \f$ k \f$
/// shared values (the codebook, or centroids) is stored as a list of entries, each a pair
/// (gap, symbol). Walking the weight, `last` starts at -1; each entry sits at position
/// \f$ p = \mathrm{last} + \mathrm{gap} + 1 \f$ and sets `last` to \f$ p \f$. A symbol
/// \f$ j < k \f$ puts centroid \f$ c_j \f$ at \f$ p \f$; the *filler* symbol \f$ k \f$ puts 0
/// there.
/// Every position no entry reaches is 0, and \f$ p \ge n \f$ is an error. Gaps lie in
/// \f$ [0, G) \f$ with \f$ G = 2^{\mathrm{gap\_bits}} \f$: a run of zeros longer than \f$ G - 1 \f$
/// is bridged by fillers with gap \f$ G - 1 \f$ until the remaining gap fits.
///
/// **Streams.** The gaps (alphabet of \f$ G \f$ symbols) and the symbols (alphabet of
/// \f$ k + 1 \f$) are two streams, each coded with the canonical Huffman code of its own code
/// lengths (huffman.h). What the file stores is decided by the caller: the entries and the code
/// lengths; the functions here pack, check and unpack them.
///
/// **File layout** (all integers unsigned little-endian; `u8`, `u16`, `u32` are 1, 2, 4 bytes;
/// `f32` is an IEEE-754 float32; strings are their UTF-8 bytes without terminator). Fields follow
/// each other without padding or alignment; the file ends with the last raw tensor.
///
/// | bytes                                  | field                                             |
/// |----------------------------------------|---------------------------------------------------|
/// | 4                                      | magic `EFDC`                                      |
/// | 1                                      | version: 1                                        |
/// | 2                                      | \f$ M \f$, number of metadata entries (`u16`)     |
/// | \f$ M \times \f$ (2 + \f$ a \f$ + 2 + \f$ b \f$) | per entry: key length \f$ a \f$ (`u16`), key, value length \f$ b \f$ (`u16`), value; keys strictly increasing (byte order) |
/// | 2                                      | \f$ W \f$, number of compressed weights (`u16`)   |
/// | *per weight:*                          |                                                   |
/// | 2 + \f$ a \f$                          | name length \f$ a \f$ (`u16`), name               |
/// | 1 + 4 \f$ d \f$                        | number of dimensions \f$ d \f$ (`u8`), the sizes (`u32` each) |
/// | 4                                      | \f$ k \ge 1 \f$, codebook size (`u32`)            |
/// | 4 \f$ k \f$                            | the centroids (`f32` each)                        |
/// | 1                                      | gap_bits, in [1, 8] (`u8`); \f$ G = 2^{\mathrm{gap\_bits}} \f$ |
/// | 4                                      | \f$ E \f$, number of entries (`u32`)              |
/// | 4                                      | \f$ B_g \f$, bits of the coded gap stream (`u32`) |
/// | 4                                      | \f$ B_s \f$, bits of the coded symbol stream (`u32`) |
/// | \f$ \lceil 5 (G + k + 1) / 8 \rceil \f$ | code lengths: the \f$ G \f$ gap lengths, then the \f$ k + 1 \f$ symbol lengths, 5 bits each, most significant bit first, zero-padded to a whole byte |
/// | \f$ \lceil B_g / 8 \rceil \f$          | the gap stream, zero-padded to a whole byte       |
/// | \f$ \lceil B_s / 8 \rceil \f$          | the symbol stream, zero-padded to a whole byte    |
/// | 2                                      | \f$ R \f$, number of raw tensors (`u16`)          |
/// | *per raw tensor:*                      |                                                   |
/// | 2 + \f$ a \f$                          | name length \f$ a \f$ (`u16`), name               |
/// | 1                                      | dtype (`u8`): 0 float32, 1 int8, 2 int32          |
/// | 1 + 4 \f$ d \f$                        | number of dimensions \f$ d \f$ (`u8`), the sizes (`u32` each) |
/// | numel \f$ \times \f$ element size      | the values, row-major                             |
///
/// Names are non-empty and unique across weights and raw tensors. A stream's code lengths must
/// form a valid code (huffman.h: lengths at most 24, Kraft sum at most 1, at least one used
/// symbol); a weight with no entries may instead have all its lengths 0. All padding bits are 0.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "effml/module.h"
#include "effml/tensor.h"

namespace effml {

/// The largest weight (number of dense values) the format accepts: a file of a few bytes can
/// describe an all-zero weight of any shape, so the dense size is capped to keep decode_weight's
/// allocation bounded (2^28 values, 1 GiB of float32; VGG-16's largest layer has about 2^26.6).
constexpr int64_t kMaxCompressedNumel = int64_t{1} << 28;

/// One weight stored the Deep Compression way: a codebook and the two entry streams.
struct CompressedWeight {
  std::string name;                     ///< the weight's name, e.g. "fc1.weight"
  Shape shape;                          ///< the dense weight's shape; \f$ n \f$ = its numel
  std::vector<float> centroids;         ///< \f$ k \ge 1 \f$ shared values (the codebook), finite
  /// In [1, 8]: the gap alphabet has \f$ G = 2^{\mathrm{gap\_bits}} \f$ symbols.
  int gap_bits = 0;
  std::vector<int32_t> gaps;            ///< one per entry, in \f$ [0, G) \f$
  /// One per entry, in \f$ [0, k] \f$: \f$ j < k \f$ is centroid j, \f$ k \f$ the filler
  /// (a stored 0).
  std::vector<int32_t> symbols;
  std::vector<uint8_t> gap_lengths;     ///< \f$ G \f$ Huffman code lengths of the gap stream
  std::vector<uint8_t> symbol_lengths;  ///< \f$ k + 1 \f$ Huffman code lengths of the symbol stream
};

/// The dense float32 tensor of `shape` that a weight's entries describe (see the file comment).
///
/// The code lengths are not used. Checks: \f$ k \ge 1 \f$ finite centroids, gap_bits in [1, 8],
/// as many gaps as symbols, every gap in \f$ [0, G) \f$ and symbol in \f$ [0, k] \f$, every
/// position below \f$ n \f$, and \f$ n \le \f$ kMaxCompressedNumel.
/// \throws effml::Error naming the weight and the problem (for a position: the entry index, the
///         position and \f$ n \f$)
Tensor decode_weight(const CompressedWeight& w);

/// A model in the Deep Compression format: compressed weights, tensors stored as they are
/// (biases, usually float32), and string metadata.
struct DeepCompressedModel {
  std::vector<CompressedWeight> weights;             ///< Huffman-coded weights, in file order
  std::vector<std::pair<std::string, Tensor>> raw;   ///< (name, tensor) stored as is, in file order
  std::map<std::string, std::string> metadata;       ///< small key/value strings
};

/// Writes a model in the format of the file comment, to `path + ".tmp"` and then renamed to
/// `path` (a crash never leaves a half-written file under the real name).
///
/// Every weight is checked as decode_weight does, and its code lengths must number \f$ G \f$ and
/// \f$ k + 1 \f$ and code every symbol used (huffman_encode). Limits of the layout: names, keys
/// and values up to 65535 bytes, at most 65535 metadata entries, weights and raw tensors, at most
/// 255 dimensions of
/// sizes below 2^32, streams below 2^32 bits.
/// \throws effml::Error naming the file, the weight or tensor and the problem
void save_deep_compressed(const std::string& path, const DeepCompressedModel& m);

/// Reads and checks a whole file written by save_deep_compressed, with the streams decoded:
/// each weight's `gaps` and `symbols` are filled, so decode_weight can be called on it.
///
/// Strict: the magic and version, every count checked against the bytes left before anything is
/// allocated, names unique, code lengths valid, each stream decoding to exactly \f$ E \f$ symbols
/// with zero padding, every entry inside its weight, finite centroids, and no byte after the last
/// raw tensor.
/// \throws effml::Error naming the file, the weight or tensor and the problem (e.g.
///         "m.efdc: weight 'fc1.weight': truncated: the gap stream needs 120 bytes at offset 96,
///         only 17 are left")
DeepCompressedModel load_deep_compressed(const std::string& path);

/// A file's size in bytes, by part; the parts sum to `total`.
struct DeepCompressedSize {
  uint64_t total = 0;          ///< the file size
  /// Everything not counted below: magic, version, metadata, names, shapes, counts, bit counts,
  /// the raw tensors' names, dtypes and shapes.
  uint64_t header = 0;
  uint64_t codebooks = 0;      ///< the centroids, 4 bytes each
  uint64_t code_tables = 0;    ///< the packed code lengths
  uint64_t gap_stream = 0;     ///< the coded gap streams
  uint64_t symbol_stream = 0;  ///< the coded symbol streams
  uint64_t raw = 0;            ///< the raw tensors' values
};

/// The size of a file by part. The file is checked as load_deep_compressed does.
/// \throws effml::Error as load_deep_compressed
DeepCompressedSize deep_compressed_size(const std::string& path);

/// Loads a Deep Compression file into `model`: each compressed weight, decoded, and each raw
/// tensor go to the model's parameter or buffer of the same name. Every parameter and buffer of
/// the model must be given exactly once, with its shape and dtype (float32).
/// \throws effml::Error naming the file and the tensor that is missing, unknown, given twice or
///         of the wrong shape, or as load_deep_compressed
void load_deep_compressed_into(const std::string& path, Module& model);

}  // namespace effml
