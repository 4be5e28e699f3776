// maximum(a, b): broadcast elementwise max; the gradient goes to a where a >= b (ties to a),
// to b elsewhere. Reuses the broadcast binary kernels (BinaryOp::maximum, BinaryOp::ge_mask).
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "kernels/binary.h"

namespace retort {

Tensor maximum(const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("maximum", a, b);
  Tensor out = broadcast_binary(BinaryOp::maximum, a, b, "maximum");
  if (needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record(out, "maximum", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      Tensor to_a = mul(g, broadcast_binary(BinaryOp::ge_mask, ad, bd, "maximum backward"));  // g where a >= b
      return std::vector<Tensor>{ga ? sum_to(to_a, ad.shape()) : Tensor(),
                                 gb ? sum_to(sub(g, to_a), bd.shape()) : Tensor()};
    });
  }
  return out;
}

}  // namespace retort
