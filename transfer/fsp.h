// FSP matrices, "flow of solution procedure" (Yim, Joo, Bae, Kim, CVPR 2017, "A Gift from
// Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning").
//
//   G(F1, F2)[b, i, j] = sum_{s,t} F1[b, i, s, t] * F2[b, j, s, t] / (h * w)      G: [B, m, n]
//   L_FSP = (1/B) * sum_b sum_pairs || G_T[b] - G_S[b] ||_F^2                     (all lambda = 1)
//
// F1 [B, m, h, w] and F2 [B, n, h, w] are two maps of one network; when their sizes differ the
// larger is pooled to the smaller first. The teacher's G is a constant.
// What "pairing" selects (taps default to "stem", "stage1", ..., "stageN", the same names in
// both networks, N = number of stages; `taps` overrides the list for both, and `student_taps`
// with `teacher_taps` give each network its own list of equal length, e.g. a ViT teacher's
// "tokens.0".."tokens.3" against a ResNet student's "stem".."stage3"):
//   "repdistiller" (default): consecutive taps (stem, stage1), (stage1, stage2), (stage2, stage3),
//       larger map reduced by adaptive average pooling, as RepDistiller's FSP
//       (distiller_zoo/FSP.py, which uses the stem and all stage outputs).
//   "paper": the same consecutive pairs -- each stage's input map (the previous tap) and its
//       output map -- with the larger map reduced by max pooling (stride floor(H/h)), as the
//       paper prescribes when sizes differ. The paper's exact pairs are the first and last
//       layer of each same-resolution section; with retort's taps the stage input (previous
//       stage's output, at twice the resolution) stands in for the section's first layer.
// Normalisation (key `reduction`): "sum" (default, the paper) is the formula above;
// "mean" is RepDistiller's mean((G_S - G_T)^2) over b, i, j, i.e. each pair's term / (m*n).
// The "sum" loss is large for wide maps (about 5e3 for resnet8 vs wrn_16_2 at initialisation,
// gradient norm ~1e2): give it a small recipe weight (recipes/fmnist_fsp.toml uses 1e-3) or use
// "mean".
// Differing channel counts (retort's extension): each student tap whose channel count differs
// from the teacher's is mapped by a learned 1x1 conv + BN (ChannelProjection, trained with the
// student) before the matrices are formed, so resnet8 (16/32/64) can learn from wrn_16_2
// (32/64/128). RepDistiller's FSP cannot do this (it raises on unequal channel counts). ViT
// token taps ("tokens.<i>") are reshaped to their patch grid.
// Key `form`: "retort" (default; the defaults above: sum reduction, projections where widths
// differ, used with weight 1e-3 and gradient clipping 5 in recipes/fmnist_fsp.toml) or
// "repdistiller", RepDistiller's exact FSP (distiller_zoo/FSP.py): consecutive pairs with average
// pooling, mean reduction, equal channel counts required, weight 1 and no clipping in its
// init stage (init.py). A fixture of RepDistiller's own values checks that form.
// Default recipe weight (the schema's): 1e-3, the retort form's; the repdistiller form wants 1.
// shuffle = true: the teacher's matrices get their rows and columns permuted by fixed random
// permutations (one row and one column permutation per pair, drawn from shuffle_seed), the
// paper's recipe for decorrelated students in an ensemble.
// Training (paper, RepDistiller): a stage on L_FSP alone to initialise the student, then ordinary
// CE training (recipes/fmnist_fsp.toml).
// Step stats: "pair0", "pair1", ...: each pair's term of L_FSP (unweighted, in the chosen reduction;
// they sum to the loss). Pictures: "teacher.pair<k>" and "student.pair<k>", the matrices the loss
// compares (the teacher's shuffled when shuffling, the student's after its projections) averaged
// over the batch, [C1, C2] each.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/adapters.h"
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kFspDefaultWeight = 1e-3;  // the retort form's (sum reduction); RepDistiller's form wants 1

enum class FspPairing { repdistiller, paper };
FspPairing parse_fsp_pairing(const std::string& s);

// G for two maps of equal spatial size: [B, m, h, w] x [B, n, h, w] -> [B, m, n].
Tensor fsp_matrix(const Tensor& f1, const Tensor& f2);
// Matrices of consecutive pairs (maps[k], maps[k+1]), the larger of each pair pooled down.
std::vector<Tensor> fsp_matrices(const std::vector<Tensor>& maps, PoolMode pool);
enum class FspReduction { sum, mean };
FspReduction parse_fsp_reduction(const std::string& s);
// (1/B) sum_pairs ||G_T - G_S||_F^2 (sum), or sum_pairs mean_{b,i,j} (G_T - G_S)^2 (mean);
// teacher matrices are treated as constants.
Tensor fsp_loss(const std::vector<Tensor>& student_fsp, const std::vector<Tensor>& teacher_fsp,
                FspReduction reduction = FspReduction::sum);
// The terms fsp_loss sums, pair by pair: (1/B) ||G_T - G_S||_F^2 (sum) or mean_{b,i,j} (mean).
std::vector<Tensor> fsp_pair_losses(const std::vector<Tensor>& student_fsp, const std::vector<Tensor>& teacher_fsp,
                                    FspReduction reduction = FspReduction::sum);

struct FspOptions {
  FspPairing pairing = FspPairing::repdistiller;
  // RepDistiller's exact form (form = "repdistiller"): mean reduction, average pooling, and equal
  // channel counts required (no learned projections); recipe weight 1, no clipping.
  bool repdistiller_exact = false;
  bool shuffle = false;
  uint64_t shuffle_seed = 0;
  FspReduction reduction = FspReduction::sum;
};

class FspLoss : public Loss {
 public:
  FspLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
          const std::vector<models::TapInfo>& teacher_taps, const FspOptions& options, Device device, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors, in tap order.
  Tensor compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps);
  // The (possibly shuffled) teacher matrices for raw teacher taps.
  std::vector<Tensor> teacher_matrices(const std::vector<Tensor>& teacher_maps) const;
  // The student's matrices for raw student taps (after the projections, with autograd).
  std::vector<Tensor> student_matrices(const std::vector<Tensor>& student_maps) const;
  // "pair<k>": pair k's term of the last compute() (they sum to its value); nothing is recomputed.
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;
  // "teacher.pair<k>", "student.pair<k>": the compared matrices averaged over the batch, [C1, C2]
  // (called in eval mode, so the projections' BatchNorm statistics do not move).
  std::map<std::string, Tensor> pictures(const StepInputs& in) const override;
  nn::NamedTensors parameters() const override { return projections_->named_parameters(); }
  nn::NamedTensors buffers() const override { return projections_->named_buffers(); }
  void train(bool on) override { projections_->train(on); }
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }
  // Student-side projection of tap k, or nullptr when the channel counts already agree.
  nn::Module* projection(size_t k) const { return projection_of_[k].get(); }

 private:
  TapPairs taps_;
  FspOptions options_;
  std::vector<std::shared_ptr<nn::Module>> projection_of_;
  std::shared_ptr<nn::Module> projections_;          // owns the projections (parameter names)
  std::vector<Tensor> row_perm_, col_perm_;         // per pair, i64, when shuffling
  std::vector<Tensor> last_pairs_;                  // the last compute()'s pair terms, detached

  PoolMode pool() const { return options_.pairing == FspPairing::paper ? PoolMode::max : PoolMode::average; }
};

// The default tap list of a model: "stem", "stage1", ..., "stageN" (those it has).
std::vector<std::string> fsp_default_taps(const models::Model& model, const Shape& input);
// Builds an FspLoss from the models. Both lists empty = the default list (which must agree in
// both models); only student_taps given = the same names in the teacher.
std::unique_ptr<FspLoss> make_fsp_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       const FspOptions& options, Device device, uint64_t seed);

// Registers "fsp" (keys: teacher, pairing, taps, student_taps, teacher_taps, shuffle,
// shuffle_seed, reduction).
void register_fsp_loss();

}  // namespace retort::transfer
