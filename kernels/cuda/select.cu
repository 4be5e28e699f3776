// CUDA comparisons and selection (gt, eq, where, index_select/index_add, gather/scatter_add).
// Reference: kernels/cpu/select.cpp. Accumulating kernels use atomicAdd (float, double and
// bf16 on sm_80+), so their summation order, unlike the CPU's, is not fixed.
#include "kernels/cuda/common.cuh"
#include "kernels/select.h"
#include "kernels/dispatch_word.h"
#include "kernels/index_math.h"

namespace retort::cuda {
namespace {
#define RETORT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// An out-of-range index is reported (the host raises it at the next synchronisation) and not
// followed: the element reads as zero, or adds nothing. The CUDA context stays usable.
__device__ __forceinline__ bool index_ok(int64_t j, int64_t size, DeviceErrorRecord* rec, DeviceErrorOp op) {
  if (j >= 0 && j < size) return true;
  report_bad_index(rec, op, j, size);
  return false;
}

template <typename Fn>
void dispatch_any(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::i64: fn(int64_t{}); return;
    case DType::u8: fn(uint8_t{}); return;
  }
}
template <typename T> __device__ __forceinline__ double as_double(T v) { return double(v); }
template <> __device__ __forceinline__ double as_double<__nv_bfloat16>(__nv_bfloat16 v) {
  return double(__bfloat162float(v));
}
template <typename T> __device__ __forceinline__ bool same(T x, T y) { return x == y; }
template <> __device__ __forceinline__ bool same<__nv_bfloat16>(__nv_bfloat16 x, __nv_bfloat16 y) {
  return __bfloat162float(x) == __bfloat162float(y);
}
template <typename T> __device__ __forceinline__ void atomic_add(T* p, T v) { atomicAdd(p, v); }

template <typename T>
__global__ void gt_kernel(const T* in, Layout l, double s, uint8_t* out, int64_t n) {
  RETORT_GRID_LOOP(i, n) out[i] = as_double(in[l.offset_of(i)]) > s ? 1 : 0;
}
template <typename T>
__global__ void eq_kernel(const T* a, Layout la, const T* b, Layout lb, uint8_t* out, int64_t n) {
  RETORT_GRID_LOOP(i, n) out[i] = same(a[la.offset_of(i)], b[lb.offset_of(i)]) ? 1 : 0;
}
template <typename W>
__global__ void where_kernel(const uint8_t* mask, Layout lm, const W* a, Layout la, const W* b, Layout lb, W* out,
                             int64_t n) {
  RETORT_GRID_LOOP(i, n) out[i] = mask[lm.offset_of(i)] ? a[la.offset_of(i)] : b[lb.offset_of(i)];
}
template <typename W>
__global__ void index_select_kernel(const W* in, int64_t src_size, int64_t inner, const int64_t* index,
                                    int64_t num_index, W* out, int64_t n, DeviceErrorRecord* rec) {
  RETORT_GRID_LOOP(e, n) {
    int64_t i = e % inner, r = e / inner;
    int64_t k = r % num_index, o = r / num_index;
    int64_t j = index[k];
    out[e] = index_ok(j, src_size, rec, DeviceErrorOp::index_select) ? in[(o * src_size + j) * inner + i] : W{};
  }
}
template <typename T>
__global__ void index_add_kernel(const T* src, int64_t num_index, int64_t inner, const int64_t* index,
                                 int64_t dst_size, T* out, int64_t n, DeviceErrorRecord* rec) {
  RETORT_GRID_LOOP(e, n) {
    int64_t i = e % inner, r = e / inner;
    int64_t k = r % num_index, o = r / num_index;
    int64_t j = index[k];
    if (index_ok(j, dst_size, rec, DeviceErrorOp::index_add)) atomic_add(out + (o * dst_size + j) * inner + i, src[e]);
  }
}
template <typename W>
__global__ void gather_kernel(const W* in, Layout la, int dim, const int64_t* index, Layout li, W* out, int64_t n,
                              DeviceErrorRecord* rec) {
  RETORT_GRID_LOOP(i, n) {
    int64_t io, ao;
    gather_offsets(li, la, dim, i, io, ao);
    int64_t j = index[io];
    out[i] = index_ok(j, la.shape[dim], rec, DeviceErrorOp::gather) ? in[ao + j * la.strides[dim]] : W{};
  }
}
template <typename T>
__global__ void scatter_add_kernel(const T* src, const int64_t* index, Layout li, int dim, T* out, Layout lo,
                                   int64_t n, DeviceErrorRecord* rec) {
  RETORT_GRID_LOOP(i, n) {
    int64_t io, oo;
    gather_offsets(li, lo, dim, i, io, oo);
    int64_t j = index[io];
    if (index_ok(j, lo.shape[dim], rec, DeviceErrorOp::scatter_add)) atomic_add(out + oo + j * lo.strides[dim], src[i]);
  }
}
}  // namespace

void gt_scalar(DType type, const void* in, const Layout& l, double s, uint8_t* out, int64_t n) {
  if (n == 0) return;
  dispatch_any(type, [&](auto tag) {
    using T = decltype(tag);
    gt_kernel<T><<<grid_for(n), 256, 0, stream()>>>(static_cast<const T*>(in), l, s, out, n);
  });
  RETORT_CUDA_LAUNCH_CHECK();
}

void eq(DType type, const void* a, const Layout& la, const void* b, const Layout& lb, uint8_t* out, int64_t n) {
  if (n == 0) return;
  dispatch_any(type, [&](auto tag) {
    using T = decltype(tag);
    eq_kernel<T><<<grid_for(n), 256, 0, stream()>>>(static_cast<const T*>(a), la, static_cast<const T*>(b), lb, out, n);
  });
  RETORT_CUDA_LAUNCH_CHECK();
}

void where(size_t elem_size, const uint8_t* mask, const Layout& lm, const void* a, const Layout& la, const void* b,
           const Layout& lb, void* out, int64_t n) {
  if (n == 0) return;
  dispatch_word(elem_size, [&](auto tag) {
    using W = decltype(tag);
    where_kernel<W><<<grid_for(n), 256, 0, stream()>>>(mask, lm, static_cast<const W*>(a), la,
                                                       static_cast<const W*>(b), lb, static_cast<W*>(out), n);
  });
  RETORT_CUDA_LAUNCH_CHECK();
}

void index_select(size_t elem_size, const void* in, int64_t outer, int64_t src_size, int64_t inner,
                  const int64_t* index, int64_t num_index, void* out) {
  const int64_t n = outer * num_index * inner;
  if (n == 0) return;
  dispatch_word(elem_size, [&](auto tag) {
    using W = decltype(tag);
    index_select_kernel<W><<<grid_for(n), 256, 0, stream()>>>(static_cast<const W*>(in), src_size, inner, index,
                                                              num_index, static_cast<W*>(out), n,
                                                              device_error_record());
  });
  RETORT_CUDA_LAUNCH_CHECK();
}

void index_add(DType type, const void* src, int64_t outer, int64_t num_index, int64_t inner, const int64_t* index,
               int64_t dst_size, void* out) {
  const int64_t n = outer * num_index * inner;
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "index_add", [&] {
    index_add_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<const scalar_t*>(src), num_index, inner,
                                                                  index, dst_size, static_cast<scalar_t*>(out), n,
                                                                  device_error_record());
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void gather(size_t elem_size, const void* in, const Layout& la, int dim, const int64_t* index, const Layout& li,
            void* out, int64_t n) {
  if (n == 0) return;
  dispatch_word(elem_size, [&](auto tag) {
    using W = decltype(tag);
    gather_kernel<W><<<grid_for(n), 256, 0, stream()>>>(static_cast<const W*>(in), la, dim, index, li,
                                                        static_cast<W*>(out), n, device_error_record());
  });
  RETORT_CUDA_LAUNCH_CHECK();
}

void scatter_add(DType type, const void* src, const int64_t* index, const Layout& li, int dim, void* out,
                 const Layout& lo, int64_t n) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "scatter_add", [&] {
    scatter_add_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(static_cast<const scalar_t*>(src), index, li, dim,
                                                                    static_cast<scalar_t*>(out), lo, n,
                                                                    device_error_record());
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda
