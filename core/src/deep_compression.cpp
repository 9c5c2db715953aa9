#include "effml/deep_compression.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "effml/huffman.h"
#include "atomic_file.h"

// Integers are assembled byte by byte, but float32 and tensor payloads are copied as they are:
// the format is little-endian, and so must the host be.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "deep_compression.cpp assumes a little-endian host"
#endif

namespace effml {

namespace {

constexpr char kMagic[4] = {'E', 'F', 'D', 'C'};
constexpr uint8_t kVersion = 1;
constexpr int kLengthBits = 5;  // bits per stored code length (lengths are at most 24 < 32)
static_assert(kMaxCodeLength < (1 << kLengthBits), "a code length must fit in kLengthBits");

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw Error(where + ": " + problem);
}

std::string weight_where(const std::string& prefix, const std::string& name) {
  return prefix + ": weight '" + name + "'";
}

// Bytes of `bits` bits, padded to whole bytes.
uint64_t bytes_of_bits(uint64_t bits) { return (bits + 7) / 8; }

// Products of sizes above this are not credible (and cannot overflow while they are checked).
constexpr int64_t kMaxShapeProduct = int64_t{1} << 40;

// numel of `shape`, or -1 when a size is negative or `cap` is exceeded. The sizes other than 0
// must multiply to at most 2^40 even when a 0 makes the numel 0: Tensor's own product of the
// sizes must not overflow.
int64_t capped_numel(const Shape& shape, int64_t cap) {
  int64_t product = 1;  // of the non-zero sizes
  bool zero = false;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) {
      zero = true;
      continue;
    }
    if (product > kMaxShapeProduct / d) return -1;  // product * d would pass 2^40
    product *= d;
  }
  if (zero) return 0;
  return product > cap ? -1 : product;
}

// Checks everything decode_weight relies on; returns n. `where` starts every message.
int64_t check_entries(const CompressedWeight& w, const std::string& where) {
  const int64_t n = capped_numel(w.shape, kMaxCompressedNumel);
  if (n < 0)
    fail(where, "shape " + shape_str(w.shape) + " is invalid or larger than the format's " +
                    std::to_string(kMaxCompressedNumel) + " values");
  const std::size_t k = w.centroids.size();
  if (k == 0) fail(where, "the codebook is empty: k must be at least 1");
  for (std::size_t j = 0; j < k; ++j)
    if (!std::isfinite(w.centroids[j]))
      fail(where, "centroid " + std::to_string(j) + " is " + std::to_string(w.centroids[j]) +
                      ", not finite");
  if (w.gap_bits < 1 || w.gap_bits > 8)
    fail(where, "gap_bits " + std::to_string(w.gap_bits) + " is not in [1, 8]");
  const int64_t g = int64_t{1} << w.gap_bits;
  if (w.gaps.size() != w.symbols.size())
    fail(where, std::to_string(w.gaps.size()) + " gaps but " + std::to_string(w.symbols.size()) +
                    " symbols: the two streams must have one value per entry");
  int64_t last = -1;
  for (std::size_t i = 0; i < w.gaps.size(); ++i) {
    const int64_t gap = w.gaps[i];
    const int64_t sym = w.symbols[i];
    if (gap < 0 || gap >= g)
      fail(where, "entry " + std::to_string(i) + " has gap " + std::to_string(gap) +
                      ", outside [0, " + std::to_string(g) + ") for gap_bits " +
                      std::to_string(w.gap_bits));
    if (sym < 0 || sym > static_cast<int64_t>(k))
      fail(where, "entry " + std::to_string(i) + " has symbol " + std::to_string(sym) +
                      ", outside [0, " + std::to_string(k) + "] (k = " + std::to_string(k) +
                      " centroids, symbol k is the filler)");
    const int64_t p = last + gap + 1;
    if (p >= n)
      fail(where, "entry " + std::to_string(i) + " lands at position " + std::to_string(p) +
                      ", outside the weight's n = " + std::to_string(n) + " values (shape " +
                      shape_str(w.shape) + ")");
    last = p;
  }
  return n;
}

bool all_zero(const std::vector<uint8_t>& lengths) {
  for (uint8_t len : lengths)
    if (len != 0) return false;
  return true;
}

// Code lengths of a stream of `entries` symbols: a valid code, or all 0 for an empty stream.
void check_lengths(const std::vector<uint8_t>& lengths, std::size_t entries,
                   const std::string& where, const char* stream) {
  if (entries == 0 && all_zero(lengths)) return;
  try {
    canonical_codes(lengths);
  } catch (const Error& e) {
    fail(where, std::string(stream) + " code lengths: " + e.what());
  }
}

// ---- writing ----------------------------------------------------------------------------------

struct Out {
  std::vector<uint8_t> bytes;
  void u8(uint64_t v) { bytes.push_back(static_cast<uint8_t>(v)); }
  void u16(uint64_t v) {
    for (int i = 0; i < 2; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u32(uint64_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  void str(const std::string& s) {
    u16(s.size());
    raw(s.data(), s.size());
  }
  void shape(const Shape& s) {
    u8(s.size());
    for (int64_t d : s) u32(static_cast<uint64_t>(d));
  }
};

void check_string(const std::string& s, const std::string& where, const char* what) {
  if (s.size() > 0xFFFF)
    fail(where, std::string(what) + " of " + std::to_string(s.size()) +
                    " bytes is longer than the format's 65535");
}

void check_shape_fits(const Shape& s, const std::string& where) {
  if (s.size() > 0xFF)
    fail(where, "shape " + shape_str(s) + " has more than the format's 255 dimensions");
  for (int64_t d : s)
    if (d < 0 || d > int64_t{0xFFFFFFFF})
      fail(where, "shape " + shape_str(s) + " has a size outside [0, 2^32)");
}

void check_name(const std::string& name, std::set<std::string>& seen, const std::string& where) {
  if (name.empty()) fail(where, "a weight or tensor has an empty name");
  check_string(name, where, "the name");
  if (!seen.insert(name).second) fail(where, "the name is used twice");
}

uint8_t dtype_code(DType d) {
  switch (d) {
    case DType::Float32: return 0;
    case DType::Int8: return 1;
    case DType::Int32: return 2;
  }
  return 0xFF;
}

// ---- reading ----------------------------------------------------------------------------------

// A cursor over the file's bytes; every read checks the bytes left and names what it reads.
struct In {
  const std::vector<uint8_t>& bytes;
  std::string where;  // the file, and the weight or tensor being read
  std::size_t pos = 0;

  uint64_t left() const { return bytes.size() - pos; }
  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > left())
      fail(where, "truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                      std::to_string(pos) + ", only " + std::to_string(left()) + " are left");
    const uint8_t* p = bytes.data() + pos;
    pos += static_cast<std::size_t>(n);
    return p;
  }
  uint64_t uint(int n, const std::string& what) {
    const uint8_t* p = take(static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t len = uint(2, what + " length");
    const uint8_t* p = take(len, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
  }
  Shape shape() {
    const uint64_t d = uint(1, "the number of dimensions");
    if (4 * d > left())
      fail(where, "truncated: the shape's " + std::to_string(d) + " sizes need " +
                      std::to_string(4 * d) + " bytes at offset " + std::to_string(pos) +
                      ", only " + std::to_string(left()) + " are left");
    Shape s;
    for (uint64_t i = 0; i < d; ++i) s.push_back(static_cast<int64_t>(uint(4, "a size")));
    return s;
  }
};

CompressedWeight read_weight(In& in, const std::string& file, std::set<std::string>& seen,
                             DeepCompressedSize& size) {
  const std::size_t start = in.pos;
  in.where = file + ": weight at offset " + std::to_string(start);
  CompressedWeight w;
  w.name = in.str("the weight name");
  in.where = weight_where(file, w.name);
  if (w.name.empty()) fail(in.where, "the name is empty");
  if (!seen.insert(w.name).second) fail(in.where, "the name is used twice");

  w.shape = in.shape();
  const int64_t n = capped_numel(w.shape, kMaxCompressedNumel);
  if (n < 0)
    fail(in.where, "shape " + shape_str(w.shape) + " is larger than the format's " +
                       std::to_string(kMaxCompressedNumel) + " values");

  const uint64_t k = in.uint(4, "k");
  if (k == 0) fail(in.where, "the codebook is empty: k must be at least 1");
  if (4 * k > in.left())
    fail(in.where, "truncated: the " + std::to_string(k) + " centroids need " +
                       std::to_string(4 * k) + " bytes at offset " + std::to_string(in.pos) +
                       ", only " + std::to_string(in.left()) + " are left");
  w.centroids.resize(static_cast<std::size_t>(k));
  std::memcpy(w.centroids.data(), in.take(4 * k, "the centroids"), static_cast<std::size_t>(4 * k));
  size.codebooks += 4 * k;

  w.gap_bits = static_cast<int>(in.uint(1, "gap_bits"));
  if (w.gap_bits < 1 || w.gap_bits > 8)
    fail(in.where, "gap_bits " + std::to_string(w.gap_bits) + " is not in [1, 8]");
  const uint64_t g = uint64_t{1} << w.gap_bits;

  const uint64_t entries = in.uint(4, "the entry count");
  const uint64_t gap_bits = in.uint(4, "the gap stream's bit count");
  const uint64_t sym_bits = in.uint(4, "the symbol stream's bit count");
  if (entries > static_cast<uint64_t>(n))
    fail(in.where, std::to_string(entries) + " entries cannot fit in a weight of " +
                       std::to_string(n) + " values (shape " + shape_str(w.shape) + ")");
  // Every code is at least one bit long.
  if (entries > gap_bits || entries > sym_bits || (entries == 0 && (gap_bits | sym_bits) != 0))
    fail(in.where, std::to_string(entries) + " entries do not match the streams' bit counts (" +
                       std::to_string(gap_bits) + " gap bits, " + std::to_string(sym_bits) +
                       " symbol bits; each code takes 1 to " + std::to_string(kMaxCodeLength) +
                       " bits)");

  // The code lengths: G + k + 1 of them, 5 bits each.
  const uint64_t table_bytes = bytes_of_bits(kLengthBits * (g + k + 1));
  const uint8_t* table = in.take(table_bytes, "the code lengths");
  size.code_tables += table_bytes;
  BitReader lengths_in(table, static_cast<std::size_t>(table_bytes));
  w.gap_lengths.resize(static_cast<std::size_t>(g));
  for (uint8_t& len : w.gap_lengths)
    len = static_cast<uint8_t>(lengths_in.read(kLengthBits, "a gap code length"));
  w.symbol_lengths.resize(static_cast<std::size_t>(k + 1));
  for (uint8_t& len : w.symbol_lengths)
    len = static_cast<uint8_t>(lengths_in.read(kLengthBits, "a symbol code length"));
  if (lengths_in.read(static_cast<int>(lengths_in.remaining()), "the padding") != 0)
    fail(in.where, "the padding bits after the code lengths are not 0");
  check_lengths(w.gap_lengths, static_cast<std::size_t>(entries), in.where, "gap stream");
  check_lengths(w.symbol_lengths, static_cast<std::size_t>(entries), in.where, "symbol stream");

  // The two streams, each decoding to exactly `entries` symbols.
  struct Stream {
    const char* name;
    uint64_t bits;
    const std::vector<uint8_t>* lengths;
    std::vector<int32_t>* out;
    uint64_t* size;
  };
  const Stream streams[2] = {{"gap stream", gap_bits, &w.gap_lengths, &w.gaps, &size.gap_stream},
                             {"symbol stream", sym_bits, &w.symbol_lengths, &w.symbols,
                              &size.symbol_stream}};
  for (const Stream& s : streams) {
    const uint64_t nbytes = bytes_of_bits(s.bits);
    const uint8_t* data = in.take(nbytes, std::string("the ") + s.name);
    *s.size += nbytes;
    if (s.bits % 8 != 0 && (data[nbytes - 1] & ((1u << (8 - s.bits % 8)) - 1)) != 0)
      fail(in.where, std::string("the padding bits at the end of the ") + s.name + " are not 0");
    if (entries == 0) continue;
    try {
      *s.out = huffman_decode(data, static_cast<std::size_t>(nbytes), s.bits, *s.lengths,
                              static_cast<std::size_t>(entries));
    } catch (const Error& e) {
      fail(in.where, std::string(s.name) + ": " + e.what());
    }
  }
  check_entries(w, in.where);
  return w;
}

std::pair<std::string, Tensor> read_raw(In& in, const std::string& file,
                                        std::set<std::string>& seen, DeepCompressedSize& size) {
  in.where = file + ": raw tensor at offset " + std::to_string(in.pos);
  std::string name = in.str("the tensor name");
  in.where = file + ": raw tensor '" + name + "'";
  if (name.empty()) fail(in.where, "the name is empty");
  if (!seen.insert(name).second) fail(in.where, "the name is used twice");
  const uint64_t code = in.uint(1, "the dtype");
  DType dtype;
  if (code == 0) dtype = DType::Float32;
  else if (code == 1) dtype = DType::Int8;
  else if (code == 2) dtype = DType::Int32;
  else
    fail(in.where,
         "dtype code " + std::to_string(code) + " is not 0 (float32), 1 (int8) or 2 (int32)");
  const Shape shape = in.shape();
  const int64_t n = capped_numel(shape, kMaxShapeProduct);
  if (n < 0)
    fail(in.where, "shape " + shape_str(shape) + " is absurd: its sizes multiply past 2^40");
  // The values must be in the file: this bounds numel before the tensor is allocated.
  const uint64_t esize = dtype_size(dtype);
  if (static_cast<uint64_t>(n) > in.left() / esize)
    fail(in.where, "truncated: " + std::string(dtype_name(dtype)) + " " + shape_str(shape) +
                       " needs " + std::to_string(static_cast<uint64_t>(n) * esize) +
                       " bytes at offset " + std::to_string(in.pos) + ", only " +
                       std::to_string(in.left()) + " are left");
  Tensor t(shape, dtype);
  const uint64_t nbytes = static_cast<uint64_t>(n) * esize;
  const uint8_t* p = in.take(nbytes, "the values");
  if (nbytes > 0) std::memcpy(t.raw(), p, static_cast<std::size_t>(nbytes));
  size.raw += nbytes;
  return {std::move(name), std::move(t)};
}

DeepCompressedModel parse(const std::string& path, DeepCompressedSize& size) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read (" + ec.message() + ")");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(file_size));
  if (file_size > 0)
    f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(file_size));
  if (!f) fail(path, "cannot read its " + std::to_string(file_size) + " bytes");

  size = DeepCompressedSize{};
  size.total = file_size;
  In in{bytes, path};
  const uint8_t* magic = in.take(4, "the magic");
  if (std::memcmp(magic, kMagic, 4) != 0)
    fail(path, "not a Deep Compression file: the magic is not \"EFDC\"");
  const uint64_t version = in.uint(1, "the version");
  if (version != kVersion)
    fail(path, "version " + std::to_string(version) + " is not supported (this reader knows " +
                   std::to_string(kVersion) + ")");

  DeepCompressedModel m;
  const uint64_t n_meta = in.uint(2, "the metadata count");
  for (uint64_t i = 0; i < n_meta; ++i) {
    in.where = path + ": metadata entry " + std::to_string(i);
    std::string key = in.str("the key");
    std::string value = in.str("the value");
    if (!m.metadata.empty() && !(m.metadata.rbegin()->first < key))
      fail(in.where, "key '" + key + "' is not after '" + m.metadata.rbegin()->first +
                         "': keys must be unique and in increasing order");
    m.metadata.emplace_hint(m.metadata.end(), std::move(key), std::move(value));
  }

  std::set<std::string> seen;
  in.where = path;
  const uint64_t n_weights = in.uint(2, "the weight count");
  // A weight takes at least 24 bytes (empty name, no dimension, k = 1): bound the count first.
  if (n_weights > in.left() / 24)
    fail(path, std::to_string(n_weights) + " weights cannot fit in the " +
                   std::to_string(in.left()) + " bytes left");
  m.weights.reserve(static_cast<std::size_t>(n_weights));
  for (uint64_t i = 0; i < n_weights; ++i) m.weights.push_back(read_weight(in, path, seen, size));

  in.where = path;
  const uint64_t n_raw = in.uint(2, "the raw tensor count");
  // A raw tensor takes at least 4 bytes (name length, dtype, number of dimensions).
  if (n_raw > in.left() / 4)
    fail(path, std::to_string(n_raw) + " raw tensors cannot fit in the " +
                   std::to_string(in.left()) + " bytes left");
  m.raw.reserve(static_cast<std::size_t>(n_raw));
  for (uint64_t i = 0; i < n_raw; ++i) m.raw.push_back(read_raw(in, path, seen, size));

  if (in.left() != 0)
    fail(path, std::to_string(in.left()) + " bytes after the last raw tensor (offset " +
                   std::to_string(in.pos) + " of " + std::to_string(file_size) + ")");
  size.header = size.total - size.codebooks - size.code_tables - size.gap_stream -
                size.symbol_stream - size.raw;
  return m;
}

}  // namespace

Tensor decode_weight(const CompressedWeight& w) {
  const std::string where = "decode_weight('" + w.name + "')";
  check_entries(w, where);
  Tensor t(w.shape);
  float* out = t.data();
  const std::size_t k = w.centroids.size();
  int64_t last = -1;
  for (std::size_t i = 0; i < w.gaps.size(); ++i) {
    last += w.gaps[i] + 1;
    const std::size_t sym = static_cast<std::size_t>(w.symbols[i]);
    // The filler (symbol k) stores a zero, which the tensor already holds.
    if (sym < k) out[last] = w.centroids[sym];
  }
  return t;
}

void save_deep_compressed(const std::string& path, const DeepCompressedModel& m) {
  const std::string prefix = "save_deep_compressed(" + path + ")";
  Out out;
  out.raw(kMagic, 4);
  out.u8(kVersion);
  if (m.metadata.size() > 0xFFFF)
    fail(prefix, std::to_string(m.metadata.size()) +
                     " metadata entries are more than the format's 65535");
  out.u16(m.metadata.size());
  for (const auto& [key, value] : m.metadata) {
    check_string(key, prefix + ": metadata key '" + key.substr(0, 40) + "'", "the key");
    check_string(value, prefix + ": metadata '" + key + "'", "the value");
    out.str(key);
    out.str(value);
  }

  std::set<std::string> seen;
  if (m.weights.size() > 0xFFFF || m.raw.size() > 0xFFFF)
    fail(prefix, std::to_string(m.weights.size()) + " weights and " +
                     std::to_string(m.raw.size()) +
                     " raw tensors: the format holds at most 65535 of each");
  out.u16(m.weights.size());
  for (const CompressedWeight& w : m.weights) {
    const std::string where = weight_where(prefix, w.name);
    check_name(w.name, seen, where);
    check_shape_fits(w.shape, where);
    check_entries(w, where);
    const std::size_t k = w.centroids.size();
    const std::size_t g = std::size_t{1} << w.gap_bits;
    if (w.gap_lengths.size() != g)
      fail(where, std::to_string(w.gap_lengths.size()) + " gap code lengths, expected G = 2^" +
                      std::to_string(w.gap_bits) + " = " + std::to_string(g));
    if (w.symbol_lengths.size() != k + 1)
      fail(where, std::to_string(w.symbol_lengths.size()) +
                      " symbol code lengths, expected k + 1 = " + std::to_string(k + 1));
    if (k > 0xFFFFFFFFu - 1) fail(where, "k = " + std::to_string(k) + " is too large");
    const std::size_t entries = w.gaps.size();
    check_lengths(w.gap_lengths, entries, where, "gap stream");
    check_lengths(w.symbol_lengths, entries, where, "symbol stream");

    uint64_t gap_bits = 0, sym_bits = 0;
    std::vector<uint8_t> gap_stream, sym_stream;
    if (entries > 0) {
      try {
        gap_stream = huffman_encode(w.gaps, w.gap_lengths, &gap_bits);
      } catch (const Error& e) {
        fail(where, std::string("gap stream: ") + e.what());
      }
      try {
        sym_stream = huffman_encode(w.symbols, w.symbol_lengths, &sym_bits);
      } catch (const Error& e) {
        fail(where, std::string("symbol stream: ") + e.what());
      }
    }
    if (gap_bits > 0xFFFFFFFFu || sym_bits > 0xFFFFFFFFu)
      fail(where, "a coded stream has 2^32 bits or more");

    out.str(w.name);
    out.shape(w.shape);
    out.u32(k);
    out.raw(w.centroids.data(), 4 * k);
    out.u8(static_cast<uint64_t>(w.gap_bits));
    out.u32(entries);
    out.u32(gap_bits);
    out.u32(sym_bits);
    BitWriter table;
    for (uint8_t len : w.gap_lengths) table.write(len, kLengthBits);
    for (uint8_t len : w.symbol_lengths) table.write(len, kLengthBits);
    const std::vector<uint8_t> table_bytes = table.bytes();
    out.raw(table_bytes.data(), table_bytes.size());
    out.raw(gap_stream.data(), gap_stream.size());
    out.raw(sym_stream.data(), sym_stream.size());
  }

  out.u16(m.raw.size());
  for (const auto& [name, t] : m.raw) {
    const std::string where = prefix + ": raw tensor '" + name + "'";
    check_name(name, seen, where);
    check_shape_fits(t.shape(), where);
    out.str(name);
    out.u8(dtype_code(t.dtype()));
    out.shape(t.shape());
    out.raw(t.raw(), t.nbytes());
  }
  detail::write_file_atomically(path, {{out.bytes.data(), out.bytes.size()}});
}

DeepCompressedModel load_deep_compressed(const std::string& path) {
  DeepCompressedSize size;
  return parse(path, size);
}

DeepCompressedSize deep_compressed_size(const std::string& path) {
  DeepCompressedSize size;
  parse(path, size);
  return size;
}

void load_deep_compressed_into(const std::string& path, Module& model) {
  DeepCompressedModel m = load_deep_compressed(path);
  std::map<std::string, Tensor*> targets;
  for (const auto& p : model.named_parameters()) targets[p.name] = &p.param->value;
  for (const auto& b : model.named_buffers()) targets[b.name] = b.tensor;
  std::map<std::string, bool> done;
  auto place = [&](const std::string& name, const Tensor& value) {
    auto it = targets.find(name);
    EFFML_CHECK(it != targets.end(), path << ": tensor '" << name << "' is not a parameter or "
                                          << "buffer of the model");
    EFFML_CHECK(!done[name], path << ": tensor '" << name << "' is given twice");
    EFFML_CHECK(value.dtype() == DType::Float32 && value.shape() == it->second->shape(),
                path << ": tensor '" << name << "' is " << dtype_name(value.dtype()) << " "
                     << value.shape_str() << ", the model's is float32 "
                     << it->second->shape_str());
    it->second->copy_(value);
    done[name] = true;
  };
  for (const CompressedWeight& w : m.weights) place(w.name, decode_weight(w));
  for (const auto& [name, t] : m.raw) place(name, t);
  for (const auto& [name, t] : targets) {
    EFFML_CHECK(done[name], path << ": the model's tensor '" << name << "' is missing");
  }
}

}  // namespace effml
