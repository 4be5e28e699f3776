// cuDNN convolution wrappers: one handle per process bound to the engine stream, algorithms
// chosen once per (geometry, dtype, direction) with cudnnFind*Ex (falling back to the
// heuristic Get*_v7) and cached; workspaces come from the engine's pooled stream-ordered
// allocator (device_alloc, the same pool that backs tensors; .cu files cannot include tensor.h
// because nvcc builds them as C++17).
// f32/f64 run with FMA math only (no TF32) for parity with the CPU, unless a tf32 precision scope
// allows TF32 for f32 (kernels/math_mode.h); bf16 may use tensor cores.
// The bias is added by a small kernel. Backward-filter algorithms may be non-deterministic.
// conv2d_bias_act (inference): cudnnConvolutionBiasActivationForward with the same descriptors,
// algorithm cache and workspace; the plain forward + one elementwise kernel where cuDNN refuses.
// NCHW only (its op converts a channels-last input).
// Channels-last (Conv2dGeometry::channels_last): x, y, dx, dy described as CUDNN_TENSOR_NHWC and
// the filter as NHWC (KRSC memory), for forward, backward-data and backward-filter; the format
// is part of the algorithm cache key.
#include <cudnn.h>
#include <array>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <vector>
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/scratch.cuh"
#include "kernels/math_mode.h"
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
// f32 inside a tf32 precision scope (kernels/math_mode.h) may run on TF32 tensor cores.
bool tf32_for(DType type) { return type == DType::f32 && kernels::tf32_allowed(); }

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
    const cudnnTensorFormat_t format = g.channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    RETORT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, format, dt, as_int(g.n), as_int(g.c), as_int(g.h), as_int(g.w)));
    RETORT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, format, dt, as_int(g.n), as_int(g.oc), as_int(g.oh),
                                                  as_int(g.ow)));
    RETORT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, format, as_int(g.oc), as_int(g.c / g.groups),
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
    if (type == DType::bf16) return CUDNN_TENSOR_OP_MATH;
    return tf32_for(type) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;  // DEFAULT allows TF32 on Ampere+
  }
};

enum class Direction { forward, backward_data, backward_filter };

// A chosen algorithm: its enum value (as int), math type and workspace bytes.
struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

using Key = std::array<int64_t, 20>;
Key key_of(DType type, const Conv2dGeometry& g, Direction dir) {
  return {int64_t(type), int64_t(dir), g.n, g.c, g.h, g.w, g.oc, g.kh, g.kw, g.oh, g.ow, g.stride_h, g.stride_w,
          g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, int64_t(tf32_for(type)), int64_t(g.channels_last)};
}

std::mutex g_cache_mutex;
std::map<Key, Choice> g_cache;

bool math_allowed(DType type, cudnnMathType_t m) {
  if (type == DType::bf16 || tf32_for(type)) return true;
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
  Scratch ws(ws_bytes);
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
  if (type == DType::bf16 || tf32_for(type)) RETORT_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, ch.math));
}

// Scaling factors: double for f64 data, float otherwise.
struct Scale {
  double d;
  float f;
  explicit Scale(double v) : d(v), f(float(v)) {}
  const void* ptr(DType type) const { return type == DType::f64 ? static_cast<const void*>(&d) : &f; }
};

// y[i] += bias[channel of i]; NHWC memory (nhwc) has the channel innermost.
template <typename T>
__global__ void add_channel_bias(T* y, const T* bias, int64_t total, int64_t channels, int64_t plane, bool nhwc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = nhwc ? i % channels : (i / plane) % channels;
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
  Scratch ws(ch.workspace);
  const Scale one(1.0), zero(0.0);
  RETORT_CUDNN_CHECK(cudnnConvolutionForward(handle(), one.ptr(type), d.x, x, d.w, weight, d.conv,
                                             cudnnConvolutionFwdAlgo_t(ch.algo), ws.data(),
                                             ch.workspace, zero.ptr(type), d.y, y));
  if (bias) {
    const int64_t total = g.n * g.oc * g.oh * g.ow;
    RETORT_CUDA_DISPATCH_FLOAT(type, "conv2d bias", [&] {
      add_channel_bias<scalar_t><<<grid_for(total), 256, 0, stream()>>>(
          static_cast<scalar_t*>(y), static_cast<const scalar_t*>(bias), total, g.oc, g.oh * g.ow, g.channels_last);
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
  Scratch ws(ch.workspace);
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
  Scratch ws(ch.workspace);
  const Scale one(1.0), zero(0.0);
  RETORT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), one.ptr(type), d.x, x, d.y, gy, d.conv,
                                                    cudnnConvolutionBwdFilterAlgo_t(ch.algo),
                                                    ws.data(), ch.workspace,
                                                    zero.ptr(type), d.w, gw));
}

// ---------------------------------------------------------------- conv2d_bias_act
namespace {
// y = act(y + bias[c] + residual): the unfused path's one pass after the plain convolution.
template <typename T>
__global__ void bias_residual_act(T* y, const T* bias, const T* residual, int64_t total, int64_t channels,
                                  int64_t plane, bool relu) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    A v = A(ld(y, i)) + A(ld(bias, (i / plane) % channels));
    if (residual) v = v + A(ld(residual, i));
    st(y, i, relu && v < A(0) ? A(0) : v);  // NaN passes, like relu
  }
}

void unfused_bias_act(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                      const void* residual, bool relu, void* y) {
  conv2d_forward(type, g, x, weight, nullptr, y);
  const int64_t total = g.n * g.oc * g.oh * g.ow;
  if (total == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "conv2d_bias_act", [&] {
    bias_residual_act<scalar_t><<<grid_for(total), 256, 0, stream()>>>(
        static_cast<scalar_t*>(y), static_cast<const scalar_t*>(bias), static_cast<const scalar_t*>(residual), total,
        g.oc, g.oh * g.ow, relu);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

// The bias [1, oc, 1, 1] and activation descriptors the fused call adds to a convolution's.
struct BiasActDescriptors {
  cudnnTensorDescriptor_t bias = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  BiasActDescriptors(DType type, const Conv2dGeometry& g, bool relu) {
    RETORT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    RETORT_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act));
    RETORT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, data_type(type), 1, as_int(g.oc), 1, 1));
    RETORT_CUDNN_CHECK(cudnnSetActivationDescriptor(act, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                                    CUDNN_PROPAGATE_NAN, 0.0));
  }
  ~BiasActDescriptors() {
    if (act) cudnnDestroyActivationDescriptor(act);
    if (bias) cudnnDestroyTensorDescriptor(bias);
  }
  BiasActDescriptors(const BiasActDescriptors&) = delete;
  BiasActDescriptors& operator=(const BiasActDescriptors&) = delete;
};

// cuDNN 9 reports refusals as sub-codes of NOT_SUPPORTED (3000-3999).
bool is_refusal(cudnnStatus_t st) {
#ifdef CUDNN_STATUS_CATEGORY
  return CUDNN_STATUS_CATEGORY(int(st)) == int(CUDNN_STATUS_NOT_SUPPORTED);
#else
  return st == CUDNN_STATUS_NOT_SUPPORTED;
#endif
}

// Geometries (with dtype and activation) cuDNN refused to fuse: they go straight to the
// unfused path; the first refusal is said once on stderr.
std::mutex g_refused_mutex;
std::set<Key> g_refused;
std::atomic<bool> g_refusal_reported{false};
Key fused_key(DType type, const Conv2dGeometry& g, bool relu) {
  Key k = key_of(type, g, Direction::forward);
  k[18] = relu ? 2 : 1;
  return k;
}
bool known_refused(const Key& k) {
  std::lock_guard<std::mutex> lock(g_refused_mutex);
  return g_refused.count(k) > 0;
}
void note_refusal(const Key& k, cudnnStatus_t st) {
  {
    std::lock_guard<std::mutex> lock(g_refused_mutex);
    g_refused.insert(k);
  }
  if (!g_refusal_reported.exchange(true))
    std::fprintf(stderr,
                 "retort: cuDNN refused a fused convolution + bias + activation (%s); conv2d_bias_act runs such "
                 "convolutions as a convolution and a separate elementwise kernel\n",
                 cudnnGetErrorString(st));
}

// The algorithms to try: IDENTITY works only with IMPLICIT_PRECOMP_GEMM (cuDNN's rule); with
// RELU the forward search's choice first, then IMPLICIT_PRECOMP_GEMM.
std::vector<Choice> fused_candidates(DType type, const Conv2dGeometry& g, bool relu, const Descriptors& d,
                                     const void* x, const void* weight, void* y) {
  std::vector<Choice> out;
  if (relu) out.push_back(choose(type, g, Direction::forward, d, x, weight, y));
  const int precomp = int(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
  if (out.empty() || out[0].algo != precomp) {
    Choice c;
    c.algo = precomp;
    c.math = Descriptors::math_for(type);
    const cudnnStatus_t st = cudnnGetConvolutionForwardWorkspaceSize(
        handle(), d.x, d.w, d.conv, d.y, cudnnConvolutionFwdAlgo_t(precomp), &c.workspace);
    if (st == CUDNN_STATUS_SUCCESS) out.push_back(c);
  }
  return out;
}

// One fused call; returns cuDNN's status (other than a refusal, errors are raised).
cudnnStatus_t fused_call(DType type, const Descriptors& d, const BiasActDescriptors& ba, const Choice& ch,
                         const void* x, const void* weight, const void* bias, const void* residual, void* y) {
  set_math(type, d, ch);
  Scratch ws(ch.workspace);
  const Scale one(1.0), blend(residual ? 1.0 : 0.0);
  // Without a residual z is y itself, scaled by 0 (and zeroed: a scale of 0 is not documented to
  // leave z unread, and fresh memory may hold NaN).
  const void* z = residual ? residual : y;
  cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
      handle(), one.ptr(type), d.x, x, d.w, weight, d.conv, cudnnConvolutionFwdAlgo_t(ch.algo), ws.data(),
      ch.workspace, blend.ptr(type), d.y, z, ba.bias, bias, ba.act, d.y, y);
  if (st != CUDNN_STATUS_SUCCESS && !is_refusal(st))
    raise("cuDNN error in cudnnConvolutionBiasActivationForward (", __FILE__, ":", __LINE__,
          "): ", cudnnGetErrorString(st));
  return st;
}
}  // namespace

void conv2d_bias_act(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                     const void* residual, bool relu, void* y) {
  RETORT_REQUIRE(bias != nullptr, "conv2d_bias_act: the bias is required");
  RETORT_REQUIRE(!g.channels_last, "conv2d_bias_act: NCHW only (its op converts channels-last inputs)");
  if (g.n == 0 || g.oc == 0) return;
  const Key key = fused_key(type, g, relu);
  if (known_refused(key)) return unfused_bias_act(type, g, x, weight, bias, residual, relu, y);
  Descriptors d(type, g);
  BiasActDescriptors ba(type, g, relu);
  const std::vector<Choice> candidates = fused_candidates(type, g, relu, d, x, weight, y);  // may write y
  const size_t y_bytes = size_t(g.n * g.oc * g.oh * g.ow) * dtype_size(type);
  if (!residual) RETORT_CUDA_CHECK(cudaMemsetAsync(y, 0, y_bytes, stream()));
  cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
  for (const Choice& ch : candidates)
    if ((st = fused_call(type, d, ba, ch, x, weight, bias, residual, y)) == CUDNN_STATUS_SUCCESS) return;
  note_refusal(key, st);
  unfused_bias_act(type, g, x, weight, bias, residual, relu, y);
}
}  // namespace retort::cuda
