// Calling a kernel family's function on the backend of a device, arguments written once:
//   RETORT_KERNEL(x.device(), softmax_forward, x.dtype(), x.raw_data(), y.raw_data(), rows, n, log);
// runs retort::cpu::softmax_forward(...) for a CPU tensor and retort::cuda::softmax_forward(...)
// for a CUDA one (kernels/family.h declares both from one signature). In a build without CUDA
// the CUDA side is a clear error, and no CUDA symbol is referenced.
#pragma once
#include "core/check.h"

namespace retort {
[[noreturn]] inline void kernel_without_cuda(const char* kernel) {
  raise(kernel, ": this retort was built without CUDA (nvcc was not found at build time)");
}
}  // namespace retort

#ifdef RETORT_WITH_CUDA
#define RETORT_KERNEL(device, fn, ...) \
  ((device).is_cpu() ? ::retort::cpu::fn(__VA_ARGS__) : ::retort::cuda::fn(__VA_ARGS__))
#else
#define RETORT_KERNEL(device, fn, ...) \
  ((device).is_cpu() ? ::retort::cpu::fn(__VA_ARGS__) : ::retort::kernel_without_cuda(#fn))
#endif
