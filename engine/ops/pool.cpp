// Pooling ops (NCHW): max_pool2d (argmax indices saved for backward), avg_pool2d
// (count_include_pad) and adaptive_avg_pool2d. Shape checks, autograd, dispatch.
// A channels-last input (engine/memory_format.h) is pooled through its NCHW copy and all three
// return a channels-last result (input gradient channels-last too): no native NHWC kernel, the
// conversions cost one extra read + write of the input and of the (smaller) output.
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/memory_format.h"
#include "engine/ops.h"
#include "kernels/pool.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {

void check_input(const Tensor& x, const char* op) {
  RETORT_CHECK(x.defined(), "{}: undefined input", op);
  RETORT_CHECK(is_floating(x.dtype()), "{}: dtype {} is not supported (floating dtypes only)", op,
               dtype_name(x.dtype()));
  RETORT_CHECK(x.dim() == 4, "{}: input (x) must be 4-D [N, C, H, W], got shape {}", op, shape_str(x.shape()));
}

Pool2dGeometry window_geometry(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                               std::array<int64_t, 2> padding, const char* op) {
  check_input(x, op);
  for (int i = 0; i < 2; ++i) {
    const size_t d = size_t(i);
    RETORT_CHECK(kernel[d] >= 1, "{}: kernel must be >= 1, got [{}, {}]", op, kernel[0], kernel[1]);
    RETORT_CHECK(stride[d] >= 1, "{}: stride must be >= 1, got [{}, {}]", op, stride[0], stride[1]);
    RETORT_CHECK(padding[d] >= 0 && 2 * padding[d] <= kernel[d],
                 "{}: padding [{}, {}] must be >= 0 and at most half the kernel [{}, {}]", op, padding[0], padding[1],
                 kernel[0], kernel[1]);
  }
  Pool2dGeometry g;
  g.planes = x.size(0) * x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.kh = kernel[0], g.kw = kernel[1], g.sh = stride[0], g.sw = stride[1], g.ph = padding[0], g.pw = padding[1];
  g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
  RETORT_CHECK(g.h + 2 * g.ph >= g.kh && g.w + 2 * g.pw >= g.kw && g.oh >= 1 && g.ow >= 1,
               "{}: input (x) {} is too small for kernel [{}, {}] with padding [{}, {}]", op, shape_str(x.shape()),
               g.kh, g.kw, g.ph, g.pw);
  return g;
}

Shape out_shape(const Tensor& x, const Pool2dGeometry& g) { return {x.size(0), x.size(1), g.oh, g.ow}; }

// Runs a backward kernel, kernel(device, gy, gx), into a fresh gradient of x's shape.
template <typename Kernel>
Tensor backward_into(const Shape& x_shape, const Tensor& gy_in, Kernel kernel) {
  Tensor gy = gy_in.contiguous();
  Tensor gx = Tensor::empty(x_shape, gy.dtype(), gy.device());
  kernel(gy.device(), gy.raw_data(), gx.raw_data());
  return gx;
}
}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  if (suggest_memory_format(x) == MemoryFormat::channels_last)
    return through_contiguous(x, [&](const Tensor& xn) { return max_pool2d(xn, kernel, stride, padding); });
  RETORT_PROFILE_OP("max_pool2d", x);
  const Pool2dGeometry g = window_geometry(x, kernel, stride, padding, "max_pool2d");
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(out_shape(x, g), x.dtype(), x.device());
  Tensor idx = Tensor::empty(out_shape(x, g), DType::i64, x.device());
  RETORT_KERNEL(x.device(), max_pool2d_forward, x.dtype(), g, xc.raw_data(), y.raw_data(), idx.data<int64_t>());
  if (needs_grad({&x})) {
    Shape xs = x.shape();
    DType dt = x.dtype();
    record(y, "max_pool2d", {x}, [g, idx, xs, dt](const Tensor& gy) {
      const int64_t* ip = idx.data<int64_t>();
      return std::vector<Tensor>{backward_into(
          xs, gy, [&](Device d, const void* go, void* gi) { RETORT_KERNEL(d, max_pool2d_backward, dt, g, go, ip, gi); })};
    });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, bool count_include_pad) {
  if (suggest_memory_format(x) == MemoryFormat::channels_last)
    return through_contiguous(x, [&](const Tensor& xn) { return avg_pool2d(xn, kernel, stride, padding); });
  RETORT_PROFILE_OP("avg_pool2d", x);
  const Pool2dGeometry g = window_geometry(x, kernel, stride, padding, "avg_pool2d");
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(out_shape(x, g), x.dtype(), x.device());
  RETORT_KERNEL(x.device(), avg_pool2d_forward, x.dtype(), g, count_include_pad, xc.raw_data(), y.raw_data());
  if (needs_grad({&x})) {
    Shape xs = x.shape();
    DType dt = x.dtype();
    record(y, "avg_pool2d", {x}, [g, xs, dt, count_include_pad](const Tensor& gy) {
      return std::vector<Tensor>{backward_into(
          xs, gy, [&](Device d, const void* go, void* gi) {
            RETORT_KERNEL(d, avg_pool2d_backward, dt, g, count_include_pad, go, gi);
          })};
    });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size) {
  if (suggest_memory_format(x) == MemoryFormat::channels_last)
    return through_contiguous(x, [&](const Tensor& xn) { return adaptive_avg_pool2d(xn, output_size); });
  RETORT_PROFILE_OP("adaptive_avg_pool2d", x);
  check_input(x, "adaptive_avg_pool2d");
  RETORT_CHECK(output_size[0] >= 1 && output_size[1] >= 1, "adaptive_avg_pool2d: output_size must be >= 1, got [{}, {}]",
               output_size[0], output_size[1]);
  RETORT_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "adaptive_avg_pool2d: input (x) {} has an empty spatial dim",
               shape_str(x.shape()));
  Pool2dGeometry g;
  g.planes = x.size(0) * x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.oh = output_size[0];
  g.ow = output_size[1];
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(out_shape(x, g), x.dtype(), x.device());
  RETORT_KERNEL(x.device(), adaptive_avg_pool2d_forward, x.dtype(), g, xc.raw_data(), y.raw_data());
  if (needs_grad({&x})) {
    Shape xs = x.shape();
    DType dt = x.dtype();
    record(y, "adaptive_avg_pool2d", {x}, [g, xs, dt](const Tensor& gy) {
      return std::vector<Tensor>{backward_into(
          xs, gy, [&](Device d, const void* go, void* gi) { RETORT_KERNEL(d, adaptive_avg_pool2d_backward, dt, g, go, gi); })};
    });
  }
  return y;
}

}  // namespace retort
