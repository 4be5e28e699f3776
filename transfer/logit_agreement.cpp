// Agreement of student and teacher logits (top-1, softened overlap, teacher confidence).
#include "transfer/logit_agreement.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {

std::map<std::string, Tensor> logit_agreement(const Tensor& student_logits, const Tensor& teacher_logits,
                                              double temperature) {
  RETORT_CHECK(student_logits.dim() == 2 && student_logits.shape() == teacher_logits.shape(),
               "logit agreement: student logits {} and teacher logits {} must both be [B, C] of the same shape",
               student_logits.str(), teacher_logits.str());
  RETORT_CHECK(temperature > 0, "logit agreement: temperature must be positive, got {}", temperature);
  const DType dtype = student_logits.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const Tensor zs = student_logits.detach().to(dtype), zt = teacher_logits.detach().to(dtype);
  const Tensor same = eq(argmax(zs, 1), argmax(zt, 1)).to(dtype);  // [B] 0/1
  const Tensor ps = softmax(mul(zs, 1.0 / temperature), 1), pt = softmax(mul(zt, 1.0 / temperature), 1);
  const Tensor overlap = sum(neg(maximum(neg(ps), neg(pt))), {1});  // sum_c min(p_s, p_t)  [B]
  return {{"top1_agreement", mean(same)},
          {"soft_agreement", mean(overlap)},
          {"teacher_confidence", mean(max(pt, {1}))}};
}

}  // namespace retort::transfer
