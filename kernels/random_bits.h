// Counter-based random numbers (splitmix64 hashing of seed and counter): the same bits on
// the CPU and the GPU, so dropout masks and initialisations match across backends.
#pragma once
#include <cmath>
#include <cstdint>
#include "core/layout.h"

namespace retort {

RETORT_HD inline uint64_t hash64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + counter + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Uniform in [0, 1) with 53 random bits.
RETORT_HD inline double uniform01(uint64_t seed, uint64_t counter) {
  return double(hash64(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}
// Standard normal by Box-Muller on counters 2c and 2c+1.
RETORT_HD inline double normal01(uint64_t seed, uint64_t counter) {
  double u1 = uniform01(seed, 2 * counter);
  double u2 = uniform01(seed, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);
}

}  // namespace retort
