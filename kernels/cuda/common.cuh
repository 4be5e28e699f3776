// Shared CUDA helpers: error checks that throw retort::Error, the engine's stream,
// grid sizing, and typed load/store that convert bf16 <-> float.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include "core/dtype.h"
#include "core/check.h"
#include "core/layout.h"

#define RETORT_CUDA_CHECK(expr)                                                                     \
  do {                                                                                              \
    cudaError_t err__ = (expr);                                                                     \
    if (err__ != cudaSuccess)                                                                       \
      ::retort::raise("CUDA error in ", #expr, " (", __FILE__, ":", __LINE__, "): ", cudaGetErrorString(err__)); \
  } while (0)

#define RETORT_CUDA_LAUNCH_CHECK() RETORT_CUDA_CHECK(cudaGetLastError())

namespace retort::cuda {

cudaStream_t stream();  // the engine's one stream (non-blocking), per process

// What a kernel reports when it meets bad input it cannot throw about (an out-of-range index).
// It lives in mapped host memory, so writing it costs nothing until it happens; the first
// report wins. The host raises it as a retort::Error at the next synchronisation
// (synchronize(), a copy to the host), before any result of that work can be read.
enum class DeviceErrorOp : int { none = 0, index_select, index_add, gather, scatter_add };
struct DeviceErrorRecord {
  int flag;  // 0 until a kernel reports
  int op;    // DeviceErrorOp
  long long index, size;
};
DeviceErrorRecord* device_error_record();  // the device's view of the record

__device__ __forceinline__ void report_bad_index(DeviceErrorRecord* rec, DeviceErrorOp op, int64_t index,
                                                 int64_t size) {
  if (atomicCAS(&rec->flag, 0, 1) == 0) {
    rec->op = int(op);
    rec->index = index;
    rec->size = size;
    __threadfence_system();
  }
}

inline unsigned grid_for(int64_t n, int block = 256) {
  int64_t g = (n + block - 1) / block;
  return unsigned(g > 65535 * 32 ? 65535 * 32 : (g < 1 ? 1 : g));
}

// Element access with conversion to the compute type (float for f32/bf16, double for f64).
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

template <typename T> __device__ __forceinline__ typename Acc<T>::type ld(const T* p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <typename T, typename V> __device__ __forceinline__ void st(T* p, int64_t i, V v) { p[i] = T(v); }
template <> __device__ __forceinline__ void st<__nv_bfloat16, float>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}

}  // namespace retort::cuda

// Dispatches on a floating dtype: inside, `scalar_t` is float, double or __nv_bfloat16.
#define RETORT_CUDA_DISPATCH_FLOAT(dtype, opname, ...)                                     \
  [&] {                                                                                    \
    switch (dtype) {                                                                       \
      case ::retort::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }          \
      case ::retort::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }         \
      case ::retort::DType::bf16: { using scalar_t = __nv_bfloat16; return __VA_ARGS__(); } \
      default: ::retort::raise(opname, ": dtype ", dtype, " is not supported on CUDA"); \
    }                                                                                      \
  }()
