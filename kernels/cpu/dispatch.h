// CPU dtype dispatch: runs a generic lambda with `scalar_t` bound to float, double or bf16
// (accumulating in acc_t: float for f32/bf16, double for f64). Byte-moving kernels dispatch on
// the element size instead (kernels/dispatch_word.h).
#pragma once
#include "core/dtype.h"
#include "core/check.h"
#include "kernels/dispatch_word.h"

namespace retort::cpu {
template <typename T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };
}  // namespace retort::cpu

#define RETORT_CPU_DISPATCH_FLOAT(dtype, opname, ...)                                          \
  [&] {                                                                                        \
    switch (dtype) {                                                                           \
      case ::retort::DType::f32: { using scalar_t = float; using acc_t = float; return __VA_ARGS__(); }   \
      case ::retort::DType::f64: { using scalar_t = double; using acc_t = double; return __VA_ARGS__(); } \
      case ::retort::DType::bf16: { using scalar_t = ::retort::bf16; using acc_t = float; return __VA_ARGS__(); } \
      default: ::retort::raise(opname, ": dtype ", dtype, " is not supported (floating dtypes only)"); \
    }                                                                                          \
  }()
