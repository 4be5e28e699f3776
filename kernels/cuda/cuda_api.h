// The CUDA runtime surface the engine uses: device discovery, pooled memory, copies, stream.
// Declarations only (no CUDA headers), so CPU-only code can include it. Call through
// RETORT_CUDA_CALL so a build without CUDA fails with a clear message instead of a link error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "core/check.h"

namespace retort::cuda {

int device_count();                    // 0 when no driver or no GPU; never throws
std::string unavailable_reason();      // why device_count() is 0 ("" when a GPU is usable)
void* device_alloc(size_t bytes, int device);   // cudaMallocAsync from a retained pool
void device_free(void* ptr, int device);
void memcpy_any(void* dst, bool dst_gpu, const void* src, bool src_gpu, size_t bytes);
// Waits for the engine's stream; raises what a kernel reported since (an out-of-range index).
void synchronize();
// Binds this process to cuda:`device` (the first device named wins; another one later is an
// error: one GPU per process) and makes it current on the calling thread.
void use_device(int device);
// Raises, as a retort::Error, what a kernel reported since the last check (no-op when nothing).
void raise_pending_device_error();
// NVTX ranges (header-only NVTX 3): nsys and ncu show them and can be scoped to them.
void nvtx_push(const char* name);
void nvtx_pop();
// cudaProfilerStart/Stop: `nsys --capture-range=cudaProfilerApi` and `ncu --profile-from-start
// off` capture only what runs between them (retort profile's steps).
void profiler_capture(bool on);
// CUDA graphs (kernels/cuda/graph.cu): capture what the engine's stream runs, then replay it.
// begin_capture waits for the stream, then captures; a host<->device copy or a synchronisation
// during the capture is an error (memcpy_any and synchronize refuse while capturing), after
// which cancel_capture drops it. end_capture returns an instantiated graph (an opaque handle)
// or raises why the capture failed; launch_graph replays it on the stream.
bool capturing();
void begin_capture();
void cancel_capture();
void* end_capture();
void launch_graph(void* graph);
void destroy_graph(void* graph);
// "NVIDIA H100 80GB HBM3, sm_90, CUDA runtime 13.0": what computes on `device` (never throws;
// says why when it cannot tell).
std::string device_description(int device);

}  // namespace retort::cuda

#ifdef RETORT_WITH_CUDA
#define RETORT_CUDA_CALL(...) (__VA_ARGS__)
#else
#define RETORT_CUDA_CALL(...) ::retort::raise("this retort was built without CUDA (nvcc was not found at build time)")
#endif
