// CUDA pooling kernels. Forward: one thread per output element. Backward: one thread per
// input element gathering from the outputs whose window covers it (no atomics, so the result
// is deterministic). Reference: kernels/cpu/pool.cpp.
#include "kernels/cuda/common.cuh"
#include "kernels/pool.h"

namespace retort::cuda {
namespace {

__device__ __forceinline__ int64_t dmin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t dmax(int64_t a, int64_t b) { return a > b ? a : b; }

// Range [lo, hi) of outputs along one axis whose window (size k, stride s, padding p) covers i.
__device__ __forceinline__ void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo,
                                         int64_t& hi) {
  lo = (i + p < k) ? 0 : (i + p - k) / s + 1;
  hi = dmin((i + p) / s + 1, out);
}

// The average's divisor for output (oy, ox), as in PyTorch.
__device__ __forceinline__ int64_t avg_divisor(const Pool2dGeometry& g, int64_t oy, int64_t ox, bool include_pad) {
  int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
  int64_t y1 = dmin(y0 + g.kh, g.h + g.ph), x1 = dmin(x0 + g.kw, g.w + g.pw);
  if (include_pad) return (y1 - y0) * (x1 - x0);
  y0 = dmax(y0, 0);
  x0 = dmax(x0, 0);
  y1 = dmin(y1, g.h);
  x1 = dmin(x1, g.w);
  return (y1 - y0) * (x1 - x0);
}

#define RETORT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <typename T>
__global__ void max_fwd(Pool2dGeometry g, const T* x, T* y, int64_t* idx) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const T* plane = x + p * g.h * g.w;
    const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
    A best = A(-INFINITY);
    int64_t best_i = -1;
    for (int64_t iy = dmax(y0, 0); iy < dmin(y0 + g.kh, g.h); ++iy)
      for (int64_t ix = dmax(x0, 0); ix < dmin(x0 + g.kw, g.w); ++ix) {
        const A v = ld(plane, iy * g.w + ix);
        if (v > best || v != v || best_i < 0) {
          best = v;
          best_i = iy * g.w + ix;
        }
      }
    st(y, o, best);
    idx[o] = best_i;
  }
}

template <typename T>
__global__ void max_bwd(Pool2dGeometry g, const T* gy, const int64_t* idx, T* gx) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(i, g.planes * g.h * g.w) {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, p = i / (g.w * g.h);
    const int64_t here = iy * g.w + ix;
    int64_t oy0, oy1, ox0, ox1;
    covering(iy, g.kh, g.sh, g.ph, g.oh, oy0, oy1);
    covering(ix, g.kw, g.sw, g.pw, g.ow, ox0, ox1);
    A s = 0;
    for (int64_t oy = oy0; oy < oy1; ++oy)
      for (int64_t ox = ox0; ox < ox1; ++ox) {
        const int64_t o = (p * g.oh + oy) * g.ow + ox;
        if (idx[o] == here) s += ld(gy, o);
      }
    st(gx, i, s);
  }
}

template <typename T>
__global__ void avg_fwd(Pool2dGeometry g, bool include_pad, const T* x, T* y) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const T* plane = x + p * g.h * g.w;
    const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
    A s = 0;
    for (int64_t iy = dmax(y0, 0); iy < dmin(y0 + g.kh, g.h); ++iy)
      for (int64_t ix = dmax(x0, 0); ix < dmin(x0 + g.kw, g.w); ++ix) s += ld(plane, iy * g.w + ix);
    st(y, o, s / A(avg_divisor(g, oy, ox, include_pad)));
  }
}

template <typename T>
__global__ void avg_bwd(Pool2dGeometry g, bool include_pad, const T* gy, T* gx) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(i, g.planes * g.h * g.w) {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, p = i / (g.w * g.h);
    int64_t oy0, oy1, ox0, ox1;
    covering(iy, g.kh, g.sh, g.ph, g.oh, oy0, oy1);
    covering(ix, g.kw, g.sw, g.pw, g.ow, ox0, ox1);
    A s = 0;
    for (int64_t oy = oy0; oy < oy1; ++oy)
      for (int64_t ox = ox0; ox < ox1; ++ox)
        s += ld(gy, (p * g.oh + oy) * g.ow + ox) / A(avg_divisor(g, oy, ox, include_pad));
    st(gx, i, s);
  }
}

template <typename T>
__global__ void adaptive_fwd(Pool2dGeometry g, const T* x, T* y) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const T* plane = x + p * g.h * g.w;
    const int64_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
    const int64_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
    A s = 0;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) s += ld(plane, iy * g.w + ix);
    st(y, o, s / A((y1 - y0) * (x1 - x0)));
  }
}

template <typename T>
__global__ void adaptive_bwd(Pool2dGeometry g, const T* gy, T* gx) {
  using A = typename Acc<T>::type;
  RETORT_GRID_LOOP(i, g.planes * g.h * g.w) {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, p = i / (g.w * g.h);
    // Candidate outputs around the proportional position; containment is checked exactly.
    const int64_t oy_lo = dmax((iy * g.oh) / g.h - 1, 0), oy_hi = dmin(((iy + 1) * g.oh + g.h - 1) / g.h + 1, g.oh);
    const int64_t ox_lo = dmax((ix * g.ow) / g.w - 1, 0), ox_hi = dmin(((ix + 1) * g.ow + g.w - 1) / g.w + 1, g.ow);
    A s = 0;
    for (int64_t oy = oy_lo; oy < oy_hi; ++oy) {
      const int64_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
      if (iy < y0 || iy >= y1) continue;
      for (int64_t ox = ox_lo; ox < ox_hi; ++ox) {
        const int64_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
        if (ix < x0 || ix >= x1) continue;
        s += ld(gy, (p * g.oh + oy) * g.ow + ox) / A((y1 - y0) * (x1 - x0));
      }
    }
    st(gx, i, s);
  }
}
}  // namespace

#define RETORT_POOL_LAUNCH(name, kernel, n, ...)                                                  \
  do {                                                                                          \
    const int64_t n__ = (n);                                                                    \
    if (n__ == 0) return;                                                                       \
    RETORT_CUDA_DISPATCH_FLOAT(type, name, [&] {                                                \
      kernel<scalar_t><<<grid_for(n__), 256, 0, stream()>>>(__VA_ARGS__);                       \
      RETORT_CUDA_LAUNCH_CHECK();                                                               \
    });                                                                                         \
  } while (0)

void max_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y, int64_t* idx) {
  RETORT_POOL_LAUNCH("max_pool2d", max_fwd, g.planes * g.oh * g.ow, g, static_cast<const scalar_t*>(x),
                     static_cast<scalar_t*>(y), idx);
}
void max_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, const int64_t* idx, void* gx) {
  RETORT_POOL_LAUNCH("max_pool2d backward", max_bwd, g.planes * g.h * g.w, g, static_cast<const scalar_t*>(gy), idx,
                     static_cast<scalar_t*>(gx));
}
void avg_pool2d_forward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* x, void* y) {
  RETORT_POOL_LAUNCH("avg_pool2d", avg_fwd, g.planes * g.oh * g.ow, g, count_include_pad,
                     static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y));
}
void avg_pool2d_backward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* gy, void* gx) {
  RETORT_POOL_LAUNCH("avg_pool2d backward", avg_bwd, g.planes * g.h * g.w, g, count_include_pad,
                     static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx));
}
void adaptive_avg_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y) {
  RETORT_POOL_LAUNCH("adaptive_avg_pool2d", adaptive_fwd, g.planes * g.oh * g.ow, g, static_cast<const scalar_t*>(x),
                     static_cast<scalar_t*>(y));
}
void adaptive_avg_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, void* gx) {
  RETORT_POOL_LAUNCH("adaptive_avg_pool2d backward", adaptive_bwd, g.planes * g.h * g.w, g,
                     static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx));
}

}  // namespace retort::cuda
