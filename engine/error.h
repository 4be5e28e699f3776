// Error type and check macros: every failure names what was wrong, where, and what to do.
#pragma once
#include <stdexcept>
#include <string>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace retort {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
