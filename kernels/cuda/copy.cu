// CUDA strided copy with dtype conversion, fill and in-place scalar add. Reference: kernels/cpu/copy.cpp.
// Dense same-dtype copies are one cudaMemcpyAsync; dense floating casts (autocast's f32 <-> bf16)
// a typed kernel without index arithmetic; everything else the strided walk.
#include <type_traits>
#include "kernels/cuda/common.cuh"
#include "kernels/copy.h"

namespace retort::cuda {
namespace {

__device__ double load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
__device__ void store_any(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v)); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
  }
}

template <typename Word>
__global__ void copy_same_kernel(Word* dst, Layout dl, const Word* src, Layout sl, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[dl.offset_of(i)] = src[sl.offset_of(i)];
}

__global__ void copy_cast_kernel(void* dst, DType dt, Layout dl, const void* src, DType st, Layout sl, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_any(dst, dt, dl.offset_of(i), load_any(src, st, sl.offset_of(i)));
}

// A dense cast between floating dtypes: no index arithmetic, no dtype switch per element.
template <typename To, typename From>
__global__ void cast_dense_kernel(To* dst, const From* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if constexpr (std::is_same_v<To, __nv_bfloat16>) st(dst, i, float(ld(src, i)));  // f64 via f32, as the CPU
    else st(dst, i, ld(src, i));
}

template <typename From>
bool cast_dense_from(void* dst, DType dt, const From* src, int64_t n) {
  const unsigned grid = grid_for(n);
  switch (dt) {
    case DType::f32: cast_dense_kernel<<<grid, 256, 0, stream()>>>(static_cast<float*>(dst), src, n); return true;
    case DType::bf16:
      cast_dense_kernel<<<grid, 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(dst), src, n);
      return true;
    case DType::f64: cast_dense_kernel<<<grid, 256, 0, stream()>>>(static_cast<double*>(dst), src, n); return true;
    default: return false;
  }
}

// Dense floating casts (autocast's f32 <-> bf16 above all); false for any other pair.
bool cast_dense(void* dst, DType dt, const void* src, DType st, int64_t n) {
  switch (st) {
    case DType::f32: return cast_dense_from(dst, dt, static_cast<const float*>(src), n);
    case DType::bf16: return cast_dense_from(dst, dt, static_cast<const __nv_bfloat16*>(src), n);
    case DType::f64: return cast_dense_from(dst, dt, static_cast<const double*>(src), n);
    default: return false;
  }
}

__global__ void fill_kernel(void* dst, DType t, int64_t n, double v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_any(dst, t, i, v);
}

__global__ void add_scalar_kernel(void* data, DType t, int64_t n, double v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_any(data, t, i, load_any(data, t, i) + v);
}

}  // namespace

void strided_copy(void* dst, DType dt, const Layout& dl, const void* src, DType st, const Layout& sl) {
  int64_t n = dl.numel();
  if (n == 0) return;
  unsigned grid = grid_for(n);
  const bool dense = dl.is_dense() && sl.is_dense();
  if (dense && dt == st) {  // one stream-ordered copy (capturable in a CUDA graph)
    RETORT_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * dtype_size(dt), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  if (dense && cast_dense(dst, dt, src, st, n)) {
    RETORT_CUDA_LAUNCH_CHECK();
    return;
  }
  if (dt == st) {
    switch (dtype_size(dt)) {
      case 1: copy_same_kernel<<<grid, 256, 0, stream()>>>((uint8_t*)dst, dl, (const uint8_t*)src, sl, n); break;
      case 2: copy_same_kernel<<<grid, 256, 0, stream()>>>((uint16_t*)dst, dl, (const uint16_t*)src, sl, n); break;
      case 4: copy_same_kernel<<<grid, 256, 0, stream()>>>((uint32_t*)dst, dl, (const uint32_t*)src, sl, n); break;
      default: copy_same_kernel<<<grid, 256, 0, stream()>>>((uint64_t*)dst, dl, (const uint64_t*)src, sl, n); break;
    }
  } else {
    copy_cast_kernel<<<grid, 256, 0, stream()>>>(dst, dt, dl, src, st, sl, n);
  }
  RETORT_CUDA_LAUNCH_CHECK();
}

void add_scalar_in_place(void* data, DType t, int64_t n, double v) {
  if (n == 0) return;
  add_scalar_kernel<<<grid_for(n), 256, 0, stream()>>>(data, t, n, v);
  RETORT_CUDA_LAUNCH_CHECK();
}

void fill(void* dst, DType t, int64_t n, double v) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), 256, 0, stream()>>>(dst, t, n, v);
  RETORT_CUDA_LAUNCH_CHECK();
}

}  // namespace retort::cuda
