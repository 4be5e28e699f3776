// CPU pooling kernels (reference for kernels/cuda/pool.cu): OpenMP over planes; backward
// passes scatter each output gradient into its own plane (no two threads share a plane).
#include "kernels/pool.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include "kernels/cpu/dispatch.h"

namespace retort::cpu {
namespace {
// The clipped window of output (oy, ox) and the average's divisor, as in PyTorch.
struct Window {
  int64_t y0, y1, x0, x1;
  int64_t divisor;
};
inline Window avg_window(const Pool2dGeometry& g, int64_t oy, int64_t ox, bool count_include_pad) {
  int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
  int64_t y1 = std::min(y0 + g.kh, g.h + g.ph), x1 = std::min(x0 + g.kw, g.w + g.pw);
  const int64_t pool_size = (y1 - y0) * (x1 - x0);
  y0 = std::max<int64_t>(y0, 0);
  x0 = std::max<int64_t>(x0, 0);
  y1 = std::min(y1, g.h);
  x1 = std::min(x1, g.w);
  return {y0, y1, x0, x1, count_include_pad ? pool_size : (y1 - y0) * (x1 - x0)};
}
}  // namespace

void max_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y, int64_t* idx) {
  RETORT_CPU_DISPATCH_FLOAT(type, "max_pool2d", [&] {
    const scalar_t* in = static_cast<const scalar_t*>(x);
    scalar_t* out = static_cast<scalar_t*>(y);
    const int64_t total = g.planes * g.oh * g.ow;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      const scalar_t* plane = in + p * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
          acc_t best = -std::numeric_limits<acc_t>::infinity();
          int64_t best_i = -1;
          for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + g.kh, g.h); ++iy)
            for (int64_t ix = std::max<int64_t>(x0, 0); ix < std::min(x0 + g.kw, g.w); ++ix) {
              const acc_t v = acc_t(plane[iy * g.w + ix]);
              if (v > best || std::isnan(v) || best_i < 0) {
                best = v;
                best_i = iy * g.w + ix;
              }
            }
          const int64_t o = (p * g.oh + oy) * g.ow + ox;
          out[o] = scalar_t(best);
          idx[o] = best_i;
        }
    }
  });
}

void max_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, const int64_t* idx, void* gx) {
  RETORT_CPU_DISPATCH_FLOAT(type, "max_pool2d backward", [&] {
    const scalar_t* go = static_cast<const scalar_t*>(gy);
    scalar_t* gi = static_cast<scalar_t*>(gx);
    const int64_t total = g.planes * g.h * g.w;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      scalar_t* plane = gi + p * g.h * g.w;
      std::fill(plane, plane + g.h * g.w, scalar_t(0));
      for (int64_t o = p * g.oh * g.ow; o < (p + 1) * g.oh * g.ow; ++o)
        if (idx[o] >= 0) plane[idx[o]] = scalar_t(acc_t(plane[idx[o]]) + acc_t(go[o]));
    }
  });
}

void avg_pool2d_forward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* x, void* y) {
  RETORT_CPU_DISPATCH_FLOAT(type, "avg_pool2d", [&] {
    const scalar_t* in = static_cast<const scalar_t*>(x);
    scalar_t* out = static_cast<scalar_t*>(y);
    const int64_t total = g.planes * g.oh * g.ow;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      const scalar_t* plane = in + p * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const Window win = avg_window(g, oy, ox, count_include_pad);
          acc_t s = 0;
          for (int64_t iy = win.y0; iy < win.y1; ++iy)
            for (int64_t ix = win.x0; ix < win.x1; ++ix) s += acc_t(plane[iy * g.w + ix]);
          out[(p * g.oh + oy) * g.ow + ox] = scalar_t(s / acc_t(win.divisor));
        }
    }
  });
}

void avg_pool2d_backward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* gy, void* gx) {
  RETORT_CPU_DISPATCH_FLOAT(type, "avg_pool2d backward", [&] {
    const scalar_t* go = static_cast<const scalar_t*>(gy);
    scalar_t* gi = static_cast<scalar_t*>(gx);
    const int64_t total = g.planes * g.h * g.w;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      scalar_t* plane = gi + p * g.h * g.w;
      std::fill(plane, plane + g.h * g.w, scalar_t(0));
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const Window win = avg_window(g, oy, ox, count_include_pad);
          const acc_t share = acc_t(go[(p * g.oh + oy) * g.ow + ox]) / acc_t(win.divisor);
          for (int64_t iy = win.y0; iy < win.y1; ++iy)
            for (int64_t ix = win.x0; ix < win.x1; ++ix)
              plane[iy * g.w + ix] = scalar_t(acc_t(plane[iy * g.w + ix]) + share);
        }
    }
  });
}

void adaptive_avg_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y) {
  RETORT_CPU_DISPATCH_FLOAT(type, "adaptive_avg_pool2d", [&] {
    const scalar_t* in = static_cast<const scalar_t*>(x);
    scalar_t* out = static_cast<scalar_t*>(y);
    const int64_t total = g.planes * g.h * g.w;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      const scalar_t* plane = in + p * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
          acc_t s = 0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) s += acc_t(plane[iy * g.w + ix]);
          out[(p * g.oh + oy) * g.ow + ox] = scalar_t(s / acc_t((y1 - y0) * (x1 - x0)));
        }
      }
    }
  });
}

void adaptive_avg_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, void* gx) {
  RETORT_CPU_DISPATCH_FLOAT(type, "adaptive_avg_pool2d backward", [&] {
    const scalar_t* go = static_cast<const scalar_t*>(gy);
    scalar_t* gi = static_cast<scalar_t*>(gx);
    const int64_t total = g.planes * g.h * g.w;
    _Pragma("omp parallel for if (total > 16384)")
    for (int64_t p = 0; p < g.planes; ++p) {
      scalar_t* plane = gi + p * g.h * g.w;
      std::fill(plane, plane + g.h * g.w, scalar_t(0));
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t y0 = adaptive_start(oy, g.h, g.oh), y1 = adaptive_end(oy, g.h, g.oh);
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t x0 = adaptive_start(ox, g.w, g.ow), x1 = adaptive_end(ox, g.w, g.ow);
          const acc_t share = acc_t(go[(p * g.oh + oy) * g.ow + ox]) / acc_t((y1 - y0) * (x1 - x0));
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) plane[iy * g.w + ix] = scalar_t(acc_t(plane[iy * g.w + ix]) + share);
        }
      }
    }
  });
}

}  // namespace retort::cpu
