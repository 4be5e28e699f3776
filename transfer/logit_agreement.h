// How far a student's logits agree with a teacher's: the step statistics of the logit-matching
// losses (KD, DKD; Loss::step_stats). For logits z_s, z_t [B, C] and the loss's temperature T,
// with p = softmax(z / T) per row:
//   top1_agreement      mean_b [argmax_c z_s,b == argmax_c z_t,b]     ties: the first maximum
//   soft_agreement      mean_b sum_c min(p_s,b,c, p_t,b,c)            the overlap of the softened
//                                                                      distributions, 1 - total variation
//   teacher_confidence  mean_b max_c p_t,b,c
// Each is a one-element tensor in [0, 1] on the logits' device (f64 for f64 logits, else f32),
// computed with device ops only (no host read) and without autograd (the logits are detached).
#pragma once
#include <map>
#include <string>
#include "engine/tensor.h"

namespace retort::transfer {

std::map<std::string, Tensor> logit_agreement(const Tensor& student_logits, const Tensor& teacher_logits,
                                              double temperature);

}  // namespace retort::transfer
