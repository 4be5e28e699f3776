// Per-element random draws shared by the CPU and CUDA random kernels: element i of a draw
// that reserved counters [base, base + n) reads counter base + i (normals read the pair
// base + 2*(i/2), base + 2*(i/2) + 1 and use its cos / sin half), so every counter feeds one
// draw only and both backends see the same uniforms bit for bit.
#pragma once
#include <math.h>
#include <cstdint>
#include "kernels/random_bits.h"

namespace retort {

// Counters a normal draw of n elements reserves (pairs for Box-Muller).
inline uint64_t normal_counters(int64_t n) { return uint64_t(n + (n & 1)); }

RETORT_HD inline double uniform_at(uint64_t seed, uint64_t base, int64_t i) { return uniform01(seed, base + uint64_t(i)); }

RETORT_HD inline double normal_at(uint64_t seed, uint64_t base, int64_t i) {
  const uint64_t pair = base + 2 * (uint64_t(i) >> 1);
  const double u1 = 1.0 - uniform01(seed, pair);  // in (0, 1]: the log stays finite
  const double u2 = uniform01(seed, pair + 1);
  const double r = ::sqrt(-2.0 * ::log(u1));
  const double t = 6.283185307179586 * u2;
  return (i & 1) ? r * ::sin(t) : r * ::cos(t);
}

// Dropout keeps element i when its uniform is >= p (probability 1 - p).
RETORT_HD inline bool dropout_keep(uint64_t seed, uint64_t base, int64_t i, double p) {
  return uniform_at(seed, base, i) >= p;
}

// The largest values below 1 in f32 and bf16: a uniform in [0, 1) rounded to a narrower type
// can round up to 1, so it is pulled back to these.
constexpr float kBelowOneF32 = 0.99999994f;
constexpr float kBelowOneBF16 = 0.99609375f;

}  // namespace retort
