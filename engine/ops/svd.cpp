// svd_right: singular values and right singular vectors of a batch of matrices, differentiable
// through both (kernels/svd.h has the algorithm, the sign convention and the gradient).
// The kernel writes S and V packed as one f64 tensor [B, 1 + C, K] (row 0: S); the op returns
// views of its cast to x's dtype, so the two outputs share one autograd node.
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/ops.h"
#include "engine/profiler.h"
#include "kernels/svd.h"

namespace retort {

std::vector<Tensor> svd_right(const Tensor& x_in_ac) {
  const Tensor x_in = autocast::to_f32(x_in_ac);
  RETORT_PROFILE_OP("svd_right", x_in);
  RETORT_CHECK(x_in.defined(), "svd_right: undefined operand");
  RETORT_CHECK(is_floating(x_in.dtype()), "svd_right: expects a floating tensor, got {}", x_in.str());
  RETORT_CHECK(x_in.dim() == 3 && x_in.size(1) > 0 && x_in.size(2) > 0,
               "svd_right: expects a batch of matrices [B, M, C] with M, C >= 1, got {}", x_in.str());
  const Device dev = x_in.device();
  const DType dt = x_in.dtype();
  const int64_t B = x_in.size(0), M = x_in.size(1), C = x_in.size(2), K = std::min(M, C);
  const bool grad = needs_grad({&x_in});
  Tensor sv, u, packed;  // u: the left singular vectors, only for the backward
  {
    NoGradGuard ng;
    Tensor x = x_in.detach().contiguous();
    sv = Tensor::empty({B, 1 + C, K}, DType::f64, dev);
    if (grad) u = Tensor::empty({B, M, K}, DType::f64, dev);
    Tensor work = Tensor::empty({B * kernels::svd_right_forward_work(M, C)}, DType::f64, dev);
    RETORT_KERNEL(dev, svd_right_forward, dt, x.raw_data(), sv.data<double>(), grad ? u.data<double>() : nullptr,
                  work.data<double>(), B, M, C);
    packed = dt == DType::f64 ? sv.clone() : sv.to(dt);
  }
  if (grad) {
    record(packed, "svd_right", {x_in}, [sv, u, B, M, C, dt, dev](const Tensor& g_in) {
      Tensor g = g_in.to(dt).contiguous();
      Tensor dx = Tensor::empty({B, M, C}, dt, dev);
      Tensor work = Tensor::empty({B * kernels::svd_right_backward_work(M, C)}, DType::f64, dev);
      RETORT_KERNEL(dev, svd_right_backward, dt, sv.data<double>(), u.data<double>(), g.raw_data(), dx.raw_data(),
                    work.data<double>(), B, M, C);
      return std::vector<Tensor>{dx};
    });
  }
  return {packed.select(1, 0), packed.slice(1, 1, 1 + C)};
}

}  // namespace retort
