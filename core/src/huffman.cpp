#include "effml/huffman.h"

#include <array>

#include "effml/error.h"

namespace effml {

namespace {

// Per code length L in [1, kMaxCodeLength]: how many symbols have it, the first canonical code of
// that length, and where its symbols start in the list of used symbols sorted by (length, index).
struct CanonicalTable {
  std::array<uint32_t, kMaxCodeLength + 1> count{};
  std::array<uint32_t, kMaxCodeLength + 1> first{};
  std::array<uint32_t, kMaxCodeLength + 1> offset{};
  std::vector<int32_t> sorted;  // used symbols by (length, index)
  int max_length = 0;
};

// Checks the lengths (each <= kMaxCodeLength, at least one used, Kraft sum <= 1) and counts them.
void count_lengths(const std::vector<uint8_t>& lengths,
                   std::array<uint32_t, kMaxCodeLength + 1>& count, const char* who) {
  count.fill(0);
  // The Kraft sum in units of 2^-kMaxCodeLength: exact, and far from overflowing a uint64 since
  // each term is at most 2^23 and an alphabet has fewer than 2^32 symbols.
  uint64_t kraft = 0;
  std::size_t used = 0;
  for (std::size_t s = 0; s < lengths.size(); ++s) {
    const int len = lengths[s];
    EFFML_CHECK(len <= kMaxCodeLength, who << ": symbol " << s << " has code length " << len
                                           << ", more than the maximum " << kMaxCodeLength);
    if (len == 0) continue;
    ++count[static_cast<std::size_t>(len)];
    kraft += uint64_t{1} << (kMaxCodeLength - len);
    ++used;
  }
  EFFML_CHECK(used > 0, who << ": no used symbol: all " << lengths.size()
                            << " code lengths are 0");
  EFFML_CHECK(kraft <= (uint64_t{1} << kMaxCodeLength),
              who << ": the code lengths are not a prefix code: their Kraft sum "
                  << "sum 2^-length = "
                  << static_cast<double>(kraft) / static_cast<double>(uint64_t{1} << kMaxCodeLength)
                  << " exceeds 1");
}

// The first canonical code of each length (RFC 1951, 3.2.2, step 2).
std::array<uint32_t, kMaxCodeLength + 1> first_codes(
    const std::array<uint32_t, kMaxCodeLength + 1>& count) {
  std::array<uint32_t, kMaxCodeLength + 1> first{};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxCodeLength; ++len) {
    // count[0] is 0 here (unused symbols are not counted), so the first length starts at code 0.
    code = (code + count[static_cast<std::size_t>(len - 1)]) << 1;
    first[static_cast<std::size_t>(len)] = code;
  }
  return first;
}

CanonicalTable make_table(const std::vector<uint8_t>& lengths, const char* who) {
  CanonicalTable t;
  count_lengths(lengths, t.count, who);
  t.first = first_codes(t.count);
  uint32_t at = 0;
  for (int len = 1; len <= kMaxCodeLength; ++len) {
    t.offset[static_cast<std::size_t>(len)] = at;
    at += t.count[static_cast<std::size_t>(len)];
    if (t.count[static_cast<std::size_t>(len)] > 0) t.max_length = len;
  }
  t.sorted.resize(at);
  std::array<uint32_t, kMaxCodeLength + 1> next = t.offset;
  for (std::size_t s = 0; s < lengths.size(); ++s) {
    const std::size_t len = lengths[s];
    if (len > 0) t.sorted[next[len]++] = static_cast<int32_t>(s);
  }
  return t;
}

}  // namespace

std::vector<uint32_t> canonical_codes(const std::vector<uint8_t>& lengths) {
  std::array<uint32_t, kMaxCodeLength + 1> count{};
  count_lengths(lengths, count, "canonical_codes");
  std::array<uint32_t, kMaxCodeLength + 1> next = first_codes(count);
  // Symbols in index order take the next code of their length (RFC 1951, 3.2.2, step 3).
  std::vector<uint32_t> codes(lengths.size(), 0);
  for (std::size_t s = 0; s < lengths.size(); ++s) {
    const std::size_t len = lengths[s];
    if (len > 0) codes[s] = next[len]++;
  }
  return codes;
}

// ---- bit streams ------------------------------------------------------------------------------

void BitWriter::write(uint32_t code, int len) {
  EFFML_CHECK(len >= 0 && len <= 32, "BitWriter::write: length " << len << " is not in [0, 32]");
  const uint64_t mask = (uint64_t{1} << len) - 1;
  // pending_ holds fewer than 8 bits, so at most 39 are in flight here.
  pending_ = (pending_ << len) | (code & mask);
  pending_bits_ += len;
  while (pending_bits_ >= 8) {
    pending_bits_ -= 8;
    full_.push_back(static_cast<uint8_t>(pending_ >> pending_bits_));
  }
  pending_ &= (uint64_t{1} << pending_bits_) - 1;
}

std::vector<uint8_t> BitWriter::bytes() const {
  std::vector<uint8_t> out = full_;
  if (pending_bits_ > 0) out.push_back(static_cast<uint8_t>(pending_ << (8 - pending_bits_)));
  return out;
}

BitReader::BitReader(const uint8_t* data, std::size_t size, uint64_t bit_count)
    : data_(data), bits_(bit_count == UINT64_MAX ? 8 * static_cast<uint64_t>(size) : bit_count) {
  EFFML_CHECK(bits_ <= 8 * static_cast<uint64_t>(size),
              "BitReader: " << bits_ << " bits do not fit in " << size << " bytes");
}

uint32_t BitReader::read(int len, const char* what) {
  EFFML_CHECK(len >= 0 && len <= 32,
              "BitReader: reading " << what << ": length " << len << " is not in [0, 32]");
  EFFML_CHECK(static_cast<uint64_t>(len) <= remaining(),
              "BitReader: reading " << what << " needs " << len << " bits at bit " << pos_
                                    << ", but the stream has " << bits_ << " bits ("
                                    << remaining() << " left)");
  uint32_t v = 0;
  for (int i = 0; i < len; ++i, ++pos_)
    v = (v << 1) | ((data_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1u);
  return v;
}

// ---- coding -----------------------------------------------------------------------------------

std::vector<uint8_t> huffman_encode(const std::vector<int32_t>& symbols,
                                    const std::vector<uint8_t>& lengths, uint64_t* bits) {
  const std::vector<uint32_t> codes = canonical_codes(lengths);
  const int64_t m = static_cast<int64_t>(lengths.size());
  BitWriter w;
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    const int32_t s = symbols[i];
    EFFML_CHECK(s >= 0 && s < m, "huffman_encode: symbol " << s << " at position " << i
                                     << " is outside the alphabet [0, " << m << ")");
    const int len = lengths[static_cast<std::size_t>(s)];
    EFFML_CHECK(len > 0, "huffman_encode: symbol " << s << " at position " << i
                             << " has code length 0 (no code): an unused symbol cannot be coded");
    w.write(codes[static_cast<std::size_t>(s)], len);
  }
  if (bits) *bits = w.bit_count();
  return w.bytes();
}

std::vector<int32_t> huffman_decode(const uint8_t* data, std::size_t size, uint64_t bit_count,
                                    const std::vector<uint8_t>& lengths, std::size_t count) {
  EFFML_CHECK(bit_count <= 8 * static_cast<uint64_t>(size),
              "huffman_decode: " << bit_count << " bits do not fit in " << size << " bytes");
  // Every code is at least one bit long, so this bounds the allocation by the input's size.
  EFFML_CHECK(count <= bit_count, "huffman_decode: " << count << " symbols cannot fit in "
                                                     << bit_count << " bits");
  const CanonicalTable t = make_table(lengths, "huffman_decode");
  std::vector<int32_t> out;
  out.reserve(count);
  uint64_t pos = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const uint64_t start = pos;
    uint32_t code = 0;
    for (int len = 1;; ++len) {
      EFFML_CHECK(pos < bit_count, "huffman_decode: the stream ends inside symbol "
                                       << i << " of " << count << " (it starts at bit " << start
                                       << ", the stream holds " << bit_count << " bits)");
      code = (code << 1) | ((data[pos >> 3] >> (7 - (pos & 7))) & 1u);
      ++pos;
      // Canonical codes of one length are consecutive: code - first is the rank within it.
      // An unmatched prefix is never below first[len], so the subtraction does not wrap.
      const uint32_t rank = code - t.first[static_cast<std::size_t>(len)];
      if (rank < t.count[static_cast<std::size_t>(len)]) {
        out.push_back(t.sorted[t.offset[static_cast<std::size_t>(len)] + rank]);
        break;
      }
      EFFML_CHECK(len < t.max_length,
                  "huffman_decode: the bits at " << start << ".." << pos - 1 << " (symbol " << i
                                                 << " of " << count
                                                 << ") are no code: the stream is corrupt");
    }
  }
  EFFML_CHECK(pos == bit_count, "huffman_decode: " << bit_count - pos << " bits left over after "
                                                   << count << " symbols (they end at bit " << pos
                                                   << " of " << bit_count << ")");
  return out;
}

uint64_t huffman_bits(const std::vector<int64_t>& counts, const std::vector<uint8_t>& lengths) {
  EFFML_CHECK(counts.size() == lengths.size(), "huffman_bits: " << counts.size()
                                                   << " counts but " << lengths.size()
                                                   << " code lengths");
  bool any_length = false;
  for (uint8_t len : lengths) any_length = any_length || len > 0;
  // An empty stream needs no code at all; any other stream needs a valid one.
  if (any_length) canonical_codes(lengths);
  uint64_t total = 0;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    EFFML_CHECK(counts[s] >= 0, "huffman_bits: symbol " << s << " has a negative count "
                                                        << counts[s]);
    EFFML_CHECK(counts[s] == 0 || lengths[s] > 0,
                "huffman_bits: symbol " << s << " occurs " << counts[s]
                                        << " times but has code length 0 (no code)");
    if (counts[s] == 0) continue;
    const uint64_t c = static_cast<uint64_t>(counts[s]);
    EFFML_CHECK(c <= (UINT64_MAX - total) / lengths[s],
                "huffman_bits: the total overflows 64 bits at symbol " << s << " (count "
                                                                       << counts[s] << ")");
    total += c * lengths[s];
  }
  return total;
}

}  // namespace effml
