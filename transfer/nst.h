// NST, neuron selectivity transfer (Zehao Huang, Naiyan Wang, "Like What You Like: Knowledge
// Distill via Neuron Selectivity Transfer", arXiv:1707.01219, 2017), polynomial-kernel form.
//
// Each channel's spatial activation pattern is a sample; the student's channels should be
// distributed like the teacher's, measured by the squared MMD. For each stage pair k:
//   f_s [B, C_s, H, W], f_t [B, C_t, h, w]: the larger map adaptive-average-pooled to the
//       smaller (pool-to-match); the channel counts may differ
//   u = f reshaped to [B, C, H*W], each channel's H*W-vector L2-normalised
//       (x / max(||x||_2, 1e-12))
//   k(a, b) = (a . b)^2                                 polynomial kernel, degree 2, no constant
//   K_xy[b, i, j] = k(u_x[b, i], u_y[b, j])             [B, C_x, C_y], within each example
//   L_k  = mean(K_tt) + mean(K_ss) - 2 mean(K_st)       each mean over b and both channel
//                                                       indices; K_tt is a constant
//   L_NST = sum over k of L_k                           (stages not weighted)
//
// Reference code and defaults (torchdistill has no NST):
//   RepDistiller b84f547 distiller_zoo/NST.py:16-41 (pool-to-match :17-23, F.normalize(dim=2)
//     :25-28, full_loss = True with K_tt detached :31-34, poly_kernel :38-41 whose means run
//     over B * C * C'); taps feat[1:-1] = stage1..stage3, summed (helper/loops.py:139-143);
//     beta = 50 (scripts/run_cifar_distill.sh:27, gamma = 1, alpha = 0).
//   The fixture tests/fixtures/losses/nst.safetensors is RepDistiller's NSTLoss.
// Deviations and notes:
//   - The paper writes lambda/2 * MMD^2 and also tries linear and Gaussian kernels; RepDistiller
//     (and retort) use the polynomial kernel and beta * MMD^2 without the 1/2.
//   - The constant K_tt term is kept (RepDistiller's full_loss = True): it does not change the
//     gradient, but makes the value the squared MMD (>= 0, 0 when the distributions agree).
//   - Pooling works per axis (h = min(H_s, H_t), w = min(W_s, W_t)); RepDistiller pools to a
//     square of the smaller height. The same for square maps, which every tap here is.
// Taps: maps [B, C, H, W] or ViT tokens [B, 1+h*w, D] (CLS dropped, patch tokens laid out on
// the h x w grid by TokensToMap: D channels of h*w positions). A vector tap ("pooled", "cls")
// has no spatial pattern per channel: the factory rejects it when the loss is built, naming
// the recipe line, the tap and its shape.
// Defaults: student_taps = teacher_taps = ["stage1", "stage2", "stage3"], weight 50. A ViT has
// no stage taps: name its token taps, e.g. teacher_taps = ["tokens.1", "tokens.2", "tokens.3"].
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kNstDefaultWeight = 50.0;

// K_xy for channel patterns u_x [B, C_x, n], u_y [B, C_y, n] (already normalised): [B, C_x, C_y].
Tensor nst_poly_kernel(const Tensor& u_x, const Tensor& u_y);
// One stage: pool-to-match, normalise, mean(K_tt) + mean(K_ss) - 2 mean(K_st); teacher constant.
Tensor nst_stage_loss(const Tensor& f_s, const Tensor& f_t);
// Sum of nst_stage_loss over the stage pairs (student_maps[k], teacher_maps[k]).
Tensor nst_loss(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps);

class NstLoss : public Loss {
 public:
  // Taps as listed by the models' tap_info (maps or tokens; pair k = student[k] with teacher[k]).
  NstLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
          const std::vector<models::TapInfo>& teacher_taps);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors (maps or tokens), in tap order.
  Tensor compute(const std::vector<Tensor>& student_taps, const std::vector<Tensor>& teacher_taps);
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }

 private:
  TapPairs taps_;
};

// The default taps on either side: stage1..stage3 (RepDistiller's feat[1:-1]).
std::vector<std::string> nst_default_taps();
// Builds an NstLoss from the models: the taps are looked up for `input` (an unknown name lists
// the model's taps), lists of unequal length and vector taps are errors.
std::unique_ptr<NstLoss> make_nst_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, const std::vector<std::string>& student_taps,
                                       const std::vector<std::string>& teacher_taps, const Shape& input);

// Registers "nst" (keys: teacher, student_taps, teacher_taps; default weight 50).
void register_nst_loss();

}  // namespace retort::transfer
