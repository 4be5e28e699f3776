// CPU convolution: the batch is cut into chunks of a few samples spread over the OpenMP team
// (dynamic schedule; static for the weight gradient), each thread with its own column buffer.
// For each chunk and group the input is unfolded (im2col) into a column matrix
// [Cg*kh*kw, chunk*oh*ow] and one single-threaded OpenBLAS GEMM does the work (see
// cpu::blas_init: OpenBLAS's spinning workers would fight the OpenMP team on a small CPU;
// a lone chunk splits its GEMMs over the team instead).
// col2im folds column gradients back. The weight gradient sums per-thread partials in thread
// order (deterministic for a fixed thread count).
// conv2d_bias_act (inference) runs the forward above, then one pass adding bias and residual and
// applying the ReLU.
#include "kernels/conv.h"
#include "kernels/cpu/conv_onednn.h"
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>
#include <omp.h>
#include "kernels/cpu/blas.h"
#include "kernels/matmul.h"
#include "core/check.h"

namespace retort::cpu {
namespace {

// Row-major GEMM through cpu::gemm: one BLAS call inside a chunk worker, split over the
// team when called outside a parallel region (a batch of one sample).
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
             int64_t ldb, T beta, T* c, int64_t ldc) {
  GemmArgs args;
  args.dtype = std::is_same_v<T, float> ? DType::f32 : DType::f64;
  args.m = m, args.n = n, args.k = k;
  args.a = a, args.trans_a = ta, args.lda = lda;
  args.b = b, args.trans_b = tb, args.ldb = ldb;
  args.c = c, args.ldc = ldc;
  args.alpha = double(alpha), args.beta = double(beta);
  gemm(args);
}

// Derived sizes of one convolution.
struct Plan {
  int64_t cg, ocg, ck, l;  // channels per group, out channels per group, rows of col, out pixels
  int64_t chunk;           // samples per chunk
  int64_t chunks;          // number of chunks
};
template <typename T>
Plan make_plan(const Conv2dGeometry& g) {
  Plan p;
  p.cg = g.c / g.groups;
  p.ocg = g.oc / g.groups;
  p.ck = p.cg * g.kh * g.kw;
  p.l = g.oh * g.ow;
  // Each thread's column buffer stays near 2 MiB (cache-sized); every thread gets a chunk.
  const int64_t per_sample = std::max<int64_t>(p.ck * p.l * int64_t(sizeof(T)), 1);
  const int64_t threads = std::max(1, omp_get_max_threads());
  const int64_t fair = std::max<int64_t>((g.n + threads - 1) / threads, 1);
  p.chunk = std::clamp<int64_t>((int64_t(2) << 20) / per_sample, 1, fair);
  p.chunks = (g.n + p.chunk - 1) / p.chunk;
  return p;
}

// Output columns [lo, hi) whose input column ox * stride + x0 lies inside [0, w).
inline void valid_range(int64_t x0, int64_t stride, int64_t w, int64_t ow, int64_t& lo, int64_t& hi) {
  lo = x0 >= 0 ? 0 : (-x0 + stride - 1) / stride;
  hi = x0 > w - 1 ? 0 : std::min(ow, (w - 1 - x0) / stride + 1);
  lo = std::min(lo, ow);
  hi = std::max(hi, lo);
}

// col[(ci * kh + ki) * kw + kj][s * l + oy * ow + ox] for samples n0 .. n0 + nb of group grp.
template <typename T>
void im2col(const Conv2dGeometry& g, const Plan& p, const T* x, int64_t n0, int64_t nb, int64_t grp, T* col) {
  const int64_t ld = nb * p.l;
  const int64_t tasks = nb * p.cg;
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t s = t / p.cg, ci = t % p.cg;
    const T* plane = x + ((n0 + s) * g.c + grp * p.cg + ci) * g.h * g.w;
    for (int64_t ki = 0; ki < g.kh; ++ki)
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        T* row = col + ((ci * g.kh + ki) * g.kw + kj) * ld + s * p.l;
        for (int64_t oy = 0; oy < g.oh; ++oy) {
          T* out = row + oy * g.ow;
          const int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dil_h;
          if (iy < 0 || iy >= g.h) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* in = plane + iy * g.w;
          const int64_t x0 = kj * g.dil_w - g.pad_w;
          int64_t lo, hi;
          valid_range(x0, g.stride_w, g.w, g.ow, lo, hi);
          std::fill(out, out + lo, T(0));
          if (g.stride_w == 1) {
            std::copy(in + lo + x0, in + hi + x0, out + lo);
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) out[ox] = in[ox * g.stride_w + x0];
          }
          std::fill(out + hi, out + g.ow, T(0));
        }
      }
  }
}

// Adds the column gradient back into gx (the inverse scatter of im2col).
template <typename T>
void col2im(const Conv2dGeometry& g, const Plan& p, const T* col, int64_t n0, int64_t nb, int64_t grp, T* gx) {
  const int64_t ld = nb * p.l;
  const int64_t tasks = nb * p.cg;
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t s = t / p.cg, ci = t % p.cg;
    T* plane = gx + ((n0 + s) * g.c + grp * p.cg + ci) * g.h * g.w;
    for (int64_t ki = 0; ki < g.kh; ++ki)
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const T* row = col + ((ci * g.kh + ki) * g.kw + kj) * ld + s * p.l;
        for (int64_t oy = 0; oy < g.oh; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dil_h;
          if (iy < 0 || iy >= g.h) continue;
          const T* in = row + oy * g.ow;
          T* out = plane + iy * g.w;
          const int64_t x0 = kj * g.dil_w - g.pad_w;
          int64_t lo, hi;
          valid_range(x0, g.stride_w, g.w, g.ow, lo, hi);
          for (int64_t ox = lo; ox < hi; ++ox) out[ox * g.stride_w + x0] += in[ox];
        }
      }
  }
}

// dy of group grp for samples n0 .. n0 + nb as a matrix [ocg, nb * l].
template <typename T>
void gather_dy(const Conv2dGeometry& g, const Plan& p, const T* gy, int64_t n0, int64_t nb, int64_t grp, T* out) {
  const int64_t tasks = nb * p.ocg;
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t s = t / p.ocg, o = t % p.ocg;
    std::memcpy(out + o * nb * p.l + s * p.l, gy + ((n0 + s) * g.oc + grp * p.ocg + o) * p.l, size_t(p.l) * sizeof(T));
  }
}

// Runs body(n0, nb, col, buf) for every chunk, chunks spread over the OpenMP team; col and
// buf are the calling thread's buffers of ck * chunk * l and ocg * chunk * l elements.
// Dynamic scheduling keeps both cores busy when one is preempted (a shared machine); bodies
// that accumulate per thread ask for a static schedule so the sum order stays fixed.
template <typename T, typename Body>
void for_each_chunk(const Conv2dGeometry& g, const Plan& p, bool static_schedule, Body&& body) {
  const bool parallel = p.chunks > 1 && g.n * p.ocg * p.ck * p.l > 65536;
#pragma omp parallel if (parallel)
  {
    std::vector<T> col(size_t(p.ck * p.chunk * p.l)), buf(size_t(p.ocg * p.chunk * p.l));
    auto run = [&](int64_t c) {
      const int64_t n0 = c * p.chunk;
      body(n0, std::min(p.chunk, g.n - n0), col.data(), buf.data());
    };
    if (static_schedule) {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < p.chunks; ++c) run(c);
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < p.chunks; ++c) run(c);
    }
  }
}

template <typename T>
void forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const Plan p = make_plan<T>(g);
  for_each_chunk<T>(g, p, false, [&](int64_t n0, int64_t nb, T* col, T* prod) {
    const int64_t ld = nb * p.l;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(g, p, x, n0, nb, grp, col);
      gemm_rm(false, false, p.ocg, ld, p.ck, T(1), w + grp * p.ocg * p.ck, p.ck, col, ld, T(0), prod, ld);
      for (int64_t s = 0; s < nb; ++s)
        for (int64_t o = 0; o < p.ocg; ++o) {
          const T b = bias ? bias[grp * p.ocg + o] : T(0);
          const T* src = prod + o * ld + s * p.l;
          T* dst = y + ((n0 + s) * g.oc + grp * p.ocg + o) * p.l;
          for (int64_t i = 0; i < p.l; ++i) dst[i] = src[i] + b;
        }
    }
  });
}

template <typename T>
void backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const Plan p = make_plan<T>(g);
  for_each_chunk<T>(g, p, false, [&](int64_t n0, int64_t nb, T* col, T* dy) {
    const int64_t ld = nb * p.l;
    std::fill(gx + n0 * g.c * g.h * g.w, gx + (n0 + nb) * g.c * g.h * g.w, T(0));
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      gather_dy(g, p, gy, n0, nb, grp, dy);
      // dcol [ck, ld] = w_g^T [ck, ocg] dy [ocg, ld]
      gemm_rm(true, false, p.ck, ld, p.ocg, T(1), w + grp * p.ocg * p.ck, p.ck, dy, ld, T(0), col, ld);
      col2im(g, p, col, n0, nb, grp, gx);
    }
  });
}

template <typename T>
void backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  const Plan p = make_plan<T>(g);
  const int64_t nw = g.oc * p.ck;
  const int64_t threads = std::max(1, omp_get_max_threads());
  std::vector<T> partial(size_t(threads * nw), T(0));
  for_each_chunk<T>(g, p, true, [&](int64_t n0, int64_t nb, T* col, T* dy) {
    const int64_t ld = nb * p.l;
    T* mine = partial.data() + int64_t(omp_get_thread_num()) * nw;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(g, p, x, n0, nb, grp, col);
      gather_dy(g, p, gy, n0, nb, grp, dy);
      // gw_g [ocg, ck] += dy [ocg, ld] col^T [ld, ck]
      gemm_rm(false, true, p.ocg, p.ck, ld, T(1), dy, ld, col, ld, T(1), mine + grp * p.ocg * p.ck, p.ck);
    }
  });
  std::copy(partial.begin(), partial.begin() + nw, gw);
  for (int64_t t = 1; t < threads; ++t)
    for (int64_t i = 0; i < nw; ++i) gw[i] += partial[size_t(t * nw + i)];
}

void check_type(DType type, const char* what) {
  RETORT_REQUIRE(type == DType::f32 || type == DType::f64, what, ": dtype ", type,
                 " is not supported by the CPU kernel (f32, f64; bf16 goes through f32)");
}
// The op layer converts channels-last operands to NCHW before the CPU kernels.
void check_nchw(const Conv2dGeometry& g) {
  RETORT_REQUIRE(!g.channels_last, "conv2d: the CPU kernels are NCHW only (channels_last geometry given)");
}
bool empty_problem(const Conv2dGeometry& g) { return g.n == 0 || g.oc == 0 || g.oh == 0 || g.ow == 0; }
}  // namespace

void conv2d_forward(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                    void* y) {
  check_type(type, "conv2d");
  check_nchw(g);
  if (empty_problem(g)) return;
  if (type == DType::f32) {
    const float *xf = static_cast<const float*>(x), *wf = static_cast<const float*>(weight),
                *bf = static_cast<const float*>(bias);
    if (conv_backend() == ConvBackend::onednn && onednn::conv2d_forward(g, xf, wf, bf, static_cast<float*>(y))) return;
    forward(g, xf, wf, bf, static_cast<float*>(y));
  }
  else
    forward(g, static_cast<const double*>(x), static_cast<const double*>(weight), static_cast<const double*>(bias),
            static_cast<double*>(y));
}

void conv2d_backward_input(DType type, const Conv2dGeometry& g, const void* gy, const void* weight, void* gx) {
  check_type(type, "conv2d backward");
  check_nchw(g);
  if (type == DType::f32) {
    if (empty_problem(g)) std::fill_n(static_cast<float*>(gx), g.n * g.c * g.h * g.w, 0.f);
    else if (conv_backend() != ConvBackend::onednn ||
             !onednn::conv2d_backward_input(g, static_cast<const float*>(gy), static_cast<const float*>(weight),
                                            static_cast<float*>(gx)))
      backward_input(g, static_cast<const float*>(gy), static_cast<const float*>(weight), static_cast<float*>(gx));
  } else {
    if (empty_problem(g)) std::fill_n(static_cast<double*>(gx), g.n * g.c * g.h * g.w, 0.0);
    else backward_input(g, static_cast<const double*>(gy), static_cast<const double*>(weight), static_cast<double*>(gx));
  }
}

void conv2d_backward_weight(DType type, const Conv2dGeometry& g, const void* x, const void* gy, void* gw) {
  check_type(type, "conv2d backward");
  check_nchw(g);
  const int64_t nw = g.oc * (g.c / g.groups) * g.kh * g.kw;
  if (type == DType::f32) {
    if (empty_problem(g)) std::fill_n(static_cast<float*>(gw), nw, 0.f);
    else if (conv_backend() != ConvBackend::onednn ||
             !onednn::conv2d_backward_weight(g, static_cast<const float*>(x), static_cast<const float*>(gy),
                                             static_cast<float*>(gw)))
      backward_weight(g, static_cast<const float*>(x), static_cast<const float*>(gy), static_cast<float*>(gw));
  } else {
    if (empty_problem(g)) std::fill_n(static_cast<double*>(gw), nw, 0.0);
    else backward_weight(g, static_cast<const double*>(x), static_cast<const double*>(gy), static_cast<double*>(gw));
  }
}

void conv2d_backward_bias(DType type, const void* gy, void* gb, int64_t n, int64_t c, int64_t plane) {
  check_type(type, "conv2d backward");
  auto run = [&](auto* out, const auto* in) {
    using T = std::remove_pointer_t<decltype(out)>;
#pragma omp parallel for if (n * c * plane > 65536)
    for (int64_t ch = 0; ch < c; ++ch) {
      double acc = 0;  // plane sums in T, channel total in double
      for (int64_t s = 0; s < n; ++s) {
        const T* p = in + (s * c + ch) * plane;
        T part = 0;
        for (int64_t i = 0; i < plane; ++i) part += p[i];
        acc += double(part);
      }
      out[ch] = T(acc);
    }
  };
  if (type == DType::f32) run(static_cast<float*>(gb), static_cast<const float*>(gy));
  else run(static_cast<double*>(gb), static_cast<const double*>(gy));
}

namespace {
// y = act(y + bias[c] + residual), one pass over the convolution's output (bias first, then the
// residual, in T: the same roundings as adding them with separate ops).
template <typename T>
void add_bias_residual_act(const Conv2dGeometry& g, const T* bias, const T* residual, bool relu, T* y) {
  const int64_t plane = g.oh * g.ow, planes = g.n * g.oc;
#pragma omp parallel for if (planes * plane > 65536)
  for (int64_t p = 0; p < planes; ++p) {
    const T b = bias[p % g.oc];
    T* out = y + p * plane;
    const T* res = residual ? residual + p * plane : nullptr;
    for (int64_t i = 0; i < plane; ++i) {
      T v = out[i] + b;
      if (res) v = v + res[i];
      out[i] = relu && v < T(0) ? T(0) : v;  // NaN passes, like relu
    }
  }
}
}  // namespace

void conv2d_bias_act(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                     const void* residual, bool relu, void* y) {
  check_type(type, "conv2d_bias_act");
  RETORT_REQUIRE(bias != nullptr, "conv2d_bias_act: the bias is required");
  conv2d_forward(type, g, x, weight, nullptr, y);
  if (empty_problem(g)) return;
  if (type == DType::f32)
    add_bias_residual_act(g, static_cast<const float*>(bias), static_cast<const float*>(residual), relu,
                          static_cast<float*>(y));
  else
    add_bias_residual_act(g, static_cast<const double*>(bias), static_cast<const double*>(residual), relu,
                          static_cast<double*>(y));
}
}  // namespace retort::cpu
