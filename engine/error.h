// fmt-style failures for the engine and the layers above it: every failure names what was
// wrong, where, and what to do. They throw core's retort::Error (core/check.h), which the
// kernels raise with RETORT_REQUIRE.
#pragma once
#include <stdexcept>
#include <string>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "core/check.h"

namespace retort {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace retort

// RETORT_CHECK(cond, "fmt", args...): throws retort::Error with the message when cond is false.
#define RETORT_CHECK(cond, ...)                 \
  do {                                          \
    if (!(cond)) ::retort::fail(__VA_ARGS__);   \
  } while (0)
