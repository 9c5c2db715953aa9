/// \file rng.h
/// \brief Rng: the one seeded random source (initialisation, shuffling, dropout, test inputs).
#pragma once

#include <cstdint>
#include <random>

namespace effml {

/// A seeded pseudo-random generator with the same sequence on every platform.
///
/// std::mt19937_64 is specified bit-for-bit by the standard; the float conversions and the
/// Box-Muller normal below are ours, so (unlike std::normal_distribution) they do not vary
/// between standard libraries. Same seed, same numbers.
class Rng {
 public:
  /// A generator seeded with `seed`; the same seed gives the same sequence.
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}
  /// A uniform 64-bit integer.
  uint64_t next_u64() { return engine_(); }
  /// Uniform in [0, 1) with 24 random bits (every float32 step in that range).
  float uniform() { return static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f); }
  /// Uniform in [low, high).
  float uniform(float low, float high) { return low + (high - low) * uniform(); }
  /// Uniform integer in [0, n); n > 0.
  uint64_t randint(uint64_t n);
  /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  float normal();
  /// A new generator whose seed derives from this one's stream (for independent sub-streams).
  Rng split() { return Rng(engine_()); }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace effml
