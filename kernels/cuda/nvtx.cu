// NVTX ranges and the CUDA profiler's capture range (see kernels/cuda/cuda_api.h), for
// `retort profile` on a GPU: nsys and ncu show each op and phase by name.
#include <cuda_profiler_api.h>
#include <nvtx3/nvToolsExt.h>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda {

void nvtx_push(const char* name) { nvtxRangePushA(name); }
void nvtx_pop() { nvtxRangePop(); }
void profiler_capture(bool on) { RETORT_CUDA_CHECK(on ? cudaProfilerStart() : cudaProfilerStop()); }

}  // namespace retort::cuda
