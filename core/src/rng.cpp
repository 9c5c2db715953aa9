#include "effml/rng.h"

#include <cmath>

namespace effml {

uint64_t Rng::randint(uint64_t n) {
  // Rejection sampling: unbiased for any n (a plain modulo favours small values).
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r = engine_();
  while (r >= limit) r = engine_();
  return r % n;
}

float Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // u1 in (0, 1] so that log(u1) is finite.
  const double u1 = (static_cast<double>(engine_() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  const double u2 = static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = static_cast<float>(r * std::sin(theta));
  has_spare_ = true;
  return static_cast<float>(r * std::cos(theta));
}

}  // namespace effml
