// ContentHash: a 128-bit non-cryptographic hash (two FNV-1a style 64-bit lanes) for cache keys
// (teacher-feature files, stage-cache entries): fast, stable across runs and machines of the
// same endianness, and plenty against accidental collisions. Not for adversarial inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <fmt/format.h>

namespace retort {

class ContentHash {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      a_ = (a_ ^ p[i]) * 1099511628211ull;
      b_ = ((b_ ^ p[i]) * 0x100000001b3ull) ^ (b_ >> 29);
    }
  }
  // A length-prefixed string, so ("ab", "c") and ("a", "bc") hash differently.
  void text(std::string_view s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  std::string hex() const { return fmt::format("{:016x}{:016x}", a_, b_); }

 private:
  uint64_t a_ = 1469598103934665603ull, b_ = 0x9e3779b97f4a7c15ull;
};

}  // namespace retort
