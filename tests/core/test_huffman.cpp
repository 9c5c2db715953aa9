// Canonical Huffman codes: RFC 1951's golden codes, bit streams, encode/decode round trips with
// lengths from a real Huffman construction, and every error the coder raises.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <queue>

#include "effml/error.h"
#include "effml/huffman.h"
#include "huffman_lengths.h"
#include "effml/rng.h"
#include "error_checks.h"

using namespace effml;
using Catch::Contains;
using effml::testing::error_of;
using effml::testing::huffman_lengths;

namespace {


std::string bits_of(uint32_t code, int len) {
  std::string s;
  for (int i = len - 1; i >= 0; --i) s += ((code >> i) & 1u) ? '1' : '0';
  return s;
}

// A stream of `n` symbols over `m` with a skewed distribution: symbol s has weight ~ 1 / (s+1)^a.
std::vector<int32_t> skewed_stream(Rng& rng, std::size_t n, int m, double a) {
  std::vector<double> cdf(static_cast<std::size_t>(m));
  double total = 0;
  for (int s = 0; s < m; ++s) {
    total += 1.0 / std::pow(s + 1.0, a);
    cdf[static_cast<std::size_t>(s)] = total;
  }
  std::vector<int32_t> out(n);
  for (int32_t& v : out) {
    const double u = rng.uniform() * total;
    v = static_cast<int32_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    v = std::min(v, m - 1);
  }
  return out;
}

std::vector<int64_t> counts_of(const std::vector<int32_t>& symbols, std::size_t m) {
  std::vector<int64_t> c(m, 0);
  for (int32_t s : symbols) ++c[static_cast<std::size_t>(s)];
  return c;
}

}  // namespace

TEST_CASE("huffman: RFC 1951's example lengths give its canonical codes", "[huffman]") {
  // RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for the symbols A..H.
  const std::vector<uint32_t> codes = canonical_codes({3, 3, 3, 3, 3, 2, 4, 4});
  const std::vector<uint8_t> lengths{3, 3, 3, 3, 3, 2, 4, 4};
  const std::vector<std::string> expected{"010", "011", "100", "101", "110", "00", "1110", "1111"};
  REQUIRE(codes.size() == 8);
  for (std::size_t s = 0; s < 8; ++s) CHECK(bits_of(codes[s], lengths[s]) == expected[s]);
}

TEST_CASE("huffman: DEFLATE's fixed literal/length code", "[huffman]") {
  // RFC 1951, 3.2.6: literals 0-143 have 8 bits from 00110000, 144-255 9 bits from 110010000,
  // 256-279 7 bits from 0000000, 280-287 8 bits from 11000000.
  std::vector<uint8_t> lengths(288);
  for (int s = 0; s < 288; ++s)
    lengths[static_cast<std::size_t>(s)] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
  const std::vector<uint32_t> codes = canonical_codes(lengths);
  CHECK(bits_of(codes[0], 8) == "00110000");
  CHECK(bits_of(codes[143], 8) == "10111111");
  CHECK(bits_of(codes[144], 9) == "110010000");
  CHECK(bits_of(codes[255], 9) == "111111111");
  CHECK(bits_of(codes[256], 7) == "0000000");
  CHECK(bits_of(codes[279], 7) == "0010111");
  CHECK(bits_of(codes[280], 8) == "11000000");
  CHECK(bits_of(codes[287], 8) == "11000111");
}

TEST_CASE("huffman: unused symbols, incomplete codes and the longest codes", "[huffman]") {
  // Unused symbols get no code and do not shift the others.
  const std::vector<uint32_t> codes = canonical_codes({0, 2, 0, 1, 2});
  CHECK(codes == std::vector<uint32_t>{0, 0b10, 0, 0b0, 0b11});
  // A lone symbol has the one-bit code 0 (Kraft sum 1/2: incomplete, allowed).
  CHECK(canonical_codes({0, 0, 1}) == std::vector<uint32_t>{0, 0, 0});
  // Lengths 1, 2, ..., 23, 24, 24 are complete; the two 24-bit codes are all ones but the last bit.
  std::vector<uint8_t> deep;
  for (int len = 1; len <= 24; ++len) deep.push_back(static_cast<uint8_t>(len));
  deep.push_back(24);
  const std::vector<uint32_t> d = canonical_codes(deep);
  CHECK(d[0] == 0u);
  CHECK(d[23] == 0xFFFFFEu);
  CHECK(d[24] == 0xFFFFFFu);
}

TEST_CASE("huffman: invalid code lengths are refused with the symbol, length or Kraft sum",
          "[huffman]") {
  CHECK_THROWS_WITH(canonical_codes({1, 1, 1}),
                    Contains("Kraft sum") && Contains("1.5") && Contains("exceeds 1"));
  CHECK_THROWS_WITH(canonical_codes({2, 2, 2, 2, 3}), Contains("Kraft sum") && Contains("1.125"));
  CHECK_THROWS_WITH(canonical_codes({1, 2, 25}),
                    Contains("symbol 2 has code length 25") && Contains("maximum 24"));
  CHECK_THROWS_WITH(canonical_codes({0, 0, 0}), Contains("no used symbol"));
  CHECK_THROWS_WITH(canonical_codes({}), Contains("no used symbol"));
  // The same checks guard encoding, decoding and huffman_bits.
  CHECK_THROWS_WITH(huffman_encode({0}, {1, 1, 1}), Contains("Kraft sum"));
  const uint8_t byte = 0;
  CHECK_THROWS_WITH(huffman_decode(&byte, 1, 1, {1, 1, 1}, 1), Contains("Kraft sum"));
  CHECK_THROWS_WITH(huffman_bits({1, 1, 0}, {1, 1, 30}), Contains("symbol 2 has code length 30"));
}

TEST_CASE("huffman: BitWriter and BitReader, most significant bit first", "[huffman]") {
  BitWriter w;
  CHECK(w.bit_count() == 0);
  CHECK(w.bytes().empty());
  w.write(0b101, 3);
  w.write(0b1, 1);
  w.write(0xABCD, 16);
  w.write(0x7, 0);  // nothing
  CHECK(w.bit_count() == 20);
  // 1011 1010 | 1011 1100 | 1101 (0000 padding)
  CHECK(w.bytes() == std::vector<uint8_t>{0xBA, 0xBC, 0xD0});
  w.write(0xDEADBEEF, 32);
  w.write(0xFF, 2);  // only the two low bits
  CHECK(w.bit_count() == 54);
  const std::vector<uint8_t> bytes = w.bytes();
  REQUIRE(bytes.size() == 7);

  BitReader r(bytes.data(), bytes.size(), w.bit_count());
  CHECK(r.read(3, "a") == 0b101u);
  CHECK(r.read(1, "b") == 1u);
  CHECK(r.read(16, "c") == 0xABCDu);
  CHECK(r.read(0, "nothing") == 0u);
  CHECK(r.read(32, "d") == 0xDEADBEEFu);
  CHECK(r.remaining() == 2);
  CHECK_THROWS_WITH(r.read(3, "the trailer"),
                    Contains("reading the trailer needs 3 bits at bit 52") && Contains("2 left"));
  CHECK(r.read(2, "e") == 0b11u);
  CHECK(r.position() == 54);
  CHECK_THROWS_WITH(w.write(0, 33), Contains("33"));
  CHECK_THROWS_WITH(BitReader(bytes.data(), 1, 9), Contains("9 bits do not fit in 1 bytes"));
}

TEST_CASE("huffman: encoding packs the canonical codes", "[huffman]") {
  const std::vector<uint8_t> lengths{3, 3, 3, 3, 3, 2, 4, 4};
  uint64_t bits = 0;
  // F, A, H = 00 010 1111 -> 0001 0111 | 1(000 0000)
  CHECK(huffman_encode({5, 0, 7}, lengths, &bits) == std::vector<uint8_t>{0x17, 0x80});
  CHECK(bits == 9);
  CHECK(huffman_decode(std::vector<uint8_t>{0x17, 0x80}.data(), 2, 9, lengths, 3) ==
        std::vector<int32_t>{5, 0, 7});
  // An empty stream is no bytes.
  CHECK(huffman_encode({}, lengths, &bits).empty());
  CHECK(bits == 0);
  CHECK(huffman_decode(nullptr, 0, 0, lengths, 0).empty());
}

TEST_CASE("huffman: round trips of random streams over random alphabets", "[huffman]") {
  Rng rng(20160301);
  for (int trial = 0; trial < 200; ++trial) {
    const int m = 1 + static_cast<int>(rng.randint(trial % 4 == 0 ? 600 : 40));
    const std::size_t n = 1 + rng.randint(4000);
    const double skew = 0.5 + 2.5 * rng.uniform();
    const std::vector<int32_t> symbols = skewed_stream(rng, n, m, skew);
    const std::vector<int64_t> counts = counts_of(symbols, static_cast<std::size_t>(m));
    const std::vector<uint8_t> lengths = huffman_lengths(counts);
    INFO("trial " << trial << ": alphabet " << m << ", " << n << " symbols, skew " << skew);
    uint64_t bits = 0;
    const std::vector<uint8_t> bytes = huffman_encode(symbols, lengths, &bits);
    CHECK(bits == huffman_bits(counts, lengths));
    CHECK(bytes.size() == (bits + 7) / 8);
    const std::vector<int32_t> back = huffman_decode(bytes.data(), bytes.size(), bits, lengths, n);
    CHECK(back == symbols);
  }
}

TEST_CASE("huffman: codes of 24 bits round trip", "[huffman]") {
  // Lengths 1, 2, ..., 24, 24: a complete code as deep as the format allows.
  std::vector<uint8_t> deep;
  for (int len = 1; len <= 24; ++len) deep.push_back(static_cast<uint8_t>(len));
  deep.push_back(24);
  std::vector<int32_t> symbols;
  for (int32_t s = 24; s >= 0; --s)
    for (int r = 0; r < 3; ++r) symbols.push_back(s);
  uint64_t bits = 0;
  const std::vector<uint8_t> bytes = huffman_encode(symbols, deep, &bits);
  CHECK(bits == 3 * (24 + 300));  // 3 * (1 + 2 + ... + 24 + 24)
  CHECK(huffman_decode(bytes.data(), bytes.size(), bits, deep, symbols.size()) == symbols);

  // Fibonacci counts make plain Huffman codes as deep as the alphabet (39 bits here); the
  // test's builder flattens them to at most 24 bits, and the result must round trip.
  std::vector<int64_t> counts{1, 1};
  while (counts.size() < 40)
    counts.push_back(counts[counts.size() - 1] + counts[counts.size() - 2]);
  const std::vector<uint8_t> plain = huffman_lengths(counts, 64);
  CHECK(*std::max_element(plain.begin(), plain.end()) == 39);
  const std::vector<uint8_t> limited = huffman_lengths(counts, 24);
  CHECK(*std::max_element(limited.begin(), limited.end()) <= 24);
  symbols.clear();
  for (int32_t s = 0; s < 40; ++s) symbols.push_back(s);
  const std::vector<uint8_t> coded = huffman_encode(symbols, limited, &bits);
  CHECK(huffman_decode(coded.data(), coded.size(), bits, limited, symbols.size()) == symbols);
}

TEST_CASE("huffman: a million symbols decode", "[huffman]") {
  // Not timed here. Measured on the development machine (Release build): 10^6 symbols at
  // 3.9 bits each encode in about 6 ms and decode in about 12 ms.
  Rng rng(7);
  const std::vector<int32_t> symbols = skewed_stream(rng, 1000000, 33, 1.2);
  const std::vector<uint8_t> lengths = huffman_lengths(counts_of(symbols, 33));
  uint64_t bits = 0;
  const std::vector<uint8_t> bytes = huffman_encode(symbols, lengths, &bits);
  CHECK(huffman_decode(bytes.data(), bytes.size(), bits, lengths, symbols.size()) == symbols);
}

TEST_CASE("huffman: encoding refuses symbols without a code", "[huffman]") {
  const std::vector<uint8_t> lengths{1, 0, 1};
  CHECK_THROWS_WITH(huffman_encode({0, 2, 2, 1}, lengths),
                    Contains("symbol 1 at position 3") && Contains("code length 0"));
  CHECK_THROWS_WITH(huffman_encode({0, 3}, lengths),
                    Contains("symbol 3 at position 1") && Contains("outside the alphabet [0, 3)"));
  CHECK_THROWS_WITH(huffman_encode({-1}, lengths), Contains("symbol -1 at position 0"));
}

TEST_CASE("huffman: decoding refuses corrupt streams", "[huffman]") {
  const std::vector<uint8_t> lengths{3, 3, 3, 3, 3, 2, 4, 4};  // complete
  const std::vector<uint8_t> ok{0x17, 0x80};                   // 5, 0, 7 in 9 bits
  SECTION("the stream ends inside a symbol") {
    CHECK_THROWS_WITH(huffman_decode(ok.data(), 2, 7, lengths, 3),
                      Contains("ends inside symbol 2 of 3") && Contains("starts at bit 5"));
    CHECK_THROWS_WITH(huffman_decode(ok.data(), 2, 9, lengths, 4),
                      Contains("ends inside symbol 3"));
  }
  SECTION("bits left over after the symbols") {
    CHECK_THROWS_WITH(huffman_decode(ok.data(), 2, 9, lengths, 2),
                      Contains("4 bits left over after 2 symbols"));
  }
  SECTION("sizes that cannot hold the stream") {
    CHECK_THROWS_WITH(huffman_decode(ok.data(), 2, 17, lengths, 3),
                      Contains("17 bits do not fit in 2 bytes"));
    // More symbols than bits: refused before the output is allocated.
    CHECK_THROWS_WITH(huffman_decode(ok.data(), 2, 9, lengths, 1000000000000ull),
                      Contains("1000000000000 symbols cannot fit in 9 bits"));
  }
  SECTION("a bit pattern that is no code (incomplete code)") {
    // Codes 00, 01, 10; the pattern 11 is none.
    const std::vector<uint8_t> three{2, 2, 2};
    const std::vector<uint8_t> bytes{0b00011100};
    CHECK(huffman_decode(bytes.data(), 1, 4, three, 2) == std::vector<int32_t>{0, 1});
    CHECK_THROWS_WITH(huffman_decode(bytes.data(), 1, 6, three, 3),
                      Contains("bits at 4..5 (symbol 2 of 3) are no code"));
    // A lone symbol: 0 is its code, 1 is none.
    const std::vector<uint8_t> lone{0, 1};
    const std::vector<uint8_t> zeros{0x00};
    CHECK(huffman_decode(zeros.data(), 1, 5, lone, 5) == std::vector<int32_t>(5, 1));
    const std::vector<uint8_t> one{0x08};
    CHECK_THROWS_WITH(huffman_decode(one.data(), 1, 5, lone, 5), Contains("bits at 4..4"));
  }
  SECTION("random garbage either decodes or throws effml::Error") {
    Rng rng(99);
    const std::vector<uint8_t> sparse{2, 0, 3, 0, 5, 5};  // Kraft sum 1/4 + 1/8 + 1/16: incomplete
    int decoded = 0, refused = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      std::vector<uint8_t> bytes(1 + rng.randint(16));
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.randint(256));
      const uint64_t bits = rng.randint(8 * bytes.size() + 1);
      const std::size_t count = rng.randint(bits + 1);
      const std::string e =
          error_of([&] { huffman_decode(bytes.data(), bytes.size(), bits, sparse, count); });
      if (e == "(no error)") ++decoded;
      else ++refused;
    }
    CHECK(refused > 0);
    CHECK(decoded > 0);
  }
}

TEST_CASE("huffman: huffman_bits", "[huffman]") {
  CHECK(huffman_bits({3, 1, 0, 2}, {1, 2, 0, 2}) == 3 + 2 + 4);
  CHECK(huffman_bits({0, 0}, {0, 0}) == 0);    // an empty stream needs no code
  CHECK(huffman_bits({0, 0}, {1, 1}) == 0);
  CHECK_THROWS_WITH(huffman_bits({0, 5}, {1, 0}),
                    Contains("symbol 1 occurs 5 times but has code length 0"));
  CHECK_THROWS_WITH(huffman_bits({1, 1}, {0, 0}), Contains("symbol 0 occurs 1 times"));
  CHECK_THROWS_WITH(huffman_bits({1}, {1, 1}), Contains("1 counts but 2 code lengths"));
  CHECK_THROWS_WITH(huffman_bits({-1, 1}, {1, 1}), Contains("negative count -1"));
  CHECK_THROWS_WITH(huffman_bits({1, 1, 1}, {1, 1, 1}), Contains("Kraft sum"));
  CHECK_THROWS_WITH(huffman_bits({INT64_MAX, INT64_MAX, 0}, {2, 2, 1}), Contains("overflows"));
}
