// CPU dtype dispatch: runs a generic lambda with `scalar_t` bound to float, double or bf16
// (accumulating in acc_t: float for f32/bf16, double for f64); and, for kernels that only move
// bytes (copies, fills, selections), with an unsigned word of the element's size.
#pragma once
#include <cstddef>
#include <cstdint>
#include "engine/dtype.h"
#include "engine/error.h"

namespace retort::cpu {
template <typename T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

// Calls fn(W{}) with W the unsigned integer of elem_size bytes (1, 2, 4 or 8).
template <typename Fn>
void dispatch_word(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1: fn(uint8_t{}); return;
    case 2: fn(uint16_t{}); return;
    case 4: fn(uint32_t{}); return;
    case 8: fn(uint64_t{}); return;
  }
  fail("unsupported element size {}", elem_size);
}
}  // namespace retort::cpu

#define RETORT_CPU_DISPATCH_FLOAT(dtype, opname, ...)                                          \
  [&] {                                                                                        \
    switch (dtype) {                                                                           \
      case ::retort::DType::f32: { using scalar_t = float; using acc_t = float; return __VA_ARGS__(); }   \
      case ::retort::DType::f64: { using scalar_t = double; using acc_t = double; return __VA_ARGS__(); } \
      case ::retort::DType::bf16: { using scalar_t = ::retort::bf16; using acc_t = float; return __VA_ARGS__(); } \
      default: ::retort::fail("{}: dtype {} is not supported (floating dtypes only)", opname,   \
                              ::retort::dtype_name(dtype));                                    \
    }                                                                                          \
  }()
