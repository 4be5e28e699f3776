// scaled_dot_product_attention: shape checks, autograd wiring, dispatch to the CPU reference
// (kernels/cpu/attention.*) or the fused flash-style CUDA kernels (kernels/cuda/attention_flash.*).
// The forward saves the log-sum-exp per query row; the backward recomputes the probabilities.
// Causal masking is top-left aligned like PyTorch: query i attends to keys j <= i.
#include "engine/autocast.h"
#include <cmath>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/attention.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {

Tensor scaled_dot_product_attention(const Tensor& q_ac, const Tensor& k_ac, const Tensor& v_ac, bool causal, double scale) {
  const Tensor q = autocast::lower(q_ac);
  const Tensor k = autocast::lower(k_ac);
  const Tensor v = autocast::lower(v_ac);
  RETORT_PROFILE_OP("scaled_dot_product_attention", q, k, v);
  const char* op = "scaled_dot_product_attention";
  RETORT_CHECK(q.defined() && k.defined() && v.defined(), "{}: q, k and v must all be defined", op);
  RETORT_CHECK(q.dim() == 4, "{}: q must be [B, H, Lq, D], got {}", op, shape_str(q.shape()));
  RETORT_CHECK(k.dim() == 4, "{}: k must be [B, H, Lk, D], got {}", op, shape_str(k.shape()));
  RETORT_CHECK(v.dim() == 4, "{}: v must be [B, H, Lk, D], got {}", op, shape_str(v.shape()));
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), D = q.size(3), Lk = k.size(2);
  RETORT_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D,
               "{}: k {} does not match q {} (need the same B, H and D)", op, shape_str(k.shape()), shape_str(q.shape()));
  RETORT_CHECK(v.shape() == k.shape(), "{}: v {} must have the shape of k {}", op, shape_str(v.shape()),
               shape_str(k.shape()));
  RETORT_CHECK(Lk > 0 && D > 0, "{}: k {} has no keys or an empty head dim", op, shape_str(k.shape()));
  RETORT_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), "{}: dtype mismatch: q {}, k {}, v {}", op,
               dtype_name(q.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  RETORT_CHECK(is_floating(q.dtype()), "{}: q, k, v must be f32, f64 or bf16, got {}", op, dtype_name(q.dtype()));
  RETORT_CHECK(q.device() == k.device() && q.device() == v.device(), "{}: device mismatch: q on {}, k on {}, v on {}",
               op, q.device().str(), k.device().str(), v.device().str());
  const bool on_cpu = q.device().is_cpu();
  RETORT_CHECK(on_cpu || D <= cuda::kFlashMaxHeadDim, "{}: head dim {} is above the CUDA kernel's limit of {}", op, D,
               cuda::kFlashMaxHeadDim);
  if (scale <= 0) scale = 1.0 / std::sqrt(double(D));

  if (prof.on()) prof.set_flops(4.0 * double(B * H) * double(Lq) * double(Lk) * double(D));  // QK^T and PV
  const int64_t BH = B * H;
  const DType sd = q.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  Tensor out = Tensor::empty({B, H, Lq, D}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({B, H, Lq}, sd, q.device());
  if (BH * Lq > 0) {
    RETORT_KERNEL(q.device(), attention_forward, q.dtype(), qc.raw_data(), kc.raw_data(), vc.raw_data(), BH, Lq, Lk, D,
                  causal, scale, out.raw_data(), lse.raw_data());
  }

  if (needs_grad({&q, &k, &v})) {
    const bool gq = q.requires_grad(), gk = k.requires_grad(), gv = v.requires_grad();
    Tensor od = out.detach();
    record(out, op, {q, k, v}, [=](const Tensor& g) {
      Tensor gc = g.contiguous();
      Tensor dq = gq ? Tensor::empty(qc.shape(), qc.dtype(), qc.device()) : Tensor();
      Tensor dk = gk ? Tensor::empty(kc.shape(), kc.dtype(), kc.device()) : Tensor();
      Tensor dv = gv ? Tensor::empty(vc.shape(), vc.dtype(), vc.device()) : Tensor();
      auto ptr = [](const Tensor& t) -> void* { return t.defined() ? t.raw_data() : nullptr; };
      if (BH * Lq > 0) {
        RETORT_KERNEL(qc.device(), attention_backward, qc.dtype(), gc.raw_data(), qc.raw_data(), kc.raw_data(),
                      vc.raw_data(), od.raw_data(), lse.raw_data(), BH, Lq, Lk, D, causal, scale, ptr(dq), ptr(dk),
                      ptr(dv));
      } else {
        if (dk.defined()) dk.zero_();
        if (dv.defined()) dv.zero_();
      }
      return std::vector<Tensor>{dq, dk, dv};
    });
  }
  return out;
}

}  // namespace retort
