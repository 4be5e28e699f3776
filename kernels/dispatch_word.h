// Element-size dispatch for kernels that only move bytes (copies, fills, selections), shared by
// the CPU kernels and the CUDA host code: the element's dtype does not matter, only its width.
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/check.h"

namespace retort {
// Calls fn(W{}) with W the unsigned integer of elem_size bytes (1, 2, 4 or 8).
template <typename Fn>
void dispatch_word(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1: fn(uint8_t{}); return;
    case 2: fn(uint16_t{}); return;
    case 4: fn(uint32_t{}); return;
    case 8: fn(uint64_t{}); return;
  }
  raise("unsupported element size ", elem_size);
}
}  // namespace retort
