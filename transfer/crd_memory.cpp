// CRD's memories: the per-example bank with its negative sampling, and the fixed-size queue.
#include "transfer/crd_memory.h"
#include <algorithm>
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "transfer/crd.h"

namespace retort::transfer {
namespace {

// Rows of m (no gradient) blended with e and renormalised: normalize(mu * m + (1 - mu) * e).
Tensor blend_rows(const Tensor& rows, const Tensor& e, double momentum) {
  Tensor r = add(mul(rows, momentum), mul(e, 1.0 - momentum));
  return div(r, sqrt(sum(mul(r, r), {1}, true)));
}

}  // namespace

// ---------------------------------------------------------------------------- CrdBank

CrdBank::CrdBank(int64_t size, int64_t dim, int64_t negatives, double temperature, double momentum, uint64_t seed,
                 Device device, DType dtype)
    : size_(size), dim_(dim), negatives_(negatives), temperature_(temperature), momentum_(momentum),
      seed_(seed), device_(device) {
  RETORT_CHECK(size > 0, "crd: the memory bank needs the training set's size (one row per example), got {}", size);
  RETORT_CHECK(dim > 0 && negatives > 0, "crd: dim and negatives must be positive, got {} and {}", dim, negatives);
  RETORT_CHECK(temperature > 0, "crd: temperature must be positive, got {}", temperature);
  RETORT_CHECK(momentum >= 0 && momentum <= 1, "crd: momentum must be in [0, 1], got {}", momentum);
  // uniform in [-sigma, sigma], sigma = 1 / sqrt(dim / 3) (RD memory.py:19-21)
  const double sigma = 1.0 / std::sqrt(double(dim) / 3.0);
  Generator gen(seed ^ 0xC7D0BA4Cull);
  NoGradGuard no_grad;
  memory_student = add(mul(rand({size, dim}, gen, dtype, device), 2 * sigma), -sigma).contiguous();
  memory_teacher = add(mul(rand({size, dim}, gen, dtype, device), 2 * sigma), -sigma).contiguous();
  z = Tensor::full({2}, -1.0, dtype, device);
  labels = Tensor::full({size}, -1.0, DType::i64, device);
  step = Tensor::zeros({1}, DType::i64, device);
  perm_.resize(size_t(size));
  for (int64_t i = 0; i < size; ++i) perm_[size_t(i)] = i;
}

nn::NamedTensors CrdBank::buffers() const {
  return {{"student", memory_student}, {"teacher", memory_teacher}, {"z", z}, {"labels", labels}, {"step", step}};
}

void CrdBank::sync_host() {
  const int64_t s = int64_t(step.item());
  if (s == host_step_) return;
  host_labels_ = labels.to_i64_vector();
  host_step_ = s;
  groups_dirty_ = true;
}

void CrdBank::rebuild_groups() {
  // group g = label + 1 (0: not seen yet); order_ = indices sorted by (group, index)
  int64_t groups = 1;
  for (int64_t l : host_labels_) groups = std::max(groups, l + 2);
  group_count_.assign(size_t(groups), 0);
  for (int64_t l : host_labels_) ++group_count_[size_t(l + 1)];
  group_start_.assign(size_t(groups), 0);
  for (int64_t g = 1; g < groups; ++g) group_start_[size_t(g)] = group_start_[size_t(g - 1)] + group_count_[size_t(g - 1)];
  std::vector<int64_t> next = group_start_;
  order_.resize(size_t(size_));
  for (int64_t i = 0; i < size_; ++i) order_[size_t(next[size_t(host_labels_[size_t(i)] + 1)]++)] = i;
  groups_dirty_ = false;
}

Tensor CrdBank::draw(const std::vector<int64_t>& ids, const std::vector<int64_t>& batch_labels) {
  return Tensor::from_i64(draw_host(ids, batch_labels), {int64_t(ids.size()), negatives_ + 1}, device_);
}

std::vector<int64_t> CrdBank::draw_host(const std::vector<int64_t>& ids, const std::vector<int64_t>& batch_labels) {
  RETORT_CHECK(ids.size() == batch_labels.size(), "crd: {} sample ids but {} labels", ids.size(), batch_labels.size());
  for (size_t b = 0; b < ids.size(); ++b) {
    RETORT_CHECK(ids[b] >= 0 && ids[b] < size_, "crd: sample id {} is outside the memory bank's [0, {})", ids[b], size_);
    RETORT_CHECK(batch_labels[b] >= 0, "crd: label {} of sample {} is negative", batch_labels[b], ids[b]);
  }
  sync_host();
  for (size_t b = 0; b < ids.size(); ++b) {
    const int64_t id = ids[b], label = batch_labels[b];
    if (host_labels_[size_t(id)] == label) continue;
    host_labels_[size_t(id)] = label;
    labels.slice(0, id, id + 1).fill_(double(label));
    groups_dirty_ = true;
  }
  if (groups_dirty_) rebuild_groups();

  const int64_t k = negatives_, row = k + 1;
  std::vector<int64_t> out(ids.size() * size_t(row));
  Generator gen(hash64(seed_ ^ 0x5A3D1E5Eull, uint64_t(host_step_)));
  swaps_.resize(size_t(k));
  for (size_t b = 0; b < ids.size(); ++b) {
    int64_t* dst = out.data() + b * size_t(row);
    dst[0] = ids[b];  // 'exact' mode: the example itself is the positive
    const size_t g = size_t(batch_labels[b] + 1);
    const int64_t seg_start = group_start_[g], seg_count = group_count_[g];
    const int64_t pool = size_ - seg_count;  // every recorded example of another class + the unseen ones
    RETORT_CHECK(pool > 0, "crd: no negative for sample {}: all {} examples of the memory bank have its label {}",
                 ids[b], size_, batch_labels[b]);
    auto at = [&](int64_t p) { return order_[size_t(p < seg_start ? p : p + seg_count)]; };
    if (k <= pool) {
      // partial Fisher-Yates over positions [0, pool), undone afterwards so perm_ stays the identity
      for (int64_t i = 0; i < k; ++i) {
        const int64_t j = i + gen.randint(pool - i);
        std::swap(perm_[size_t(i)], perm_[size_t(j)]);
        swaps_[size_t(i)] = j;
        dst[1 + i] = at(perm_[size_t(i)]);
      }
      for (int64_t i = k - 1; i >= 0; --i) std::swap(perm_[size_t(i)], perm_[size_t(swaps_[size_t(i)])]);
    } else {
      for (int64_t i = 0; i < k; ++i) dst[1 + i] = at(gen.randint(pool));
    }
  }
  return out;
}

Tensor CrdBank::loss(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
                     const std::vector<int64_t>& batch_labels) {
  RETORT_CHECK(e_s.dim() == 2 && int64_t(ids.size()) == e_s.size(0),
               "crd: {} sample ids for student embeddings {}", ids.size(), e_s.str());
  return step_loss(e_s, e_t, ids, draw_host(ids, batch_labels), negatives_ + 1);
}

Tensor CrdBank::loss_with_indices(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
                                  const Tensor& contrast_idx) {
  RETORT_CHECK(contrast_idx.dim() == 2 && contrast_idx.size(0) == int64_t(ids.size()) && contrast_idx.size(1) >= 2,
               "crd: contrast indices must be [B = {}, 1 + K], got {}", ids.size(), contrast_idx.str());
  std::vector<int64_t> idx;
  for (double i : contrast_idx.to_vector()) {
    RETORT_CHECK(i >= 0 && i < double(size_) && i == std::floor(i), "crd: contrast index {} is not an index in [0, {})",
                 i, size_);
    idx.push_back(int64_t(i));
  }
  return step_loss(e_s, e_t, ids, idx, contrast_idx.size(1));
}

Tensor CrdBank::step_loss(const Tensor& e_s, const Tensor& e_t, const std::vector<int64_t>& ids,
                          const std::vector<int64_t>& idx, int64_t row) {
  const int64_t b = e_s.dim() == 2 ? e_s.size(0) : -1;
  RETORT_CHECK(b > 0 && e_s.shape() == Shape({b, dim_}) && e_t.shape() == e_s.shape(),
               "crd: the embeddings must both be [B, {}], got student {} and teacher {}", dim_, e_s.str(), e_t.str());
  RETORT_CHECK(int64_t(ids.size()) == b, "crd: {} sample ids for a batch of {}", ids.size(), b);
  for (int64_t id : ids)
    RETORT_CHECK(id >= 0 && id < size_, "crd: sample id {} is outside the memory bank's [0, {})", id, size_);
  // scores [B, N] read at (i, idx_ij) through the flat index i*N + idx_ij (one index_select)
  std::vector<int64_t> flat(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) flat[i] = int64_t(i / size_t(row)) * size_ + idx[i];
  Tensor at = Tensor::from_i64(flat, {int64_t(flat.size())}, device_);
  auto pick = [&](const Tensor& scores) { return index_select(scores.reshape({b * size_}), 0, at).reshape({b, row}); };

  // The value reads a copy of the banks when a gradient is wanted: the in-place update below
  // must not change what this step's backward multiplies with.
  const bool want_grad = grad_enabled() && (e_s.requires_grad() || e_t.requires_grad());
  Tensor m_t = want_grad ? memory_teacher.clone() : memory_teacher;
  Tensor m_s = want_grad ? memory_student.clone() : memory_student;
  const double inv_t = 1.0 / temperature_;
  Tensor out_s = exp(mul(pick(matmul(e_s, m_t.transpose(0, 1))), inv_t));  // RD out_v1
  Tensor out_t = exp(mul(pick(matmul(e_t, m_s.transpose(0, 1))), inv_t));  // RD out_v2

  auto zv = z.to_vector();
  {
    NoGradGuard no_grad;
    // Z = N * mean(scores), once, stored in the bank's dtype and read back (RD params[2], [3])
    if (zv[0] < 0) z.slice(0, 0, 1).copy_(mul(mean(out_s.detach()), double(size_)).reshape({1}));
    if (zv[1] < 0) z.slice(0, 1, 2).copy_(mul(mean(out_t.detach()), double(size_)).reshape({1}));
    zv = z.to_vector();
  }
  Tensor value = add(crd_nce_loss(div(out_s, Tensor::scalar(zv[0], out_s.dtype(), out_s.device())), size_),
                     crd_nce_loss(div(out_t, Tensor::scalar(zv[1], out_t.dtype(), out_t.device())), size_));

  NoGradGuard no_grad;
  Tensor id_t = Tensor::from_i64(ids, {b}, device_);
  Tensor new_s = blend_rows(index_select(memory_student, 0, id_t), e_s.detach(), momentum_);
  Tensor new_t = blend_rows(index_select(memory_teacher, 0, id_t), e_t.detach(), momentum_);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t id = ids[size_t(i)];
    memory_student.slice(0, id, id + 1).copy_(new_s.slice(0, i, i + 1));
    memory_teacher.slice(0, id, id + 1).copy_(new_t.slice(0, i, i + 1));
  }
  const int64_t s = int64_t(step.item());
  step.fill_(double(s + 1));
  if (host_step_ == s) host_step_ = s + 1;  // the host mirror stays valid
  return value;
}

// ---------------------------------------------------------------------------- CrdQueue

CrdQueue::CrdQueue(int64_t size, int64_t dim, double temperature, Device device, DType dtype)
    : size_(size), dim_(dim), temperature_(temperature) {
  RETORT_CHECK(size > 0 && dim > 0, "crd: queue_size and dim must be positive, got {} and {}", size, dim);
  RETORT_CHECK(temperature > 0, "crd: temperature must be positive, got {}", temperature);
  queue_student = Tensor::zeros({size, dim}, dtype, device);
  queue_teacher = Tensor::zeros({size, dim}, dtype, device);
  state = Tensor::zeros({2}, DType::i64, device);
}

nn::NamedTensors CrdQueue::buffers() const {
  return {{"student", queue_student}, {"teacher", queue_teacher}, {"state", state}};
}

int64_t CrdQueue::filled() const { return state.to_i64_vector()[0]; }

Tensor CrdQueue::loss(const Tensor& e_s, const Tensor& e_t) {
  const int64_t b = e_s.dim() == 2 ? e_s.size(0) : -1;
  RETORT_CHECK(b > 0 && e_s.shape() == Shape({b, dim_}) && e_t.shape() == e_s.shape(),
               "crd: the embeddings must both be [B, {}], got student {} and teacher {}", dim_, e_s.str(), e_t.str());
  const int64_t n = filled();
  // the filled part is always the prefix [0, n); a copy when a gradient is wanted, since the
  // enqueue below overwrites rows in place
  const bool want_grad = grad_enabled() && (e_s.requires_grad() || e_t.requires_grad());
  Tensor q_t = queue_teacher.slice(0, 0, n), q_s = queue_student.slice(0, 0, n);
  if (want_grad) {
    q_t = q_t.clone();
    q_s = q_s.clone();
  }
  Tensor value = add(crd_info_nce(e_s, e_t, q_t, temperature_), crd_info_nce(e_t, e_s, q_s, temperature_));
  enqueue(e_s, e_t);
  return value;
}

void CrdQueue::enqueue(const Tensor& e_s, const Tensor& e_t) {
  NoGradGuard no_grad;
  auto st = state.to_i64_vector();
  int64_t filled = st[0], head = st[1];
  int64_t b = e_s.size(0), from = 0;
  if (b > size_) {  // only the newest size_ rows survive
    from = b - size_;
    b = size_;
    head = 0;
  }
  for (int64_t done = 0; done < b;) {
    const int64_t n = std::min(b - done, size_ - head);
    queue_student.slice(0, head, head + n).copy_(e_s.detach().slice(0, from + done, from + done + n));
    queue_teacher.slice(0, head, head + n).copy_(e_t.detach().slice(0, from + done, from + done + n));
    done += n;
    head = (head + n) % size_;
  }
  filled = std::min(size_, filled + b);
  state.copy_(Tensor::from_i64({filled, head}, {2}, state.device()));
}

}  // namespace retort::transfer
