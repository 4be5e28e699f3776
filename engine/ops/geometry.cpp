// Geometry ops: l2_normalize (torch F.normalize: x / max(||x||, eps) along a dim) and
// pairwise_sq_dist (squared Euclidean distances between the rows of two matrices).
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/geometry.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// ga for pairwise distances: 2 sum_j g[i, j] (a_i - b_j); g [N, M], a [N, D], b [M, D].
Tensor pairwise_grad(const Tensor& g, const Tensor& a, const Tensor& b) {
  const int64_t N = a.size(0), M = b.size(0), D = a.size(1);
  Tensor ga = Tensor::empty({N, D}, a.dtype(), a.device());
  RETORT_KERNEL(a.device(), pairwise_sq_dist_grad, a.dtype(), g.raw_data(), a.raw_data(), b.raw_data(),
                ga.raw_data(), N, M, D);
  return ga;
}
}  // namespace

Tensor l2_normalize(const Tensor& x_in_ac, int64_t dim, double eps) {
  const Tensor x_in = autocast::to_f32(x_in_ac);
  RETORT_PROFILE_OP("l2_normalize", x_in);
  RETORT_CHECK(x_in.defined(), "l2_normalize: undefined operand");
  RETORT_CHECK(is_floating(x_in.dtype()), "l2_normalize: expects a floating tensor, got {}", x_in.str());
  RETORT_CHECK(x_in.dim() > 0, "l2_normalize: needs at least one dim, got {}", x_in.str());
  RETORT_CHECK(eps >= 0.0, "l2_normalize: eps must be >= 0, got {}", eps);
  const int64_t d = wrap_dim(dim, x_in.dim(), "l2_normalize"), last = x_in.dim() - 1;
  const Device dev = x_in.device();
  Tensor rows_y, norms, out;
  {
    NoGradGuard ng;
    Tensor rows_x = x_in.detach().transpose(d, last).contiguous();
    const int64_t n = rows_x.shape().back(), rows = n == 0 ? 0 : rows_x.numel() / n;
    rows_y = Tensor::empty(rows_x.shape(), rows_x.dtype(), dev);
    norms = Tensor::empty({rows}, acc_dtype(rows_x.dtype()), dev);
    RETORT_KERNEL(dev, l2_normalize_forward, rows_x.dtype(), rows_x.raw_data(), rows_y.raw_data(),
                  norms.raw_data(), rows, n, eps);
    out = rows_y.transpose(d, last).contiguous();
  }
  if (needs_grad({&x_in})) {
    record(out, "l2_normalize", {x_in}, [rows_y, norms, d, last, eps](const Tensor& g) {
      Tensor rows_g = g.transpose(d, last).contiguous();
      Tensor rows_dx = Tensor::empty(rows_y.shape(), rows_y.dtype(), rows_y.device());
      const int64_t n = rows_y.shape().back(), rows = norms.numel();
      RETORT_KERNEL(rows_y.device(), l2_normalize_backward, rows_y.dtype(), rows_y.raw_data(), rows_g.raw_data(),
                    norms.raw_data(), rows_dx.raw_data(), rows, n, eps);
      return std::vector<Tensor>{rows_dx.transpose(d, last).contiguous()};
    });
  }
  return out;
}

Tensor pairwise_sq_dist(const Tensor& a_in_ac, const Tensor& b_in_ac) {
  const Tensor a_in = autocast::to_f32(a_in_ac);
  const Tensor b_in = autocast::to_f32(b_in_ac);
  RETORT_PROFILE_OP("pairwise_sq_dist", a_in, b_in);
  RETORT_CHECK(a_in.defined() && b_in.defined(), "pairwise_sq_dist: undefined operand");
  RETORT_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && a_in.size(1) == b_in.size(1),
               "pairwise_sq_dist: expects a [N, D] and b [M, D], got a {} and b {}", a_in.str(), b_in.str());
  RETORT_CHECK(is_floating(a_in.dtype()) && a_in.dtype() == b_in.dtype(),
               "pairwise_sq_dist: a {} and b {} must share one floating dtype", a_in.str(), b_in.str());
  RETORT_CHECK(a_in.device() == b_in.device(), "pairwise_sq_dist: a is {}, b is {}", a_in.str(), b_in.str());
  Tensor a = a_in.detach().contiguous(), b = b_in.detach().contiguous();
  const int64_t N = a.size(0), M = b.size(0), D = a.size(1);
  Tensor out = Tensor::empty({N, M}, a.dtype(), a.device());
  RETORT_KERNEL(a.device(), pairwise_sq_dist_forward, a.dtype(), a.raw_data(), b.raw_data(), out.raw_data(), N, M, D);
  if (needs_grad({&a_in, &b_in})) {
    bool need_a = a_in.requires_grad(), need_b = b_in.requires_grad();
    record(out, "pairwise_sq_dist", {a_in, b_in}, [a, b, need_a, need_b](const Tensor& g_in) {
      Tensor g = g_in.contiguous();
      Tensor ga = need_a ? pairwise_grad(g, a, b) : Tensor();
      Tensor gb = need_b ? pairwise_grad(g.transpose(0, 1).contiguous(), b, a) : Tensor();
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

}  // namespace retort
