/// \file huffman.h
/// \brief Canonical Huffman codes: codes from code lengths, bit streams, encoding and decoding.
///
/// A prefix code over an alphabet of \f$ m \f$ symbols is given by its code lengths
/// \f$ \ell_0, \dots, \ell_{m-1} \f$ alone (length 0: the symbol is unused). The codes themselves
/// follow the canonical rule of DEFLATE (RFC 1951, section 3.2.2): the used symbols, sorted by
/// (length, symbol index), get consecutive code values, and the first code of each length is the
/// one after the last code of the previous length, shifted left by the difference in length. A set
/// of lengths is a prefix code exactly when the Kraft sum \f$ \sum_s 2^{-\ell_s} \le 1 \f$.
///
/// Which lengths to use (the Huffman construction from symbol counts) is not here: this file only
/// packs and unpacks symbols with given lengths. Bits are written most significant bit first, as
/// codes are read: the first bit of a stream is bit 7 of byte 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace effml {

/// The longest code length accepted, in bits (a 24-bit code covers alphabets far larger than a
/// codebook or a gap alphabet, and keeps every code in a 32-bit word).
constexpr int kMaxCodeLength = 24;

/// The canonical code of each symbol, given the code lengths (RFC 1951, 3.2.2).
///
/// `codes[s]` holds the `lengths[s]` low bits of symbol s's code (the first bit sent is the most
/// significant of those); unused symbols (length 0) get code 0. RFC 1951's example lengths
/// (3, 3, 3, 3, 3, 2, 4, 4) give 010, 011, 100, 101, 110, 00, 1110, 1111.
/// Incomplete codes (Kraft sum below 1) are allowed: a lone used symbol has length 1, code 0.
/// \throws effml::Error when a length exceeds kMaxCodeLength (naming the symbol and the length),
///         when no symbol is used, or when the Kraft sum exceeds 1 (naming the sum)
std::vector<uint32_t> canonical_codes(const std::vector<uint8_t>& lengths);

/// Appends codes to a growing byte buffer, most significant bit first.
class BitWriter {
 public:
  /// Appends the `len` low bits of `code`, the most significant of them first; `len` in [0, 32].
  void write(uint32_t code, int len);
  /// The bits written so far, the last byte padded with zero bits.
  std::vector<uint8_t> bytes() const;
  /// Number of bits written so far (without the padding).
  uint64_t bit_count() const { return 8 * static_cast<uint64_t>(full_.size()) + pending_bits_; }

 private:
  std::vector<uint8_t> full_;  // completed bytes
  uint64_t pending_ = 0;       // the last pending_bits_ bits written, not yet a whole byte
  int pending_bits_ = 0;       // in [0, 8)
};

/// Reads bits, most significant bit first, from a byte span that it does not own.
class BitReader {
 public:
  /// Reads from `data[0, size)`; only the first `bit_count` bits count as data (at most
  /// 8 * size; the default takes them all).
  /// \throws effml::Error when bit_count exceeds 8 * size
  BitReader(const uint8_t* data, std::size_t size, uint64_t bit_count = UINT64_MAX);
  /// The next `len` bits (`len` in [0, 32]) as an unsigned value, the first bit the most
  /// significant. `what` names the field being read, for the message.
  /// \throws effml::Error naming `what` and the bit position when fewer than `len` bits remain
  uint32_t read(int len, const char* what);
  /// Bits read so far.
  uint64_t position() const { return pos_; }
  /// Bits left before the end (bit_count minus position()).
  uint64_t remaining() const { return bits_ - pos_; }

 private:
  const uint8_t* data_;
  uint64_t bits_;
  uint64_t pos_ = 0;
};

/// Huffman-codes a symbol stream: the canonical code of every symbol, in order, packed MSB first.
///
/// \param symbols each in [0, lengths.size()) with a non-zero length
/// \param lengths the code lengths (checked as canonical_codes does)
/// \param bits if not null, receives the number of bits written (the last byte is zero-padded)
/// \return ceil(bits / 8) bytes
/// \throws effml::Error naming the position and the symbol when a symbol is outside the alphabet
///         or has length 0 (no code), or as canonical_codes for invalid lengths
std::vector<uint8_t> huffman_encode(const std::vector<int32_t>& symbols,
                                    const std::vector<uint8_t>& lengths,
                                    uint64_t* bits = nullptr);

/// Decodes exactly `count` symbols from the first `bit_count` bits of `data[0, size)`.
///
/// Strict: every one of the `bit_count` bits must belong to one of the `count` codes (the padding
/// of the last byte lies beyond `bit_count` and is not looked at). Decoding walks the canonical
/// code length by length (first code and count per length), so it costs a few operations per bit
/// and allocates only the output.
/// \throws effml::Error when bit_count exceeds 8 * size or count exceeds bit_count, when the stream
///         ends inside a symbol, when a bit pattern is no code (possible with an incomplete code),
///         or when bits are left over after `count` symbols; the message names the symbol index
///         and the bit position
std::vector<int32_t> huffman_decode(const uint8_t* data, std::size_t size, uint64_t bit_count,
                                    const std::vector<uint8_t>& lengths, std::size_t count);

/// The size in bits of a stream in which symbol s occurs `counts[s]` times:
/// \f$ \sum_s \mathrm{counts}_s \, \ell_s \f$.
///
/// `counts` and `lengths` have the same size. Lengths that are all 0 are accepted (cost 0) when
/// every count is 0; otherwise the lengths must be a valid code (as canonical_codes checks).
/// \throws effml::Error when the sizes differ, a count is negative, a symbol with a positive count
///         has length 0 (naming the symbol and its count), or the lengths are invalid
uint64_t huffman_bits(const std::vector<int64_t>& counts, const std::vector<uint8_t>& lengths);

}  // namespace effml
