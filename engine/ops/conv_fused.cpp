// conv2d_bias_act: the inference-only fused convolution, act(conv(x, w) + bias + residual) with
// act = ReLU or identity (what a convolution with a BatchNorm folded into it, plus a ResNet
// block's shortcut and final ReLU, computes: models/fold_batch_norm.h). Shape checks, the
// refusal of gradients, and dispatch to the conv2d_bias_act kernels (kernels/conv.h). bf16 on the
// CPU is computed in f32 (as conv2d does), and on CUDA too if cuDNN turns a bf16 convolution down.
#include "engine/autocast.h"
#include <atomic>
#include <cstdio>
#include <string>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/ops.h"
#include "engine/ops/conv_geometry.h"
#include "engine/ops/broadcast.h"
#include "engine/profiler.h"
#include "kernels/conv.h"

namespace retort {
namespace {

void check_options(const Conv2dOptions& opt) {
  RETORT_CHECK(opt.groups >= 1, "conv2d_bias_act: groups must be >= 1, got {}", opt.groups);
  for (size_t i = 0; i < 2; ++i)
    RETORT_CHECK(opt.stride[i] >= 1 && opt.dilation[i] >= 1 && opt.padding[i] >= 0,
                 "conv2d_bias_act: stride [{}, {}] and dilation [{}, {}] must be >= 1, padding [{}, {}] >= 0",
                 opt.stride[0], opt.stride[1], opt.dilation[0], opt.dilation[1], opt.padding[0], opt.padding[1]);
}

// The convolution's own checks (as conv2d's), then the bias and residual.
Conv2dGeometry check_fused(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                           const Conv2dOptions& opt) {
  RETORT_CHECK(x.defined() && w.defined() && bias.defined(), "conv2d_bias_act: x, weight and bias are required");
  check_same(x, w, "conv2d_bias_act");
  check_same(x, bias, "conv2d_bias_act (bias)");
  RETORT_CHECK(is_floating(x.dtype()), "conv2d_bias_act: dtype {} is not supported (floating dtypes only)",
               dtype_name(x.dtype()));
  RETORT_CHECK(x.dim() == 4 && w.dim() == 4,
               "conv2d_bias_act: x {} must be [N, C, H, W] and weight {} [OC, C/groups, KH, KW]", shape_str(x.shape()),
               shape_str(w.shape()));
  check_options(opt);
  const int64_t c = x.size(1), oc = w.size(0);
  RETORT_CHECK(c % opt.groups == 0 && oc % opt.groups == 0 && w.size(1) * opt.groups == c,
               "conv2d_bias_act: x {} and weight {} do not match with groups = {}", shape_str(x.shape()),
               shape_str(w.shape()), opt.groups);
  RETORT_CHECK(bias.dim() == 1 && bias.size(0) == oc, "conv2d_bias_act: bias must be [{}] for weight {}, got {}", oc,
               shape_str(w.shape()), shape_str(bias.shape()));
  const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), opt);
  RETORT_CHECK(g.oh >= 1 && g.ow >= 1, "conv2d_bias_act: x {} is too small for kernel {}x{} with padding [{}, {}]",
               shape_str(x.shape()), g.kh, g.kw, g.pad_h, g.pad_w);
  if (residual.defined()) {
    check_same(x, residual, "conv2d_bias_act (residual)");
    const Shape out{g.n, g.oc, g.oh, g.ow};
    RETORT_CHECK(residual.shape() == out, "conv2d_bias_act: residual {} must have the output's shape {}",
                 shape_str(residual.shape()), shape_str(out));
  }
  return g;
}

Tensor fused_native(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool relu,
                    const Conv2dGeometry& g) {
  Tensor xc = x.contiguous(), wc = w.contiguous(), bc = bias.contiguous();
  Tensor rc = residual.defined() ? residual.contiguous() : Tensor();
  Tensor y = Tensor::empty({g.n, g.oc, g.oh, g.ow}, x.dtype(), x.device());
  RETORT_KERNEL(x.device(), conv2d_bias_act, x.dtype(), g, xc.raw_data(), wc.raw_data(), bc.raw_data(),
                rc.defined() ? rc.raw_data() : nullptr, relu, y.raw_data());
  return y;
}

Tensor fused_via_f32(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool relu,
                     const Conv2dGeometry& g) {
  Tensor r32 = residual.defined() ? residual.to(DType::f32) : Tensor();
  return fused_native(x.to(DType::f32), w.to(DType::f32), bias.to(DType::f32), r32, relu, g).to(DType::bf16);
}

// bf16: through f32 on the CPU, and on CUDA once cuDNN has turned a bf16 convolution down
// (NOT_SUPPORTED / no algorithm; said once on stderr); other errors propagate.
std::atomic<bool> g_bf16_refused{false};
Tensor fused_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool relu,
                     const Conv2dGeometry& g) {
  if (x.dtype() != DType::bf16) return fused_native(x, w, bias, residual, relu, g);
  if (x.device().is_cpu() || g_bf16_refused.load()) return fused_via_f32(x, w, bias, residual, relu, g);
  try {
    return fused_native(x, w, bias, residual, relu, g);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("NOT_SUPPORTED") == std::string::npos && what.find("no algorithm") == std::string::npos) throw;
    if (!g_bf16_refused.exchange(true))
      std::fprintf(stderr,
                   "retort: cuDNN refused a bf16 convolution (%s); conv2d_bias_act runs bf16 through f32 from now on\n",
                   what.c_str());
    return fused_via_f32(x, w, bias, residual, relu, g);
  }
}

double conv_flops(const Conv2dGeometry& g) {
  return 2.0 * double(g.n) * double(g.oc) * double(g.oh) * double(g.ow) * double(g.c / g.groups) * double(g.kh) *
         double(g.kw);
}

}  // namespace

Tensor conv2d_bias_act(const Tensor& x_ac, const Tensor& weight_ac, const Tensor& bias_ac, const Tensor& residual_ac,
                       bool relu, const Conv2dOptions& opt) {
  const Tensor x = autocast::lower(x_ac);
  const Tensor weight = autocast::lower(weight_ac);
  const Tensor bias = autocast::lower(bias_ac);
  const Tensor residual = autocast::lower(residual_ac);
  RETORT_PROFILE_OP("conv2d_bias_act", x, weight);
  RETORT_CHECK(!needs_grad({&x, &weight, &bias, &residual}),
               "conv2d_bias_act: an input requires a gradient and grad mode is on, but this fused op is inference-only "
               "(no backward); run it under NoGradGuard, detach the inputs, or use conv2d + add + relu");
  const Conv2dGeometry g = check_fused(x, weight, bias, residual, opt);
  if (prof.on()) prof.set_flops(conv_flops(g));
  return fused_forward(x.detach(), weight.detach(), bias.detach(), residual.defined() ? residual.detach() : Tensor(),
                       relu, g);
}

}  // namespace retort
