// AT, attention transfer (Sergey Zagoruyko, Nikos Komodakis, "Paying More Attention to Attention:
// Improving the Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017).
//
// For each stage pair k (student tap student_taps[k], teacher tap teacher_taps[k]):
//   f_s [B, C_s, H, W], f_t [B, C_t, h, w]: when the sizes differ the larger map is adaptive-
//       average-pooled to the smaller (pool-to-match, before the attention maps are formed);
//       the channel counts may differ: they are averaged away
//   a(f)  = normalize( mean over channels of |f|^p )      [B, H*W], each row L2-normalised
//           (normalize(x) = x / max(||x||_2, 1e-12))
//   L_k   = mean over the B*H*W entries of ( a(f_s) - a(f_t) )^2      a(f_t) is a constant
//   L_AT  = sum over k of L_k                                          (stages not weighted)
// This is the authors' code form ("code" in torchdistill), which RepDistiller and the paper's
// own repository use; the paper's Eq. 2 instead sums over channels and takes the per-example
// L2 distance, not squared, averaged over the batch (torchdistill mode='paper'; not offered).
//
// Reference code and defaults:
//   RepDistiller b84f547 distiller_zoo/AT.py:11-29 (Attention(p=2): pool-to-match :19-25, the
//     loss :26, the map :28-29 = F.normalize(f.pow(p).mean(1).view(B, -1))); taps feat[1:-1] =
//     stage1..stage3, summed (helper/loops.py:134-138); beta = 1000 (scripts/
//     run_cifar_distill.sh:9, with gamma = 1, alpha = 0: no KD term).
//   torchdistill 1.1.5 ATLoss(mode='code') (losses/mid_level.py:334-340) computes the same maps
//     and loss and sums over pairs (:342-355), but does not pool: it needs equal sizes.
//   Fixtures: tests/fixtures/losses/at.safetensors (torchdistill, equal sizes; RepDistiller's
//     value checked equal when it was written) and at_pool.safetensors (RepDistiller, sizes
//     differing in both directions).
// Deviations:
//   - |f|^p where RepDistiller writes f.pow(p): the same for p = 2 (the default) and for any p on
//     post-ReLU maps; for ViT tokens or pre-ReLU taps with odd p RepDistiller's map would carry
//     signs, and with a fractional p it would be NaN. The paper defines the map with |A|^p.
//   - Pooling works per axis (h = min(H_s, H_t), w = min(W_s, W_t)); RepDistiller pools to a
//     square of the smaller height. The same for square maps, which every tap here is.
//   - p is limited to p >= 1 (at p < 1 the gradient of |f|^p is infinite at 0).
// Taps: maps [B, C, H, W] or ViT tokens [B, 1+h*w, D] (CLS dropped, patch tokens laid out on
// the h x w grid by TokensToMap). A vector tap ("pooled", "cls") has no spatial attention: the
// factory rejects it when the loss is built, naming the recipe line, the tap and its shape.
// Defaults: student_taps = teacher_taps = ["stage1", "stage2", "stage3"], p = 2, weight 1000.
// A ViT has no stage taps: name its token taps, e.g. teacher_taps = ["tokens.1", "tokens.2",
// "tokens.3"].
// Step stats: "pair0", "pair1", ...: each L_k (unweighted; they sum to L_AT). Pictures:
// "student.pair<k>" and "teacher.pair<k>", the normalised attention maps a(f) the loss compares
// (after pooling to the common h x w), [N, h, w] for the N images.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kAtDefaultWeight = 1000.0;
constexpr double kAtDefaultP = 2.0;

// a(f) for a map f [B, C, H, W]: [B, H*W], each row the L2-normalised channel mean of |f|^p.
Tensor attention_map(const Tensor& f, double p = kAtDefaultP);
// One stage's attention maps as the loss compares them: both maps pooled to the smaller size
// h x w, then a(f) [B, h*w]; the teacher's a constant (computed without autograd).
struct AtStageMaps {
  Tensor student, teacher;  // [B, h*w]
  int64_t h = 0, w = 0;
};
AtStageMaps at_stage_maps(const Tensor& f_s, const Tensor& f_t, double p = kAtDefaultP);
// One stage: maps pooled to the smaller size, mean over B*h*w of (a(f_s) - a(f_t))^2. The teacher
// map is treated as a constant.
Tensor at_stage_loss(const Tensor& f_s, const Tensor& f_t, double p = kAtDefaultP);
// at_stage_loss of each stage pair (student_maps[k], teacher_maps[k]), in pair order.
std::vector<Tensor> at_stage_losses(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps,
                                    double p = kAtDefaultP);
// Sum of at_stage_loss over the stage pairs (student_maps[k], teacher_maps[k]).
Tensor at_loss(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps,
               double p = kAtDefaultP);

class AtLoss : public Loss {
 public:
  // Taps as listed by the models' tap_info (maps or tokens; pair k = student[k] with teacher[k]).
  AtLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
         const std::vector<models::TapInfo>& teacher_taps, double p);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors (maps or tokens), in tap order.
  Tensor compute(const std::vector<Tensor>& student_taps, const std::vector<Tensor>& teacher_taps);
  // "pair<k>": stage k's L_k (they sum to compute()'s value).
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;
  // "student.pair<k>", "teacher.pair<k>": the compared attention maps, [N, h, w].
  std::map<std::string, Tensor> pictures(const StepInputs& in) const override;
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }
  double p() const { return p_; }

 private:
  TapPairs taps_;
  double p_;
  std::vector<Tensor> last_pairs_;  // the last compute()'s stage terms, detached
};

// The default taps on either side: stage1..stage3 (RepDistiller's feat[1:-1]).
std::vector<std::string> at_default_taps();
// Builds an AtLoss from the models: the taps are looked up for `input` (an unknown name lists
// the model's taps), lists of unequal length and vector taps are errors.
std::unique_ptr<AtLoss> make_at_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::vector<std::string>& student_taps,
                                     const std::vector<std::string>& teacher_taps, const Shape& input,
                                     double p = kAtDefaultP);

// Registers "at" (keys: teacher, student_taps, teacher_taps, p; default weight 1000).
void register_at_loss();

}  // namespace retort::transfer
