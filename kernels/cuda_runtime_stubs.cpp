// The CUDA runtime surface (kernels/cuda/cuda_api.h) in a build without CUDA: it answers "no
// GPU" or fails clearly. Compiled only when nvcc was not found.
#ifndef RETORT_WITH_CUDA
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda {
namespace {
[[noreturn]] void no_cuda() { raise("this retort was built without CUDA (nvcc was not found at build time)"); }
}  // namespace
int device_count() { return 0; }
std::string unavailable_reason() { return "this retort was built without CUDA (nvcc was not found at build time)"; }
void* device_alloc(size_t, int) { no_cuda(); }
void device_free(void*, int) {}
void memcpy_any(void*, bool, const void*, bool, size_t) { no_cuda(); }
void synchronize() {}
void use_device(int) { no_cuda(); }
void raise_pending_device_error() {}
void nvtx_push(const char*) {}
void nvtx_pop() {}
void profiler_capture(bool) {}
bool capturing() { return false; }
void begin_capture() { no_cuda(); }
void cancel_capture() {}
void* end_capture() { no_cuda(); }
void launch_graph(void*) { no_cuda(); }
void destroy_graph(void*) {}
std::string device_description(int) { return "no GPU: this retort was built without CUDA"; }
}  // namespace retort::cuda
#endif
