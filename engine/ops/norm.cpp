// batch_norm2d and layer_norm: shape checks, running-statistics update, autograd wiring and
// dispatch to the fused kernels in kernels/cpu/norm.* and kernels/cuda/norm.*.
// batch_norm2d accepts [N, C, H, W] (and, like BatchNorm1d, [N, C] or [N, C, L]). It runs in its
// input's dtype with the statistics, the parameters and their gradients in f32 (f64 for f64), so
// a bf16 activation stays bf16 under autocast (as PyTorch's cuDNN batch norm does) instead of
// being cast up and written in f32. A channels-last input (engine/memory_format.h) is normalised
// in place in its NHWC memory by the CUDA kernels (kernels/cuda/bn_nhwc.cu); on the CPU it goes
// through its NCHW copy and back (two extra passes each way), so CPU values are bitwise those of
// the NCHW input whatever the layout. batch_norm2d_act adds the epilogue of kernels/norm.h
// (y = relu?(bn(x) + residual?)) in the same pass, and its backward the ReLU's mask and the
// residual's gradient in the batch-norm backward's passes.
#include "engine/autocast.h"
#include "engine/memory_format.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/norm.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {

// Statistics and parameter gradients are kept in the accumulation dtype of the kernels.
DType stat_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

void check_input(const Tensor& x, const char* op) {
  RETORT_CHECK(x.defined(), "{}: the input is undefined", op);
  RETORT_CHECK(is_floating(x.dtype()), "{}: input must be f32, f64 or bf16, got {}", op, x.str());
}

// A per-channel tensor: undefined, or [C] on x's device (of x's dtype when same_dtype).
void check_channel_tensor(const Tensor& p, const Tensor& x, int64_t C, const char* what, const char* op,
                          bool same_dtype) {
  if (!p.defined()) return;
  RETORT_CHECK(p.dim() == 1 && p.size(0) == C, "{}: {} must have shape [{}] to match input {}, got {}", op, what, C,
               shape_str(x.shape()), shape_str(p.shape()));
  RETORT_CHECK(p.device() == x.device(), "{}: {} is on {} but the input is on {}", op, what, p.device().str(),
               x.device().str());
  if (same_dtype)
    RETORT_CHECK(p.dtype() == x.dtype(), "{}: {} has dtype {} but the input has {}", op, what, dtype_name(p.dtype()),
                 dtype_name(x.dtype()));
  else
    RETORT_CHECK(is_floating(p.dtype()), "{}: {} must be a floating tensor, got {}", op, what, p.str());
}

// batch_norm2d's weight and bias: the input's dtype, or the statistics dtype (f32 for a bf16
// input: autocast's f32 master weights).
void check_parameter_dtype(const Tensor& p, const Tensor& x, const char* what) {
  if (!p.defined()) return;
  const DType dt = p.dtype();
  RETORT_CHECK(dt == x.dtype() || dt == stat_dtype(x.dtype()),
               "batch_norm2d: {} has dtype {} but the input has {} (parameters take the input's dtype, or f32 for "
               "a bf16 input)", what, dtype_name(dt), dtype_name(x.dtype()));
}

const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
void* mut_ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// x dense in `format`'s exact strides (a copy only when it is not already).
Tensor dense_in(const Tensor& x, MemoryFormat format) {
  return format == MemoryFormat::contiguous ? x.contiguous() : to_memory_format(x, format);
}

// A batch-norm parameter as the kernels read it: dense, in the statistics dtype.
Tensor in_stat_dtype(const Tensor& p, DType sd) { return p.defined() ? p.detach().to(sd).contiguous() : Tensor(); }

// Brings a kernel's accumulation-dtype parameter gradient to the parameter's dtype.
Tensor as_param_grad(const Tensor& g, const Tensor& param) {
  if (!g.defined()) return g;
  return g.dtype() == param.dtype() ? g : g.to(param.dtype());
}

}  // namespace

void update_batch_norm_running_stats(Tensor running_mean, Tensor running_var, const Tensor& mean, const Tensor& var,
                                     double momentum, double count) {
  NoGradGuard ng;
  Tensor rm = running_mean.detach(), rv = running_var.detach();
  rm.copy_(add(mul(rm, 1.0 - momentum), mul(mean.to(rm.dtype()), momentum)));
  rv.copy_(add(mul(rv, 1.0 - momentum), mul(var.to(rv.dtype()), momentum * count / (count - 1.0))));
}

namespace {

// The epilogue's residual as the kernels read it: x's shape, device and dtype, dense in x's format.
Tensor checked_residual(const Tensor& residual, const Tensor& x, MemoryFormat format, const char* op) {
  if (!residual.defined()) return residual;
  RETORT_CHECK(residual.shape() == x.shape() && residual.device() == x.device() && residual.dtype() == x.dtype(),
               "{}: the residual is {} but the input is {}", op, residual.str(), x.str());
  return dense_in(residual.detach(), format);
}

// batch_norm2d with its optional epilogue (kernels/norm.h): y = relu?(bn(x) + residual?).
Tensor batch_norm_with_epilogue(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                Tensor running_mean, Tensor running_var, bool training, double momentum, double eps,
                                const Tensor& residual, bool relu) {
  check_input(x, op);
  RETORT_CHECK(x.dim() >= 2 && x.dim() <= 4, "{}: input must be [N, C, H, W] (or [N, C], [N, C, L]), got {}", op,
               shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1);
  RETORT_CHECK(N > 0 && C > 0, "{}: input {} is empty", op, shape_str(x.shape()));
  const int64_t S = x.numel() / (N * C);
  check_channel_tensor(weight, x, C, "weight", op, false);
  check_channel_tensor(bias, x, C, "bias", op, false);
  check_parameter_dtype(weight, x, "weight");
  check_parameter_dtype(bias, x, "bias");
  RETORT_CHECK(running_mean.defined() == running_var.defined(),
               "{}: running_mean and running_var must both be given or both be undefined", op);
  check_channel_tensor(running_mean, x, C, "running_mean", op, false);
  check_channel_tensor(running_var, x, C, "running_var", op, false);
  const bool batch_stats = training || !running_mean.defined();
  RETORT_CHECK(!batch_stats || N * S > 1, "{}: batch statistics need more than one value per channel, got input {}",
               op, shape_str(x.shape()));

  const bool nhwc = suggest_memory_format(x) == MemoryFormat::channels_last;
  const DType sd = stat_dtype(x.dtype());
  const MemoryFormat format = nhwc ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  Tensor xc = dense_in(x.detach(), format), rc = checked_residual(residual, x, format, op);
  Tensor wc = in_stat_dtype(weight, sd), bc = in_stat_dtype(bias, sd);
  Tensor y = empty_in_format(x.shape(), format, x.dtype(), x.device());
  Tensor mean = Tensor::empty({C}, sd, x.device()), var = Tensor::empty({C}, sd, x.device());
  Tensor invstd = Tensor::empty({C}, sd, x.device());
  if (!batch_stats) {
    mean.copy_(running_mean.detach());
    var.copy_(running_var.detach());
  }
  const kernels::BnEpilogue epi{ptr_or_null(rc), relu};
  RETORT_KERNEL(x.device(), batch_norm_forward, x.dtype(), xc.raw_data(), ptr_or_null(wc), ptr_or_null(bc), N, C, S,
                nhwc, batch_stats, eps, epi, mean.raw_data(), var.raw_data(), invstd.raw_data(), y.raw_data());

  if (training && running_mean.defined())
    update_batch_norm_running_stats(running_mean, running_var, mean, var, momentum, double(N * S));

  if (needs_grad({&x, &weight, &bias, &residual})) {
    const bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad(),
               gb = bias.defined() && bias.requires_grad(), gr = residual.defined() && residual.requires_grad();
    Tensor wd = weight.defined() ? weight.detach() : Tensor(), bd = bias.defined() ? bias.detach() : Tensor();
    const Tensor relu_y = relu ? y.detach() : Tensor();  // the mask's source (detached: no cycle)
    record(y, op, {x, weight, bias, residual}, [=](const Tensor& g) {
      Tensor gc = dense_in(g, format);
      auto like_x = [&](bool wanted) { return wanted ? empty_in_format(xc.shape(), format, xc.dtype(), xc.device())
                                                     : Tensor(); };
      Tensor dx = like_x(gx), dres = like_x(gr);
      Tensor dw = gw ? Tensor::empty({C}, sd, xc.device()) : Tensor();
      Tensor db = gb ? Tensor::empty({C}, sd, xc.device()) : Tensor();
      RETORT_KERNEL(xc.device(), batch_norm_backward, xc.dtype(), gc.raw_data(), xc.raw_data(), ptr_or_null(wc),
                    mean.raw_data(), invstd.raw_data(), N, C, S, nhwc, batch_stats, ptr_or_null(relu_y),
                    mut_ptr_or_null(dx), mut_ptr_or_null(dw), mut_ptr_or_null(db), mut_ptr_or_null(dres));
      return std::vector<Tensor>{dx, as_param_grad(dw, wd), as_param_grad(db, bd), dres};
    });
  }
  return y;
}

// Channels-last on the CPU: through NCHW copies of x (and the residual), so CPU values do not
// depend on the layout (the CPU kernel's NHWC form is only the CUDA kernels' reference).
bool through_nchw_on_cpu(const Tensor& x) {
  return x.defined() && x.device().is_cpu() && suggest_memory_format(x) == MemoryFormat::channels_last;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum, double eps) {
  if (through_nchw_on_cpu(x))
    return through_contiguous(x, [&](const Tensor& xn) {
      return batch_norm2d(xn, weight, bias, running_mean, running_var, training, momentum, eps);
    });
  RETORT_PROFILE_OP("batch_norm2d", x, weight, bias, running_mean, running_var);
  return batch_norm_with_epilogue("batch_norm2d", x, weight, bias, running_mean, running_var, training, momentum, eps,
                                  Tensor(), false);
}

Tensor batch_norm2d_act(const Tensor& x_ac, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, bool training, double momentum, double eps, const Tensor& residual_ac,
                        bool relu) {
  // Under autocast a bf16 activation meeting an f32 residual goes to f32, as add would take it.
  const auto [x, residual] = residual_ac.defined() ? autocast::promote(x_ac, residual_ac)
                                                   : std::pair<Tensor, Tensor>{x_ac, residual_ac};
  if (through_nchw_on_cpu(x)) {
    const auto nchw = [](const Tensor& t) {
      return t.defined() ? to_memory_format(t, MemoryFormat::contiguous) : t;
    };
    return to_memory_format(batch_norm2d_act(nchw(x), weight, bias, running_mean, running_var, training, momentum,
                                             eps, nchw(residual), relu),
                            MemoryFormat::channels_last);
  }
  RETORT_PROFILE_OP("batch_norm2d_act", x, weight, bias, running_mean, running_var, residual);
  return batch_norm_with_epilogue("batch_norm2d_act", x, weight, bias, running_mean, running_var, training, momentum,
                                  eps, residual, relu);
}

Tensor layer_norm(const Tensor& x_ac, const Tensor& weight, const Tensor& bias, double eps) {
  const Tensor x = autocast::to_f32(x_ac);
  RETORT_PROFILE_OP("layer_norm", x, weight, bias);
  const char* op = "layer_norm";
  check_input(x, op);
  RETORT_CHECK(x.dim() >= 1 && x.size(-1) > 0, "{}: input must have a non-empty last dim, got {}", op,
               shape_str(x.shape()));
  const int64_t C = x.size(-1), rows = x.numel() / C;
  check_channel_tensor(weight, x, C, "weight", op, true);
  check_channel_tensor(bias, x, C, "bias", op, true);

  const DType sd = stat_dtype(x.dtype());
  Tensor xc = x.detach().contiguous();
  Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({rows}, sd, x.device()), rstd = Tensor::empty({rows}, sd, x.device());
  if (rows > 0) {
    RETORT_KERNEL(x.device(), layer_norm_forward, x.dtype(), xc.raw_data(), ptr_or_null(wc), ptr_or_null(bc), rows, C,
                  eps, y.raw_data(), mean.raw_data(), rstd.raw_data());
  }

  if (needs_grad({&x, &weight, &bias})) {
    const bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad(),
               gb = bias.defined() && bias.requires_grad();
    Tensor wd = weight.defined() ? weight.detach() : Tensor(), bd = bias.defined() ? bias.detach() : Tensor();
    record(y, op, {x, weight, bias}, [=](const Tensor& g) {
      Tensor gc = g.contiguous();
      Tensor dx = gx ? Tensor::empty(xc.shape(), xc.dtype(), xc.device()) : Tensor();
      Tensor dw = gw ? Tensor::zeros({C}, sd, xc.device()) : Tensor();
      Tensor db = gb ? Tensor::zeros({C}, sd, xc.device()) : Tensor();
      if (rows > 0) {
        RETORT_KERNEL(xc.device(), layer_norm_backward, xc.dtype(), gc.raw_data(), xc.raw_data(), ptr_or_null(wc),
                      mean.raw_data(), rstd.raw_data(), rows, C, mut_ptr_or_null(dx), mut_ptr_or_null(dw),
                      mut_ptr_or_null(db));
      }
      return std::vector<Tensor>{dx, as_param_grad(dw, wd), as_param_grad(db, bd)};
    });
  }
  return y;
}

}  // namespace retort
