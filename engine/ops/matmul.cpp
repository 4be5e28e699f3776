// matmul (batched, broadcast batch dims) and linear: shape checks, autograd, dispatch to
// OpenBLAS on the CPU and cuBLAS / cuBLASLt on CUDA. Transposed views are passed to the
// GEMM as transpose flags, not copied (backward relies on this).
#include "engine/autocast.h"
#include <algorithm>
#include <cstdint>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "kernels/matmul.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {

// How the last two dims [rows, cols] of a tensor can be handed to a GEMM without a copy.
struct MatrixView {
  bool ok = false;
  bool trans = false;  // stored column-major
  int64_t ld = 0;
};
MatrixView classify(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if ((cols <= 1 || col_stride == 1) && (rows <= 1 || row_stride >= std::max<int64_t>(cols, 1)))
    return {true, false, rows <= 1 ? std::max<int64_t>(cols, 1) : row_stride};
  if ((rows <= 1 || row_stride == 1) && (cols <= 1 || col_stride >= std::max<int64_t>(rows, 1)))
    return {true, true, cols <= 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return {};
}

// The single element stride between consecutive entries of the flattened batch dims
// [0, nb), or -1 when the batch layout is not one arithmetic sequence.
int64_t batch_stride(const Tensor& t, int64_t nb) {
  int64_t inner_stride = 0, prev_stride = 0, prev_size = 0;
  bool seen = false;
  for (int64_t d = nb - 1; d >= 0; --d) {
    int64_t size = t.shape()[size_t(d)], st = t.strides()[size_t(d)];
    if (size == 1) continue;
    if (!seen) inner_stride = st;
    else if (st != prev_stride * prev_size) return -1;
    seen = true;
    prev_stride = st;
    prev_size = size;
  }
  return inner_stride;
}

// A GEMM operand: the tensor kept alive (maybe a copy), its view and batch stride.
struct Operand {
  Tensor t;
  MatrixView view;
  int64_t stride = 0;
};
Operand prepare(Tensor t, int64_t nb) {
  int64_t r = t.shape()[size_t(nb)], c = t.shape()[size_t(nb + 1)];
  MatrixView v = classify(r, c, t.strides()[size_t(nb)], t.strides()[size_t(nb + 1)]);
  int64_t s = batch_stride(t, nb);
  if (!v.ok || s < 0) {
    t = t.contiguous();
    v = classify(r, c, t.strides()[size_t(nb)], t.strides()[size_t(nb + 1)]);
    s = batch_stride(t, nb);
  }
  return {t, v, s};
}

// out (contiguous [B..., m, n]) = a [B..., m, k] b [B..., k, n] (+ out when accumulate);
// a and b already expanded to the batch shape of out. No autograd.
void run_gemm(const Tensor& a_in, const Tensor& b_in, Tensor& out, bool accumulate) {
  if (a_in.device().is_cpu() && a_in.dtype() == DType::bf16) {  // OpenBLAS has no bf16 GEMM: go through f32
    Tensor out32 = accumulate ? out.to(DType::f32) : Tensor::empty(out.shape(), DType::f32, out.device());
    run_gemm(a_in.to(DType::f32), b_in.to(DType::f32), out32, accumulate);
    out.copy_(out32);
    return;
  }
  const int64_t nb = out.dim() - 2;
  int64_t batch = 1;
  for (int64_t d = 0; d < nb; ++d) batch *= out.shape()[size_t(d)];
  Operand a = prepare(a_in, nb), b = prepare(b_in, nb);
  GemmArgs g;
  g.dtype = out.dtype();
  g.batch = batch;
  g.m = out.shape()[size_t(nb)];
  g.n = out.shape()[size_t(nb + 1)];
  g.k = a.t.shape()[size_t(nb + 1)];
  g.a = a.t.raw_data();
  g.trans_a = a.view.trans;
  g.lda = a.view.ld;
  g.stride_a = a.stride;
  g.b = b.t.raw_data();
  g.trans_b = b.view.trans;
  g.ldb = b.view.ld;
  g.stride_b = b.stride;
  g.c = out.raw_data();
  g.ldc = std::max<int64_t>(g.n, 1);
  g.stride_c = g.m * g.n;
  g.beta = accumulate ? 1.0 : 0.0;
  // A shared right operand and row-major left batches stacked row after row: one big GEMM.
  if (batch > 1 && g.stride_b == 0 && !g.trans_a && g.stride_a == g.m * g.lda) {
    g.m *= batch;
    g.batch = 1;
  }
  if (out.numel() == 0) return;
  RETORT_KERNEL(out.device(), gemm, g);
}

Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  RETORT_CHECK(a.defined() && b.defined(), "matmul: undefined operand");
  check_same(a, b, "matmul");
  RETORT_CHECK(is_floating(a.dtype()), "matmul: dtype {} is not supported (floating dtypes only)", dtype_name(a.dtype()));
  RETORT_CHECK(a.dim() >= 2, "matmul: first operand must have at least 2 dims, got shape {}", shape_str(a.shape()));
  RETORT_CHECK(b.dim() >= 2, "matmul: second operand must have at least 2 dims, got shape {}", shape_str(b.shape()));
  const int64_t m = a.size(-2), k = a.size(-1), k2 = b.size(-2), n = b.size(-1);
  RETORT_CHECK(k == k2, "matmul: inner dims differ: first operand {} has k = {}, second operand {} has k = {}",
               shape_str(a.shape()), k, shape_str(b.shape()), k2);
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul (batch dims)");
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  so.insert(so.end(), {m, n});
  Tensor out = Tensor::empty(so, a.dtype(), a.device());
  NoGradGuard ng;
  run_gemm(a.detach().expand(sa), b.detach().expand(sb), out, false);
  return out;
}

// Pointer alignment for the cuBLASLt bias epilogue.
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  RETORT_CHECK(x.defined() && w.defined(), "linear: undefined operand");
  check_same(x, w, "linear");
  RETORT_CHECK(is_floating(x.dtype()), "linear: dtype {} is not supported (floating dtypes only)", dtype_name(x.dtype()));
  RETORT_CHECK(w.dim() == 2, "linear: weight must be [out, in], got shape {}", shape_str(w.shape()));
  RETORT_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1),
               "linear: input {} (first operand) has {} features but weight {} expects {}", shape_str(x.shape()),
               x.dim() >= 1 ? x.size(-1) : 0, shape_str(w.shape()), w.size(1));
  const int64_t in = w.size(1), out_f = w.size(0);
  if (bias.defined()) {
    check_same(x, bias, "linear (bias)");
    RETORT_CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias must be [{}], got shape {}", out_f,
                 shape_str(bias.shape()));
  }
  NoGradGuard ng;
  Tensor x2 = x.detach().reshape({x.numel() / std::max<int64_t>(in, 1), in});
  const int64_t M = x2.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = Tensor::empty({M, out_f}, x.dtype(), x.device());
  Tensor wd = w.detach();
  if (x.device().is_cuda() && bias.defined()) {
    Tensor xc = x2.contiguous(), wc = wd.contiguous(), bc = bias.detach().contiguous();
    bool fused = false;
    if (aligned16(bc.raw_data())) {
#ifdef RETORT_WITH_CUDA
      fused = cuda::linear_bias_fused(x.dtype(), xc.raw_data(), wc.raw_data(), bc.raw_data(), out.raw_data(), M, out_f,
                                      in);
#endif
    }
    if (fused) return out.reshape(out_shape);
  }
  if (bias.defined()) out.copy_(bias.detach());
  run_gemm(x2, wd.transpose(0, 1), out, bias.defined());
  return out.reshape(out_shape);
}

// CUDA: the weight and bias gradients of linear in one cuBLASLt product (grads[1], grads[2]);
// false where that is not offered (the CPU, f64, an unsupported shape): computed apart then.
bool weight_bias_grads_fused(const Tensor& g2, const Tensor& x2, std::vector<Tensor>& grads) {
  if (!g2.device().is_cuda()) return false;
  const Tensor g = g2.contiguous(), x = x2.contiguous();
  const int64_t M = g.size(0), N = g.size(1), K = x.size(1);
  Tensor gw = Tensor::empty({N, K}, g.dtype(), g.device()), gb = Tensor::empty({N}, g.dtype(), g.device());
  bool fused = false;
#ifdef RETORT_WITH_CUDA
  fused = cuda::linear_weight_bias_grad_fused(g.dtype(), g.raw_data(), x.raw_data(), gw.raw_data(), gb.raw_data(), M,
                                              N, K);
#endif
  if (!fused) return false;
  grads[1] = gw;
  grads[2] = gb;
  return true;
}

}  // namespace

Tensor matmul(const Tensor& a_ac, const Tensor& b_ac) {
  const Tensor a = autocast::lower(a_ac);
  const Tensor b = autocast::lower(b_ac);
  RETORT_PROFILE_OP("matmul", a, b);
  Tensor out = matmul_forward(a, b);
  if (prof.on()) prof.set_flops(2.0 * double(out.numel()) * double(a.size(-1)));
  if (needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record(out, "matmul", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      return std::vector<Tensor>{ga ? sum_to(matmul(g, bd.transpose(-1, -2)), ad.shape()) : Tensor(),
                                 gb ? sum_to(matmul(ad.transpose(-1, -2), g), bd.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor linear(const Tensor& x_ac, const Tensor& weight_ac, const Tensor& bias_ac) {
  const Tensor x = autocast::lower(x_ac);
  const Tensor weight = autocast::lower(weight_ac);
  const Tensor bias = autocast::lower(bias_ac);
  RETORT_PROFILE_OP("linear", x, weight);
  Tensor out = linear_forward(x, weight, bias);
  if (prof.on()) prof.set_flops(2.0 * double(out.numel()) * double(weight.size(1)));
  if (needs_grad({&x, &weight, &bias})) {
    Tensor xd = x.detach(), wd = weight.detach();
    bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
    record(out, "linear", {x, weight, bias}, [xd, wd, gx, gw, gb](const Tensor& g) {
      const int64_t in = wd.size(1), out_f = wd.size(0);
      Tensor g2 = g.reshape({g.numel() / std::max<int64_t>(out_f, 1), out_f});
      std::vector<Tensor> grads(3);
      if (gx) grads[0] = matmul(g2, wd).reshape(xd.shape());
      if (gw && gb && weight_bias_grads_fused(g2, xd.reshape({g2.size(0), in}), grads)) return grads;
      if (gw) grads[1] = matmul(g2.transpose(0, 1), xd.reshape({g2.size(0), in}));
      if (gb) grads[2] = sum(g2, {0});
      return grads;
    });
  }
  return out;
}

}  // namespace retort
