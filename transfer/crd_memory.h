// The memories of CRD (transfer/crd.h): the reference's per-example memory bank with its
// contrastive sampling, and retort's fixed-size queue.
//
// CrdBank (memory = "bank", the reference): RepDistiller's ContrastMemory (crd/memory.py:6-79)
// plus the sampling its dataset does (dataset/cifar100.py:95-169, 'exact' mode).
//   m_s, m_t   [N, dim] unit-ish rows, one per training example (N = dataset_size), initialised
//              uniform in [-sigma, sigma], sigma = 1/sqrt(dim/3) (memory.py:19-21)
//   z          [2]: Z_s, Z_t, -1 until the first batch sets Z = N * mean(exp(scores/tau)) for each
//              side (memory.py:49-57); frozen afterwards
//   labels     i64 [N]: each example's label as first seen (-1: not seen yet)
//   step       i64 [1]: batches done; seeds each step's draw, so a resumed run draws the same
// One step, with contrast indices idx [B, 1+K] (position 0 the example's own index):
//   out_s[i,j] = exp(<m_t[idx_ij], e_s,i> / tau)   (student anchor, teacher memory; RD out_v1)
//   out_t[i,j] = exp(<m_s[idx_ij], e_t,i> / tau)   (teacher anchor, student memory; RD out_v2)
//   L = nce(out_s / Z_s) + nce(out_t / Z_t)        (crd_nce_loss, transfer/crd.h)
// then, without gradient, m_s[y_i] <- normalize(mu m_s[y_i] + (1-mu) e_s,i), the same for m_t
// with e_t (memory.py:63-77; mu = momentum 0.5). The scores are computed as e @ m^T over the
// whole bank ([B, N], then gathered at idx): the same numbers as RD's gather of B*(1+K) rows
// ([B, 1+K, dim]), with B*N instead of B*(1+K)*dim floats held (less whenever N < (1+K)*dim,
// 2.1 M at the defaults). The bank the value reads is a copy when a gradient is wanted, so the
// in-place update after the value never reaches this step's backward.
//
// Negatives (draw): K indices uniformly among the examples whose recorded label differs from
// the anchor's, without replacement when K does not exceed that pool (with replacement when it
// does, as RD's np.random.choice(replace = K > pool)). The batch's labels are recorded before
// the draw. An example whose label has not been seen yet (the first epoch) is a candidate for
// every anchor: labels are not known when the loss is built, so during the first epoch about
// 1/C of the not-yet-seen candidates share the anchor's class; from the second epoch on every
// label is recorded and the pool is exactly RD's cls_negative. RD's 'relax' mode (a random
// same-class positive) is not implemented. Duplicate ids in one batch: the last one's update wins.
//
// CrdQueue (memory = "queue", retort's extension, not a reference method; METHODS2.md "A
// fixed-size queue variant"): FIFO queues of the last Q student and teacher embeddings
// ([Q, dim] each, O(Q*dim) memory whatever N; no sample ids, no labels). For the live pair
//   L = infonce(e_s; e_t, queue_t) + infonce(e_t; e_s, queue_s)     (crd_info_nce, at tau)
// over the queue's filled part (nothing the first step: the loss is then 0), then the batch's
// detached embeddings are enqueued, the oldest dropped. state = i64 [2]: (filled, head).
#pragma once
#include <cstdint>
#include <vector>
#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace retort::transfer {

class CrdBank {
 public:
  CrdBank(int64_t size, int64_t dim, int64_t negatives, double temperature, double momentum, uint64_t seed,
          Device device, DType dtype);

  // Records labels[b] as the label of example ids[b], then draws the contrast indices: i64
  // [B, 1+K] on the bank's device, row b = (ids[b], K negatives of other recorded classes).
  // Deterministic given the bank's state (its step counter and recorded labels) and the seed.
  Tensor draw(const std::vector<int64_t>& ids, const std::vector<int64_t>& labels);
  // One training step: draw(ids, labels), then the loss for those indices. e_s / e_t [B, dim]
  // are the unit embeddings, ids the examples' positions in the training set.
  Tensor loss(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
              const std::vector<int64_t>& labels);
  // The loss for given contrast indices [B, 1+K] (any numeric dtype and device; the reference
  // fixtures give them; every index is checked): sets Z on the first call, then updates the
  // memory rows `ids` and advances the step counter.
  Tensor loss_with_indices(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
                           const Tensor& contrast_idx);

  nn::NamedTensors buffers() const;  // student, teacher, z, labels, step
  int64_t size() const { return size_; }
  int64_t negatives() const { return negatives_; }

  Tensor memory_student, memory_teacher, z, labels, step;

 private:
  std::vector<int64_t> draw_host(const std::vector<int64_t>& ids, const std::vector<int64_t>& labels);
  // idx: the contrast indices row-major, `row` = 1 + K a row
  Tensor step_loss(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
                   const std::vector<int64_t>& idx, int64_t row);
  void sync_host();        // re-reads the labels when the buffers were loaded (step counter moved)
  void rebuild_groups();   // order_ by (label, index), with each label's segment
  int64_t size_, dim_, negatives_;
  double temperature_, momentum_;
  uint64_t seed_;
  Device device_;
  // Host mirror of `labels` and the draw's index structures.
  std::vector<int64_t> host_labels_, order_, group_start_, group_count_, perm_, swaps_;
  int64_t host_step_ = -1;
  bool groups_dirty_ = true;
};

class CrdQueue {
 public:
  CrdQueue(int64_t size, int64_t dim, double temperature, Device device, DType dtype);
  // The loss of the live pair against the queue's filled part, then the batch is enqueued.
  Tensor loss(const Tensor& e_s, const Tensor& e_t);
  nn::NamedTensors buffers() const;  // student, teacher, state
  int64_t size() const { return size_; }
  int64_t filled() const;

  Tensor queue_student, queue_teacher, state;

 private:
  void enqueue(const Tensor& e_s, const Tensor& e_t);
  int64_t size_, dim_;
  double temperature_;
};

}  // namespace retort::transfer
