// CUDA broadcast binary kernels (add, sub, mul, div, maximum, ge_mask). Reference: kernels/cpu/binary.cpp.
// Each operand is addressed by the cheapest rule its layout allows (its own dense index, one
// broadcast element, or the general strided walk with a division per dim); where both are dense
// or one element and the pointers are 16-byte aligned, 16 bytes are loaded and stored at a time.
#include <algorithm>
#include <cstdint>
#include "kernels/cuda/common.cuh"
#include "kernels/binary.h"

namespace retort::cuda {
namespace {
template <typename A>
__device__ __forceinline__ A apply(BinaryOp op, A x, A y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::maximum: return (x >= y || x != x) ? x : y;  // NaN propagates
    case BinaryOp::ge_mask: return x >= y ? A(1) : A(0);
  }
  return x;
}
// How an operand is addressed: its own dense index (same shape as the output, row-major), one
// broadcast element, or the general strided/broadcast walk (a division per dim per element).
enum class Access { dense, scalar, strided };

Access access_of(const Layout& l, int64_t n) {
  bool all_zero = true;
  for (int d = 0; d < l.ndim; ++d) all_zero = all_zero && (l.shape[d] == 1 || l.strides[d] == 0);
  if (all_zero) return Access::scalar;
  return l.is_dense() && l.numel() == n ? Access::dense : Access::strided;
}

template <Access K>
__device__ __forceinline__ int64_t index_of(const Layout& l, int64_t i) {
  if constexpr (K == Access::dense) return i;
  else if constexpr (K == Access::scalar) return 0;
  else return l.offset_of(i);
}

template <typename T, Access KA, Access KB>
__global__ void binary_kernel(BinaryOp op, const T* a, Layout la, const T* b, Layout lb, T* out, int64_t n) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(out, i, apply<A>(op, ld(a, index_of<KA>(la, i)), ld(b, index_of<KB>(lb, i))));
}

// 16 bytes at a time (4 f32, 8 bf16, 2 f64) where both operands are dense or one element and
// every pointer is 16-byte aligned; the tail of fewer than one vector runs element by element.
template <typename T>
struct alignas(16) Vec16 {
  static constexpr int kLanes = 16 / int(sizeof(T));
  T v[kLanes];
};

template <typename T, Access KA, Access KB>
__global__ void binary_vec_kernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n) {
  using A = typename Acc<T>::type;
  using V = Vec16<T>;
  constexpr int L = V::kLanes;
  const int64_t vectors = n / L;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const A a0 = KA == Access::scalar ? ld(a, 0) : A(0), b0 = KB == Access::scalar ? ld(b, 0) : A(0);
  for (int64_t v = first; v < vectors; v += stride) {
    V va, vb, vo;
    if constexpr (KA == Access::dense) va = reinterpret_cast<const V*>(a)[v];
    if constexpr (KB == Access::dense) vb = reinterpret_cast<const V*>(b)[v];
#pragma unroll
    for (int k = 0; k < L; ++k) {
      const A x = KA == Access::dense ? ld(va.v, k) : a0, y = KB == Access::dense ? ld(vb.v, k) : b0;
      st(vo.v, k, apply<A>(op, x, y));
    }
    reinterpret_cast<V*>(out)[v] = vo;
  }
  for (int64_t i = vectors * L + first; i < n; i += stride)
    st(out, i, apply<A>(op, KA == Access::dense ? ld(a, i) : a0, KB == Access::dense ? ld(b, i) : b0));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, Access KA, Access KB>
void launch(BinaryOp op, const T* a, const Layout& la, const T* b, const Layout& lb, T* out, int64_t n) {
  constexpr bool vectorisable = KA != Access::strided && KB != Access::strided;
  if constexpr (vectorisable) {
    if ((KA != Access::dense || aligned16(a)) && (KB != Access::dense || aligned16(b)) && aligned16(out)) {
      const int64_t vectors = std::max<int64_t>(n / Vec16<T>::kLanes, 1);
      binary_vec_kernel<T, KA, KB><<<grid_for(vectors), 256, 0, stream()>>>(op, a, b, out, n);
      return;
    }
  }
  binary_kernel<T, KA, KB><<<grid_for(n), 256, 0, stream()>>>(op, a, la, b, lb, out, n);
}

// Instantiates the kernel for the first operand's access kind, then the second's.
template <typename T, Access KA>
void launch_for_b(BinaryOp op, const T* a, const Layout& la, const T* b, const Layout& lb, T* out, int64_t n) {
  switch (access_of(lb, n)) {
    case Access::dense: return launch<T, KA, Access::dense>(op, a, la, b, lb, out, n);
    case Access::scalar: return launch<T, KA, Access::scalar>(op, a, la, b, lb, out, n);
    case Access::strided: return launch<T, KA, Access::strided>(op, a, la, b, lb, out, n);
  }
}

template <typename T>
void launch_any(BinaryOp op, const T* a, const Layout& la, const T* b, const Layout& lb, T* out, int64_t n) {
  switch (access_of(la, n)) {
    case Access::dense: return launch_for_b<T, Access::dense>(op, a, la, b, lb, out, n);
    case Access::scalar: return launch_for_b<T, Access::scalar>(op, a, la, b, lb, out, n);
    case Access::strided: return launch_for_b<T, Access::strided>(op, a, la, b, lb, out, n);
  }
}
}  // namespace

void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "binary op", [&] {
    launch_any<scalar_t>(op, static_cast<const scalar_t*>(a), la, static_cast<const scalar_t*>(b), lb,
                         static_cast<scalar_t*>(out), n);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda
