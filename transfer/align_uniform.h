// Alignment/uniformity distillation: Farhat & Chen 2024, "On the Surprising Efficacy of
// Distillation as an Alternative to Pre-Training Small Models" (distillation cast as
// contrastive learning with Wang & Isola's alignment and uniformity, ICML 2020).
//
//   z_s = head_s(student "pooled"),  z_t = head_t(teacher "pooled")   [B, dim], unit rows
//   head = Linear(d, d) -> ReLU -> Linear(d, dim) -> L2-normalise     (dim = 128)
//   align    = (1/B) sum_i ||z_s,i - z_t,i||^2
//   unif(z)  = log( mean_{i<j} exp(-t ||z_i - z_j||^2) )               (t = 2, in-batch pairs)
//   L_AU     = align + (unif(z_s) + unif(z_t)) / 2
// Both heads are trained (their parameters are in parameters()); the teacher backbone stays
// frozen: its features are detached here, so only the teacher's head receives gradients.
// The authors' loss: CE + L_AU + KD(T = 4), each weight 1; AdamW lr 1e-3, wd 1e-2, batch 64,
// no schedule (recipes/fmnist_align_uniform.toml).
// Step stats: "alignment" (align) and "uniformity" ((unif(z_s) + unif(z_t)) / 2), the loss's two
// terms unweighted: L_AU = alignment + uniformity.
#pragma once
#include <memory>
#include <string>
#include "engine/nn/layers.h"
#include "engine/tensor.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr int64_t kAlignUniformDefaultDim = 128;
constexpr double kAlignUniformDefaultT = 2.0;

// align(z_s, z_t) = mean_i ||z_s,i - z_t,i||^2; z [B, D].
Tensor alignment_loss(const Tensor& z_s, const Tensor& z_t);
// unif(z) = log mean_{i<j} exp(-t ||z_i - z_j||^2); needs B >= 2.
Tensor uniformity_loss(const Tensor& z, double t = kAlignUniformDefaultT);
// The two terms of L_AU: alignment = align(z_s, z_t), uniformity = (unif(z_s) + unif(z_t)) / 2.
struct AlignUniformTerms {
  Tensor alignment, uniformity;
};
AlignUniformTerms align_uniform_terms(const Tensor& z_s, const Tensor& z_t, double t = kAlignUniformDefaultT);
// L_AU = alignment + uniformity on already projected, normalised embeddings (the heads bypassed).
Tensor align_uniform_value(const Tensor& z_s, const Tensor& z_t, double t = kAlignUniformDefaultT);

// Linear(in, in) -> ReLU -> Linear(in, out) -> L2-normalise each row.
class ProjectionHead : public nn::Module {
 public:
  ProjectionHead(int64_t in_features, int64_t out_features, Generator& gen);
  std::string type_name() const override { return "ProjectionHead"; }
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Linear> fc1, fc2;
};

class AlignUniformLoss : public Loss {
 public:
  AlignUniformLoss(std::string teacher, int64_t student_dim, int64_t teacher_dim, int64_t dim, double t, uint64_t seed,
                   Device device, DType dtype);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its uniformity term compares every pair of examples in the batch"; }
  // The loss on pooled features: phi_s [B, d_s], phi_t [B, d_t] (phi_t detached here).
  Tensor value(const Tensor& student_features, const Tensor& teacher_features);
  // "alignment", "uniformity": the two terms of the step's loss (they sum to compute()'s value).
  std::map<std::string, Tensor> step_stats(const StepInputs& in) const override;

  nn::NamedTensors parameters() const override;  // "student_head.*", "teacher_head.*"
  void train(bool on) override;
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {"pooled"}; }
  std::vector<std::string> teacher_taps() const override { return {"pooled"}; }

  std::shared_ptr<ProjectionHead> student_head, teacher_head;

 private:
  // The terms for pooled features: both heads applied (phi_t detached first).
  AlignUniformTerms terms(const Tensor& student_features, const Tensor& teacher_features) const;

  std::string teacher_;
  double t_;
  AlignUniformTerms last_;  // the last value()'s terms, detached
};

// Registers the "align_uniform" loss term (keys: teacher, dim, t).
void register_align_uniform_loss();

}  // namespace retort::transfer
