// Hinton KD loss: T^2 * batch-mean KL(teacher || student) of temperature-softened softmaxes.
#include "transfer/kd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {

Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature) {
  RETORT_CHECK(student_logits.dim() == 2 && student_logits.shape() == teacher_logits.shape(),
               "kd: student logits {} and teacher logits {} must both be [B, C] of the same shape",
               student_logits.str(), teacher_logits.str());
  RETORT_CHECK(temperature > 0, "kd: temperature must be positive, got {}", temperature);
  Tensor log_q = log_softmax(mul(student_logits, 1.0 / temperature), 1);
  Tensor log_p = log_softmax(mul(teacher_logits.detach(), 1.0 / temperature), 1);
  return mul(kl_div(log_q, log_p, Reduction::batchmean, /*log_target=*/true), temperature * temperature);
}

}  // namespace retort::transfer
