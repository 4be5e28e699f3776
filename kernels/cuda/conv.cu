// cuDNN convolution wrappers: one handle per process bound to the engine stream, algorithms
// chosen once per (geometry, dtype, direction) with cudnnFind*Ex (falling back to the
// heuristic Get*_v7) and cached; workspaces come from the engine's pooled stream-ordered
// allocator (device_alloc, the same pool that backs tensors; .cu files cannot include tensor.h
// because nvcc builds them as C++17).
// f32/f64 run with FMA math only (no TF32) for parity with the CPU; bf16 may use tensor cores.
// The bias is added by a small kernel. Backward-filter algorithms may be non-deterministic.
#include <cudnn.h>
#include <array>
#include <map>
#include <mutex>
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/common.cuh"
#include "kernels/conv.h"

namespace retort::cuda {
namespace {
#define RETORT_CUDNN_CHECK(expr)                                                                   \
  do {                                                                                             \
    cudnnStatus_t st__ = (expr);                                                                   \
    if (st__ != CUDNN_STATUS_SUCCESS)                                                              \
      ::retort::raise("cuDNN error in ", #expr, " (", __FILE__, ":", __LINE__, "): ", cudnnGetErrorString(st__)); \
  } while (0)

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t hd;
    RETORT_CUDNN_CHECK(cudnnCreate(&hd));
    RETORT_CUDNN_CHECK(cudnnSetStream(hd, stream()));
    return hd;
  }();
  return h;
}

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: raise("conv2d: dtype ", t, " is not supported on CUDA");
  }
}

int as_int(int64_t v) {
  RETORT_REQUIRE(v >= 0 && v <= INT32_MAX, "conv2d: size ", v, " exceeds the cuDNN int range");
  return int(v);
}

// The descriptors of one convolution, destroyed with it.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descriptors(DType type, const Conv2dGeometry& g) {
    const cudnnDataType_t dt = data_type(type);
    RETORT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    RETORT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    RETORT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    RETORT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    RETORT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, as_int(g.n), as_int(g.c), as_int(g.h),
                                                  as_int(g.w)));
    RETORT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, as_int(g.n), as_int(g.oc), as_int(g.oh),
                                                  as_int(g.ow)));
    RETORT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, as_int(g.oc), as_int(g.c / g.groups),
                                                  as_int(g.kh), as_int(g.kw)));
    RETORT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, as_int(g.pad_h), as_int(g.pad_w), as_int(g.stride_h), as_int(g.stride_w), as_int(g.dil_h),
        as_int(g.dil_w), CUDNN_CROSS_CORRELATION, type == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
    RETORT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, as_int(g.groups)));
    RETORT_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math_for(type)));
  }
  ~Descriptors() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  static cudnnMathType_t math_for(DType type) {
    return type == DType::bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  }
};

enum class Direction { forward, backward_data, backward_filter };

// A chosen algorithm: its enum value (as int), math type and workspace bytes.
struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

using Key = std::array<int64_t, 19>;
Key key_of(DType type, const Conv2dGeometry& g, Direction dir) {
  return {int64_t(type), int64_t(dir), g.n, g.c, g.h, g.w, g.oc, g.kh, g.kw, g.oh, g.ow, g.stride_h, g.stride_w,
          g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, 0};
}

std::mutex g_cache_mutex;
std::map<Key, Choice> g_cache;

bool math_allowed(DType type, cudnnMathType_t m) {
  if (type == DType::bf16) return true;
  return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;  // no TF32 for f32/f64
}

// Picks the first successful result allowed for the dtype; perf arrays are sorted by time.
template <typename Perf>
bool pick(DType type, const Perf* perf, int count, Choice& out) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || !math_allowed(type, perf[i].mathType)) continue;
    out.algo = int(perf[i].algo);
    out.math = perf[i].mathType;
    out.workspace = perf[i].memory;
    return true;
  }
  return false;
}

// A workspace block from the engine pool, returned (stream-ordered) when it goes out of scope.
class Workspace {
 public:
  explicit Workspace(size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    RETORT_CUDA_CHECK(cudaGetDevice(&device_));
    ptr_ = device_alloc(bytes_, device_);
  }
  ~Workspace() {
    if (ptr_) device_free(ptr_, device_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return ptr_; }

 private:
  size_t bytes_ = 0;
  int device_ = 0;
  void* ptr_ = nullptr;
};

// Workspace granted to the algorithm search: a quarter of the free memory, at most 512 MiB.
size_t search_workspace_bytes() {
  size_t free_b = 0, total_b = 0;
  RETORT_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return std::min<size_t>(free_b / 4, size_t(512) << 20);
}

// Finds (once per key) the algorithm for one direction. a, b, c are the operands in the order
// of the matching cudnnFind*Ex call; the output operand may be overwritten by the search.
Choice choose(DType type, const Conv2dGeometry& g, Direction dir, const Descriptors& d, const void* a, const void* b,
              void* c) {
  const Key key = key_of(type, g, dir);
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) return it->second;
  }
  constexpr int kMax = 16;
  int returned = 0;
  Choice choice;
  bool found = false;
  const size_t ws_bytes = search_workspace_bytes();
  Workspace ws(ws_bytes);
  void* ws_ptr = ws.data();
  if (dir == Direction::forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    if (cudnnFindConvolutionForwardAlgorithmEx(handle(), d.x, a, d.w, b, d.conv, d.y, c, kMax, &returned, perf, ws_ptr,
                                               ws_bytes) == CUDNN_STATUS_SUCCESS)
      found = pick(type, perf, returned, choice);
    if (!found) {
      RETORT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle(), d.x, d.w, d.conv, d.y, kMax, &returned, perf));
      found = pick(type, perf, returned, choice);
    }
  } else if (dir == Direction::backward_data) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    if (cudnnFindConvolutionBackwardDataAlgorithmEx(handle(), d.w, a, d.y, b, d.conv, d.x, c, kMax, &returned, perf,
                                                    ws_ptr, ws_bytes) == CUDNN_STATUS_SUCCESS)
      found = pick(type, perf, returned, choice);
    if (!found) {
      RETORT_CUDNN_CHECK(
          cudnnGetConvolutionBackwardDataAlgorithm_v7(handle(), d.w, d.y, d.conv, d.x, kMax, &returned, perf));
      found = pick(type, perf, returned, choice);
    }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    if (cudnnFindConvolutionBackwardFilterAlgorithmEx(handle(), d.x, a, d.y, b, d.conv, d.w, c, kMax, &returned, perf,
                                                      ws_ptr, ws_bytes) == CUDNN_STATUS_SUCCESS)
      found = pick(type, perf, returned, choice);
    if (!found) {
      RETORT_CUDNN_CHECK(
          cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle(), d.x, d.y, d.conv, d.w, kMax, &returned, perf));
      found = pick(type, perf, returned, choice);
    }
  }
  RETORT_REQUIRE(found, "conv2d: cuDNN offers no algorithm for dtype ", type, " (input [", g.n, ", ", g.c, ", ", g.h,
                 ", ", g.w, "], weight [", g.oc, ", ", g.c / g.groups, ", ", g.kh, ", ", g.kw, "], groups ", g.groups, ")");
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  g_cache[key] = choice;
  return choice;
}

// bf16 runs with the math type the search picked; f32/f64 stay FMA-only (DEFAULT_MATH would
// allow TF32 on Ampere and later).
void set_math(DType type, const Descriptors& d, const Choice& ch) {
  if (type == DType::bf16) RETORT_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, ch.math));
}

// Scaling factors: double for f64 data, float otherwise.
struct Scale {
  double d;
  float f;
  explicit Scale(double v) : d(v), f(float(v)) {}
  const void* ptr(DType type) const { return type == DType::f64 ? static_cast<const void*>(&d) : &f; }
};

template <typename T>
__global__ void add_channel_bias(T* y, const T* bias, int64_t total, int64_t channels, int64_t plane) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / plane) % channels;
    st(y, i, ld(y, i) + ld(bias, c));
  }
}
// One block per channel: sums gy[:, c, :] in the accumulation type.
template <typename T>
__global__ void channel_sum(const T* gy, T* gb, int64_t n, int64_t c, int64_t plane) {
  using A = typename Acc<T>::type;
  __shared__ A warp_acc[32];
  const int64_t ch = blockIdx.x;
  A acc = 0;
  for (int64_t s = 0; s < n; ++s) {
    const T* p = gy + (s * c + ch) * plane;
    for (int64_t i = threadIdx.x; i < plane; i += blockDim.x) acc += ld(p, i);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if ((threadIdx.x & 31) == 0) warp_acc[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < (blockDim.x >> 5) ? warp_acc[threadIdx.x] : A(0);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (threadIdx.x == 0) st(gb, ch, acc);
  }
}
}  // namespace

void conv2d_backward_bias(DType type, const void* gy, void* gb, int64_t n, int64_t c, int64_t plane) {
  if (c == 0) return;
  RETORT_REQUIRE(c <= INT32_MAX, "conv2d: ", c, " channels exceed the grid limit");
  RETORT_CUDA_DISPATCH_FLOAT(type, "conv2d bias gradient", [&] {
    channel_sum<scalar_t><<<unsigned(c), 256, 0, stream()>>>(static_cast<const scalar_t*>(gy),
                                                             static_cast<scalar_t*>(gb), n, c, plane);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void conv2d_forward(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                    void* y) {
  if (g.n == 0 || g.oc == 0) return;
  Descriptors d(type, g);
  Choice ch = choose(type, g, Direction::forward, d, x, weight, y);
  set_math(type, d, ch);
  Workspace ws(ch.workspace);
  const Scale one(1.0), zero(0.0);
  RETORT_CUDNN_CHECK(cudnnConvolutionForward(handle(), one.ptr(type), d.x, x, d.w, weight, d.conv,
                                             cudnnConvolutionFwdAlgo_t(ch.algo), ws.data(),
                                             ch.workspace, zero.ptr(type), d.y, y));
  if (bias) {
    const int64_t total = g.n * g.oc * g.oh * g.ow;
    RETORT_CUDA_DISPATCH_FLOAT(type, "conv2d bias", [&] {
      add_channel_bias<scalar_t><<<grid_for(total), 256, 0, stream()>>>(
          static_cast<scalar_t*>(y), static_cast<const scalar_t*>(bias), total, g.oc, g.oh * g.ow);
      RETORT_CUDA_LAUNCH_CHECK();
    });
  }
}

void conv2d_backward_input(DType type, const Conv2dGeometry& g, const void* gy, const void* weight, void* gx) {
  if (g.n == 0 || g.c == 0) return;
  if (g.oc == 0) {
    RETORT_CUDA_CHECK(cudaMemsetAsync(gx, 0, size_t(g.n * g.c * g.h * g.w) * dtype_size(type), stream()));
    return;
  }
  Descriptors d(type, g);
  Choice ch = choose(type, g, Direction::backward_data, d, weight, gy, gx);
  set_math(type, d, ch);
  Workspace ws(ch.workspace);
  const Scale one(1.0), zero(0.0);
  RETORT_CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), one.ptr(type), d.w, weight, d.y, gy, d.conv,
                                                  cudnnConvolutionBwdDataAlgo_t(ch.algo),
                                                  ws.data(), ch.workspace, zero.ptr(type),
                                                  d.x, gx));
}

void conv2d_backward_weight(DType type, const Conv2dGeometry& g, const void* x, const void* gy, void* gw) {
  if (g.oc == 0) return;
  if (g.n == 0) {
    RETORT_CUDA_CHECK(cudaMemsetAsync(gw, 0, size_t(g.oc * (g.c / g.groups) * g.kh * g.kw) * dtype_size(type), stream()));
    return;
  }
  Descriptors d(type, g);
  Choice ch = choose(type, g, Direction::backward_filter, d, x, gy, gw);
  set_math(type, d, ch);
  Workspace ws(ch.workspace);
  const Scale one(1.0), zero(0.0);
  RETORT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), one.ptr(type), d.x, x, d.y, gy, d.conv,
                                                    cudnnConvolutionBwdFilterAlgo_t(ch.algo),
                                                    ws.data(), ch.workspace,
                                                    zero.ptr(type), d.w, gw));
}

}  // namespace retort::cuda
