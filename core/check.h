// retort's error type and a check macro without fmt (core/): usable from the kernels, the CUDA
// sources compiled by nvcc included, and everything above them. The message is the arguments
// streamed one after another, so a check reads like the sentence it prints:
//   RETORT_REQUIRE(j >= 0 && j < size, op, ": index ", j, " is out of range for a dim of size ", size);
// Layers above the kernels also have fmt-style fail() and RETORT_CHECK (engine/error.h); both
// throw this same retort::Error.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include "core/dtype.h"

namespace retort {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// Throws retort::Error with the parts streamed into one message.
template <typename... Parts>
[[noreturn]] void raise(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

}  // namespace retort

#define RETORT_REQUIRE(cond, ...)                \
  do {                                           \
    if (!(cond)) ::retort::raise(__VA_ARGS__);   \
  } while (0)
