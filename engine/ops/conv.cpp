// conv2d (NCHW, groups incl. depthwise, stride/padding/dilation): shape checks, autograd,
// dispatch to the CPU im2col + GEMM kernels or cuDNN; conv_transpose2d, its adjoint, from the
// same three kernels (its forward is conv2d's input gradient). bf16 on the CPU is computed in f32
// (and on CUDA too if cuDNN turns bf16 down).
// The backward pieces (input and weight gradients) are first-order only.
// Channels-last (engine/memory_format.h): conv2d gives a channels-last input a channels-last
// output and input gradient. On CUDA (f32, bf16) cuDNN runs natively in NHWC: x, y and their
// gradients stay NHWC and the weight is converted to KRSC memory (to_memory_format(w,
// channels_last)) per call, its gradient back to KCRS; the bias gradient reads an NCHW copy of
// the output gradient. On the CPU (and for f64 on CUDA) the convolution runs on the NCHW copy
// of x through the same kernels (values bitwise those of the NCHW input) and the output is
// converted back. conv_transpose2d stays NCHW (a channels-last input is read through a copy).
#include "engine/autocast.h"
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/memory_format.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/conv_geometry.h"
#include "kernels/conv.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {

Conv2dGeometry conv2d_geometry(const Shape& xs, const Shape& ws, const Conv2dOptions& opt) {
  Conv2dGeometry g;
  g.n = xs[0], g.c = xs[1], g.h = xs[2], g.w = xs[3];
  g.oc = ws[0], g.kh = ws[2], g.kw = ws[3];
  g.stride_h = opt.stride[0], g.stride_w = opt.stride[1];
  g.pad_h = opt.padding[0], g.pad_w = opt.padding[1];
  g.dil_h = opt.dilation[0], g.dil_w = opt.dilation[1];
  g.groups = opt.groups;
  g.oh = (g.h + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
  g.ow = (g.w + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
  return g;
}

namespace {


Conv2dGeometry check_conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt) {
  RETORT_CHECK(x.defined() && w.defined(), "conv2d: undefined operand");
  check_same(x, w, "conv2d");
  RETORT_CHECK(is_floating(x.dtype()), "conv2d: dtype {} is not supported (floating dtypes only)", dtype_name(x.dtype()));
  RETORT_CHECK(x.dim() == 4, "conv2d: input (x) must be 4-D [N, C, H, W], got shape {}", shape_str(x.shape()));
  RETORT_CHECK(w.dim() == 4, "conv2d: weight must be 4-D [OC, C/groups, KH, KW], got shape {}", shape_str(w.shape()));
  RETORT_CHECK(opt.groups >= 1, "conv2d: groups must be >= 1, got {}", opt.groups);
  for (int i = 0; i < 2; ++i) {
    RETORT_CHECK(opt.stride[size_t(i)] >= 1, "conv2d: stride must be >= 1, got [{}, {}]", opt.stride[0], opt.stride[1]);
    RETORT_CHECK(opt.dilation[size_t(i)] >= 1, "conv2d: dilation must be >= 1, got [{}, {}]", opt.dilation[0],
                 opt.dilation[1]);
    RETORT_CHECK(opt.padding[size_t(i)] >= 0, "conv2d: padding must be >= 0, got [{}, {}]", opt.padding[0],
                 opt.padding[1]);
  }
  const int64_t c = x.size(1), oc = w.size(0);
  RETORT_CHECK(c % opt.groups == 0 && oc % opt.groups == 0,
               "conv2d: input channels {} (x {}) and output channels {} (weight {}) must both divide by groups = {}", c,
               shape_str(x.shape()), oc, shape_str(w.shape()), opt.groups);
  RETORT_CHECK(w.size(1) * opt.groups == c,
               "conv2d: channel mismatch: input (x) {} has {} channels but weight {} with groups = {} expects {}",
               shape_str(x.shape()), c, shape_str(w.shape()), opt.groups, w.size(1) * opt.groups);
  if (bias.defined()) {
    check_same(x, bias, "conv2d (bias)");
    RETORT_CHECK(bias.dim() == 1 && bias.size(0) == oc, "conv2d: bias must be [{}] for weight {}, got shape {}", oc,
                 shape_str(w.shape()), shape_str(bias.shape()));
  }
  Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), opt);
  RETORT_CHECK(g.oh >= 1 && g.ow >= 1,
               "conv2d: input (x) {} is too small for kernel {}x{} with padding [{}, {}] and dilation [{}, {}]",
               shape_str(x.shape()), g.kh, g.kw, g.pad_h, g.pad_w, g.dil_h, g.dil_w);
  return g;
}

// bf16 goes through f32 on the CPU (OpenBLAS has no bf16 GEMM) and on CUDA when cuDNN turns
// a bf16 convolution down (NOT_SUPPORTED / no algorithm); other errors propagate.
std::atomic<bool> g_cudnn_bf16_refused{false};
template <typename Native, typename ViaF32>
Tensor bf16_or_f32(const Tensor& ref, Native native, ViaF32 via_f32) {
  if (ref.dtype() != DType::bf16) return native();
  if (ref.device().is_cpu() || g_cudnn_bf16_refused.load()) return via_f32();
  try {
    return native();
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("NOT_SUPPORTED") == std::string::npos && what.find("no algorithm") == std::string::npos) throw;
    if (!g_cudnn_bf16_refused.exchange(true))
      std::fprintf(stderr, "retort: cuDNN refused a bf16 convolution (%s); conv2d runs bf16 through f32 from now on\n",
                   what.c_str());
    return via_f32();
  }
}

// The memory format the kernels read and write for geometry g.
MemoryFormat format_of(const Conv2dGeometry& g) {
  return g.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous;
}
// t with the memory the kernels expect: NCHW/KCRS, or NHWC/KRSC when g.channels_last.
Tensor as_operand(const Tensor& t, const Conv2dGeometry& g) { return to_memory_format(t, format_of(g)); }

// cuDNN runs channels-last natively for f32 and bf16; everything else goes through NCHW.
bool native_channels_last(const Tensor& x) {
  return x.device().is_cuda() && x.dtype() != DType::f64 && suggest_memory_format(x) == MemoryFormat::channels_last;
}

// Runs one of the three kernels on either device; no autograd.
Tensor conv_forward_raw(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& g) {
  auto native = [&] {
    Tensor xc = as_operand(x, g), wc = as_operand(w, g), bc = bias.defined() ? bias.contiguous() : Tensor();
    Tensor y = empty_in_format({g.n, g.oc, g.oh, g.ow}, format_of(g), x.dtype(), x.device());
    const void* bp = bc.defined() ? bc.raw_data() : nullptr;
    RETORT_KERNEL(x.device(), conv2d_forward, x.dtype(), g, xc.raw_data(), wc.raw_data(), bp, y.raw_data());
    return y;
  };
  return bf16_or_f32(x, native, [&] {
    Tensor b32 = bias.defined() ? bias.to(DType::f32) : Tensor();
    return as_operand(conv_forward_raw(x.to(DType::f32), w.to(DType::f32), b32, g).to(DType::bf16), g);
  });
}

Tensor conv_backward_input(const Tensor& gy, const Tensor& w, const Conv2dGeometry& g) {
  auto native = [&] {
    Tensor gyc = as_operand(gy, g), wc = as_operand(w, g);
    Tensor gx = empty_in_format({g.n, g.c, g.h, g.w}, format_of(g), gy.dtype(), gy.device());
    RETORT_KERNEL(gy.device(), conv2d_backward_input, gy.dtype(), g, gyc.raw_data(), wc.raw_data(), gx.raw_data());
    return gx;
  };
  return bf16_or_f32(gy, native, [&] {
    return as_operand(conv_backward_input(gy.to(DType::f32), w.to(DType::f32), g).to(DType::bf16), g);
  });
}

// The weight gradient, always returned KCRS-contiguous like the weight.
Tensor conv_backward_weight(const Tensor& x, const Tensor& gy, const Conv2dGeometry& g) {
  auto native = [&] {
    Tensor xc = as_operand(x, g), gyc = as_operand(gy, g);
    Tensor gw = empty_in_format({g.oc, g.c / g.groups, g.kh, g.kw}, format_of(g), gy.dtype(), gy.device());
    RETORT_KERNEL(gy.device(), conv2d_backward_weight, gy.dtype(), g, xc.raw_data(), gyc.raw_data(), gw.raw_data());
    return to_memory_format(gw, MemoryFormat::contiguous);
  };
  return bf16_or_f32(gy, native, [&] {
    return conv_backward_weight(x.to(DType::f32), gy.to(DType::f32), g).to(DType::bf16);
  });
}

Tensor conv_backward_bias(const Tensor& gy) {
  if (gy.device().is_cpu() && gy.dtype() == DType::bf16) return conv_backward_bias(gy.to(DType::f32)).to(DType::bf16);
  Tensor gyc = to_memory_format(gy, MemoryFormat::contiguous);  // the kernel sums NCHW planes
  const int64_t n = gy.size(0), c = gy.size(1), plane = gy.size(2) * gy.size(3);
  Tensor gb = Tensor::empty({c}, gy.dtype(), gy.device());
  RETORT_KERNEL(gy.device(), conv2d_backward_bias, gy.dtype(), gyc.raw_data(), gb.raw_data(), n, c, plane);
  return gb;
}

}  // namespace

namespace {
// Multiply-adds of one convolution pass, times two: forward, backward input and backward weight
// each do this many.
double conv_flops(const Conv2dGeometry& g) {
  return 2.0 * double(g.n) * double(g.oc) * double(g.oh) * double(g.ow) * double(g.c / g.groups) * double(g.kh) *
         double(g.kw);
}
}  // namespace

Tensor conv2d(const Tensor& x_ac, const Tensor& weight_ac, const Tensor& bias_ac, const Conv2dOptions& opt) {
  const Tensor x = autocast::lower(x_ac);
  const Tensor weight = autocast::lower(weight_ac);
  const Tensor bias = autocast::lower(bias_ac);
  if (x.defined() && x.dim() == 4 && suggest_memory_format(x) == MemoryFormat::channels_last &&
      !native_channels_last(x))
    return through_contiguous(x, [&](const Tensor& xn) { return conv2d(xn, weight, bias, opt); });
  RETORT_PROFILE_OP("conv2d", x, weight);
  Conv2dGeometry g = check_conv(x, weight, bias, opt);
  g.channels_last = native_channels_last(x);
  if (prof.on()) prof.set_flops(conv_flops(g));
  Tensor out;
  {
    NoGradGuard ng;
    out = conv_forward_raw(x.detach(), weight.detach(), bias.defined() ? bias.detach() : Tensor(), g);
  }
  if (needs_grad({&x, &weight, &bias})) {
    Tensor xd = x.detach(), wd = weight.detach();
    bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
    record(out, "conv2d", {x, weight, bias}, [xd, wd, gx, gw, gb, g](const Tensor& gy_in) {
      const Tensor gy = as_operand(gy_in, g);  // once for all three gradients
      std::vector<Tensor> grads(3);
      if (gx) {
        profiler::Range range("conv2d grad input", profiler::Kind::op);
        range.set_flops(conv_flops(g));
        grads[0] = conv_backward_input(gy, wd, g);
      }
      if (gw) {
        profiler::Range range("conv2d grad weight", profiler::Kind::op);
        range.set_flops(conv_flops(g));
        grads[1] = conv_backward_weight(xd, gy, g);
      }
      if (gb) grads[2] = conv_backward_bias(gy);
      return grads;
    });
  }
  return out;
}

Tensor conv_transpose2d(const Tensor& x_ac, const Tensor& weight_ac, const Tensor& bias_ac, const Conv2dOptions& opt,
                        std::array<int64_t, 2> output_padding) {
  const Tensor x = autocast::lower(x_ac);
  const Tensor weight = autocast::lower(weight_ac);
  const Tensor bias = autocast::lower(bias_ac);
  RETORT_PROFILE_OP("conv_transpose2d", x, weight);
  RETORT_CHECK(x.defined() && weight.defined(), "conv_transpose2d: undefined operand");
  RETORT_CHECK(x.dim() == 4, "conv_transpose2d: input (x) must be 4-D [N, C_in, H, W], got shape {}", shape_str(x.shape()));
  RETORT_CHECK(weight.dim() == 4, "conv_transpose2d: weight must be 4-D [C_in, C_out/groups, KH, KW], got shape {}",
               shape_str(weight.shape()));
  RETORT_CHECK(x.size(1) == weight.size(0), "conv_transpose2d: input (x) {} has {} channels but weight {} expects {}",
               shape_str(x.shape()), x.size(1), shape_str(weight.shape()), weight.size(0));
  for (int i = 0; i < 2; ++i)
    RETORT_CHECK(output_padding[size_t(i)] >= 0 &&
                     output_padding[size_t(i)] < std::max(opt.stride[size_t(i)], opt.dilation[size_t(i)]),
                 "conv_transpose2d: output_padding [{}, {}] must be below the stride or the dilation",
                 output_padding[0], output_padding[1]);
  // The convolution this one is the adjoint of: it maps the output [N, C_out, OH, OW] back to
  // x's size, with the same weight read as [C_in (its out channels), C_out/groups, KH, KW].
  const int64_t oh = (x.size(2) - 1) * opt.stride[0] - 2 * opt.padding[0] + opt.dilation[0] * (weight.size(2) - 1) +
                     output_padding[0] + 1;
  const int64_t ow = (x.size(3) - 1) * opt.stride[1] - 2 * opt.padding[1] + opt.dilation[1] * (weight.size(3) - 1) +
                     output_padding[1] + 1;
  RETORT_CHECK(oh >= 1 && ow >= 1, "conv_transpose2d: input (x) {} with weight {} gives an empty output", shape_str(x.shape()),
               shape_str(weight.shape()));
  const Tensor out_probe = Tensor::empty({x.size(0), weight.size(1) * opt.groups, oh, ow}, x.dtype(), x.device());
  const Conv2dGeometry g = check_conv(out_probe, weight, Tensor(), opt);  // checks groups, dtype, device
  RETORT_CHECK(g.oh == x.size(2) && g.ow == x.size(3), "conv_transpose2d: inconsistent geometry for x {}",
               shape_str(x.shape()));
  if (bias.defined()) {
    check_same(x, bias, "conv_transpose2d (bias)");
    RETORT_CHECK(bias.dim() == 1 && bias.size(0) == g.c, "conv_transpose2d: bias must be [{}], got shape {}", g.c,
                 shape_str(bias.shape()));
  }
  if (prof.on()) prof.set_flops(conv_flops(g));
  Tensor out;
  {
    NoGradGuard ng;
    out = conv_backward_input(x.detach(), weight.detach(), g);
    if (bias.defined()) out = add(out, bias.detach().reshape({1, g.c, 1, 1}));
  }
  if (needs_grad({&x, &weight, &bias})) {
    Tensor xd = x.detach(), wd = weight.detach();
    bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
    record(out, "conv_transpose2d", {x, weight, bias}, [xd, wd, gx, gw, gb, g](const Tensor& gy_in) {
      const Tensor gy = gy_in.contiguous();
      std::vector<Tensor> grads(3);
      if (gx) grads[0] = conv_forward_raw(gy, wd, Tensor(), g);  // the adjoint of the adjoint
      if (gw) grads[1] = conv_backward_weight(gy, xd, g);       // gy plays the input, x the output gradient
      if (gb) grads[2] = conv_backward_bias(gy);
      return grads;
    });
  }
  return out;
}

}  // namespace retort
