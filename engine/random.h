// Generator: a seed plus a counter. Each draw reserves a block of counters, so a run is
// reproducible from (seed, offset), which checkpoints save and restore.
#pragma once
#include <cstdint>
#include "kernels/random_bits.h"

namespace retort {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }
  // Host draws (data shuffling, augmentation).
  uint64_t next_u64() { return hash64(seed_, offset_++); }
  double uniform() { return uniform01(seed_, offset_++); }
  int64_t randint(int64_t n) { return int64_t(next_u64() % uint64_t(n)); }  // [0, n)
  double normal() { return normal01(seed_, offset_++); }

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace retort
