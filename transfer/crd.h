// CRD: contrastive representation distillation (Tian, Krishnan, Isola, "Contrastive
// Representation Distillation", ICLR 2020).
//
// Embeddings (RD crd/criterion.py:88-113 Embed/Normalize; torchdistill Linear4CRD/Normalizer4CRD,
// models/wrapper.py:428-503): each side's tap, flattened per example, goes through its own
// Linear(D -> dim) and an L2 normalisation with no eps:
//   e_s = W_s f_s + b_s, e_s /= ||e_s||      e_t = W_t f_t + b_t, e_t /= ||e_t||       [B, dim]
// f_t is a constant (no gradient reaches the teacher); both Linears train with the student
// (RD train_student.py:190-198), PyTorch's default Linear init.
//
// memory = "bank" (default; the reference, transfer/crd_memory.h CrdBank): a memory row per
// training example and side, K negatives per example among other classes, and per side the NCE
// loss with noise prior P_n = 1/N, c = K/N, eps = 1e-7 (criterion.py:59-85):
//   P = exp(<memory row, anchor> / tau) / Z, row 0 the positive, rows 1..K the negatives  [B, 1+K]
//   nce(P) = -(1/B) [ sum_i log(P_i0 / (P_i0 + c + eps)) + sum_i sum_j>=1 log(c / (P_ij + c + eps)) ]
//   L_CRD  = nce(P_s) + nce(P_t)       (student anchor vs teacher memory + teacher anchor vs student memory)
// memory = "queue" (retort's extension, not a reference method; CrdQueue): InfoNCE over the live
// positive and a FIFO queue of the last Q embeddings of the other side, both directions:
//   infonce(a; p, Q) = mean_i -log( exp(a_i.p_i/tau) / (exp(a_i.p_i/tau) + sum_q exp(a_i.Q_q/tau)) )
//   L = infonce(e_s; e_t, queue_t) + infonce(e_t; e_s, queue_s)
//
// Defaults (RD train_student.py:81-85, scripts/run_cifar_distill.sh:29; MD cfg CRD the same):
// taps "pooled" both sides (RD feat[-1], helper/loops.py:130-133), dim 128 (feat_dim),
// K = 16384 (nce_k), tau = 0.07 (nce_t), momentum 0.5 (nce_m), mode 'exact', beta = 0.8 next to
// CE (gamma 1, alpha 0). queue_size 4096 (ours: docs/methods/crd.md says why).
// Compared: torchdistill 1.1.5 CRDLoss (mid_level.py:839-1050; the same algorithm as RD's
// crd/memory.py + criterion.py) with explicit contrast indices, two steps (fixture crd_bank).
// Deviations: (1) the contrastive sampling happens in the loss, not in the dataset, so the labels
// are recorded as examples are seen (see crd_memory.h: in the first epoch unseen examples are
// candidate negatives whatever their class); (2) scores are computed as e @ m^T then gathered
// (same values, less memory); (3) no 'relax' mode; (4) the queue form is ours.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "engine/nn/layers.h"
#include "transfer/crd_memory.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kCrdDefaultWeight = 0.8;
constexpr int64_t kCrdDefaultDim = 128;
constexpr int64_t kCrdDefaultNegatives = 16384;
constexpr int64_t kCrdDefaultQueueSize = 4096;
constexpr double kCrdDefaultTemperature = 0.07;
constexpr double kCrdDefaultMomentum = 0.5;
constexpr double kCrdEps = 1e-7;

// x / ||x||_2 along dim 1, no eps (RD's Normalize); x [B, D].
Tensor crd_normalize(const Tensor& x);
// RD's Embed: crd_normalize(flatten(x) W^T + b); x [B, ...], weight [dim, D], bias [dim].
Tensor crd_embed(const Tensor& x, const Tensor& weight, const Tensor& bias);
// RD's ContrastLoss for one side: p [B, 1+K] (column 0 the positive) already divided by Z;
// n_data = N, the noise prior 1/N.
Tensor crd_nce_loss(const Tensor& p, int64_t n_data, double eps = kCrdEps);
// InfoNCE: anchor, positive [B, d], negatives [Q, d] (Q may be 0: the loss is then 0);
// mean over the batch of the cross-entropy of (anchor.positive, anchor.negatives) / tau, target 0.
Tensor crd_info_nce(const Tensor& anchor, const Tensor& positive, const Tensor& negatives, double temperature);

enum class CrdMemory { bank, queue };

struct CrdOptions {
  CrdMemory memory = CrdMemory::bank;
  int64_t dim = kCrdDefaultDim;
  int64_t negatives = kCrdDefaultNegatives;
  int64_t queue_size = kCrdDefaultQueueSize;
  double temperature = kCrdDefaultTemperature;
  double momentum = kCrdDefaultMomentum;
};

class CrdLoss : public Loss {
 public:
  // student_dim / teacher_dim: the flattened tap sizes; dataset_size: N (bank: required > 0).
  CrdLoss(std::string teacher, std::string student_tap, std::string teacher_tap, int64_t student_dim,
          int64_t teacher_dim, const CrdOptions& options, int64_t dataset_size, uint64_t seed, Device device,
          DType dtype);
  Tensor compute(const StepInputs& in) override;
  std::string couples_examples() const override { return "its memory of negatives is updated from every batch"; }

  Tensor embed_student(const Tensor& f_s) const;
  Tensor embed_teacher(const Tensor& f_t) const;  // f_t detached first
  // Bank: records the labels, draws the contrast indices, computes the loss, updates the memory.
  Tensor value(const Tensor& f_s, const Tensor& f_t, const std::vector<int64_t>& ids,
               const std::vector<int64_t>& labels);
  // Bank, with given contrast indices [B, 1+K] (the reference fixtures').
  Tensor value_with_indices(const Tensor& f_s, const Tensor& f_t, const std::vector<int64_t>& ids,
                            const Tensor& contrast_idx);
  // Queue.
  Tensor value(const Tensor& f_s, const Tensor& f_t);

  nn::NamedTensors parameters() const override;  // embed_student.*, embed_teacher.*
  nn::NamedTensors buffers() const override;     // memory.* (bank) or queue.* (queue)
  bool needs_labels() const override { return options_.memory == CrdMemory::bank; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return {student_tap_}; }
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }
  const CrdOptions& options() const { return options_; }

  std::shared_ptr<nn::Linear> embed_s, embed_t;
  std::unique_ptr<CrdBank> bank;    // memory = "bank"
  std::unique_ptr<CrdQueue> queue;  // memory = "queue"

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  CrdOptions options_;
};

// Registers "crd" (keys: teacher, student_tap, teacher_tap, memory, dim, temperature, negatives,
// momentum, queue_size; default weight 0.8).
void register_crd_loss();

}  // namespace retort::transfer
