// KDSVD (Seung Hyun Lee, Dae Ha Kim, Byung Cheol Song, ECCV 2018, "Self-supervised Knowledge
// Distillation Using Singular Value Decomposition").
//
// For each tap pair l = 1..L (student tap student_taps[l], teacher tap teacher_taps[l]), each
// example's map f [C, H, W] is read as the matrix M = [H*W, C] (rows: positions, columns:
// channels; RepDistiller's channel form) and decomposed, M = U S V^T (svd_right, engine/ops.h):
//   teacher: v_t = the first k columns of V, each L2-normalised over C      [B, C, k]
//            s_t = the first k singular values, L2-normalised over the k     [B, k]
//   student: V_s = the first k + 3 columns of V, each L2-normalised          [B, C, k + 3]
//   alignment: cos = V_s^T v_t [B, k + 3, k]; A_ij = sign(cos_ij) where |cos_ij| is the largest
//              of column j (0 elsewhere; A is a constant);  v_s = V_s A       [B, C, k]
//   scaling:   v_t <- v_t * s_t, v_s <- v_s * s_t (column j times s_t[j]; 1 for k = 1)
// (non-finite entries of S and V are replaced by 0 first). For consecutive taps (l-1, l):
//   R[b, a, c, j] = exp( -(v^l[b, a, j] - v^(l-1)[b, c, j])^2 / 8 )          [B, C_l, C_(l-1), k]
//   L_pair = sum over b, a, c, j of (R_s - R_t)^2, non-finite terms set to 0, divided by B
//   L_KDSVD = sum of L_pair over the L - 1 consecutive pairs                    (R_t is a constant)
// Only V enters the loss on the student side: its gradient flows through the SVD (the
// singular vectors' backward, which is ill-defined where singular values are equal).
//
// Reference code and defaults:
//   RepDistiller b84f547 distiller_zoo/KDSVD.py: forward :17-43 (teacher k vectors :23, student
//     k + 3 :24, alignment :25 and :68-75, scaling :26-28, RBF and the zeroed non-finite terms
//     :30-36, / batch size :41-42), svd() :45-61 (M = f.view(B, C, H*H).transpose, torch.svd,
//     removenan, F.normalize of the kept columns and values); k = 1 (:13). Taps feat[1:-1] =
//     stage1..stage3, the pair losses summed (helper/loops.py:157-161).
//   beta: RepDistiller's script has no KDSVD line and its -b has no default (train_student.py:75);
//     mdistiller's KDSVD config uses 1. Default weight 1 (with CE 1).
//   Fixtures: tests/fixtures/losses/kdsvd.safetensors (k = 1, a wide last stage) and
//     kdsvd_k2.safetensors (k = 2), computed by RepDistiller's module with torch.svd wrapped to
//     apply retort's sign convention (below).
// Deviations and choices:
//   - Signs of singular vectors: torch.svd's are whatever LAPACK returns, and the teacher's RBF
//     between two stages depends on them. svd_right fixes them: each right singular vector's
//     entry of largest |.| is positive (the fixtures apply the same convention to torch.svd).
//   - M = [H*W, C] for any H, W; RepDistiller views [H*H, C] (square maps only).
//   - mdistiller (distillers/KDSVD.py) reshapes to [C*H, W], so its vectors live in R^W, and
//     computes in float32; not offered. retort's SVD runs in f64 whatever the dtype.
//   - Channel counts must agree per pair (the vectors of both sides live in R^C; RepDistiller's
//     pair resnet32x4 -> resnet8x4 has equal ones). retort's extension, key `project` (default
//     true): where they differ, the student map goes through a learned 1x1 conv + BN
//     (ChannelProjection) to the teacher's channels, trained with the student; with project =
//     false such a pairing is a build-time error. Spatial sizes may differ: V does not depend
//     on H*W, so nothing is pooled (neither does RepDistiller pool).
//   - The teacher needs min(H*W, C) >= k vectors per tap (else its RBFs would not broadcast);
//     the student keeps min(k + 3, H*W, C), as RepDistiller's slicing does.
//   - Equal singular values beyond the ones read (two dead channels of a student map, for
//     example) give NaN gradients in PyTorch's backward; svd_right's are finite there
//     (kernels/svd.h). Equal ones among those read remain ill-defined (inf/NaN) in both.
// Taps: maps [B, C, H, W] or ViT tokens [B, 1+h*w, D] (CLS dropped, the patches laid out on the
// h x w grid by TokensToMap: h*w must be a square). Vector taps ("pooled", "cls") have no
// positions to decompose: the factory rejects them, naming the recipe line, the tap and its shape.
// Defaults: student_taps = teacher_taps = ["stage1", "stage2", "stage3"], k = 1, project = true,
// weight 1. A ViT has no stage taps: name its token taps, e.g. ["tokens.1", "tokens.2", "tokens.3"].
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/adapters.h"
#include "transfer/loss_term.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {

constexpr double kKdsvdDefaultWeight = 1.0;
constexpr int64_t kKdsvdDefaultK = 1;

// RepDistiller's svd(f, n) without U: for f [B, C, H, W] read as [B, H*W, C], the first
// min(n, H*W, C) right singular vectors (each L2-normalised over C) and singular values
// (L2-normalised together), non-finite entries replaced by 0.
struct KdsvdBasis {
  Tensor s;  // [B, n]
  Tensor v;  // [B, C, n]
};
KdsvdBasis kdsvd_basis(const Tensor& f, int64_t n);
// v_s [B, C, n_s] aligned to v_t [B, C, k]: v_s A with A_ij = sign(cos_ij) at the largest |cos_ij|
// of each column j of cos = v_s^T v_t, 0 elsewhere (no gradient through A). [B, C, k]
Tensor kdsvd_align(const Tensor& v_s, const Tensor& v_t);
// L_KDSVD for maps whose channel counts agree pair by pair (spatial sizes may differ); the
// teacher maps are constants.
Tensor kdsvd_loss(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps,
                  int64_t k = kKdsvdDefaultK);

class KdsvdLoss : public Loss {
 public:
  // Throws (naming the taps and shapes) when a pair cannot work: a vector tap, a token count
  // that is no square grid, differing channels without `project`, a teacher tap with fewer
  // than k singular vectors.
  KdsvdLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
            const std::vector<models::TapInfo>& teacher_taps, int64_t k, bool project, Device device, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // The loss for raw tap tensors, in tap order (student maps projected where needed).
  Tensor compute(const std::vector<Tensor>& student_taps, const std::vector<Tensor>& teacher_taps);
  nn::NamedTensors parameters() const override { return projections_->named_parameters(); }
  nn::NamedTensors buffers() const override { return projections_->named_buffers(); }
  void train(bool on) override { projections_->train(on); }
  std::vector<std::string> teachers() const override { return {taps_.teacher()}; }
  std::vector<std::string> student_taps() const override { return taps_.student_names(); }
  std::vector<std::string> teacher_taps() const override { return taps_.teacher_names(); }
  // Student-side projection of pair p, or nullptr when the channel counts already agree.
  nn::Module* projection(size_t p) const { return projection_of_[p].get(); }
  int64_t k() const { return k_; }

 private:
  TapPairs taps_;
  int64_t k_;
  std::vector<std::shared_ptr<nn::Module>> projection_of_;
  std::shared_ptr<nn::Module> projections_;  // owns the projections ("tap<p>")
};

// Builds a KdsvdLoss from the models (taps looked up with tap_info for `input`).
std::unique_ptr<KdsvdLoss> make_kdsvd_loss(const models::Model& student, const models::Model& teacher,
                                           const std::string& teacher_name,
                                           const std::vector<std::string>& student_taps,
                                           const std::vector<std::string>& teacher_taps, const Shape& input, int64_t k,
                                           bool project, Device device, uint64_t seed);

// Registers "kdsvd" (keys: teacher, student_taps, teacher_taps, k, project).
void register_kdsvd_loss();

}  // namespace retort::transfer
