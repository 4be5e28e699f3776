// Evaluation and top-k counting (see train/evaluate.h).
#include "train/evaluate.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

void count_topk(const Tensor& logits, const Tensor& labels, TopkCounts& counts) {
  auto v = logits.to_vector();
  auto y = labels.to_i64_vector();
  const int64_t b = logits.size(0), c = logits.size(1);
  for (int64_t i = 0; i < b; ++i) {
    const double* row = v.data() + i * c;
    if (!std::all_of(row, row + c, [](double x) { return std::isfinite(x); })) {
      ++counts.nonfinite_rows;  // a NaN compares false with everything: it must not look like a hit
      continue;
    }
    const double target = row[y[size_t(i)]];
    int64_t greater = 0;
    for (int64_t j = 0; j < c; ++j)
      if (row[j] > target || (row[j] == target && j < y[size_t(i)])) ++greater;
    counts.top1 += greater < 1;
    counts.top5 += greater < 5;
  }
}

namespace {
// 1 for a row of logits [B, C] whose values are all finite, else 0, as f32 [B] (x - x is 0 only
// for finite x, so a row's sum of it is 0 only when the whole row is finite).
Tensor finite_rows(const Tensor& l) {
  return eq(sum(sub(l, l), {1}), Tensor::zeros({l.size(0)}, l.dtype(), l.device())).to(DType::f32);
}
}  // namespace

Tensor top1_hits_on_device(const Tensor& logits, const Tensor& labels) {
  NoGradGuard no_grad;
  const Tensor l = logits.detach().to(DType::f32);
  const Tensor hit = eq(argmax(l, 1), labels.detach().to(DType::i64)).to(DType::f32);  // ties: the lowest class
  return sum(mul(hit, finite_rows(l))).reshape({1});
}

Tensor topk_counts_on_device(const Tensor& logits, const Tensor& labels) {
  NoGradGuard no_grad;
  const Tensor l = logits.detach().to(DType::f32);
  const int64_t b = l.size(0), c = l.size(1);
  const Tensor y = labels.detach().to(DType::i64).reshape({b, 1});
  const Tensor target = gather(l, 1, y);  // [B, 1]
  // Classes ranked above the label: a larger logit, or an equal one with a lower index.
  const Tensor larger = gt(sub(l, target), 0.0).to(DType::f32);
  const Tensor lower_index = gt(sub(y.to(DType::f32), Tensor::arange(c, DType::f32, l.device()).reshape({1, c})), 0.5);
  const Tensor tied_before = mul(eq(l, target).to(DType::f32), lower_index.to(DType::f32));
  const Tensor ahead = sum(add(larger, tied_before), {1});  // [B]
  const Tensor finite = finite_rows(l);
  const Tensor top1 = sum(mul(gt(rsub(0.5, ahead), 0.0).to(DType::f32), finite));  // ahead < 1
  const Tensor top5 = sum(mul(gt(rsub(4.5, ahead), 0.0).to(DType::f32), finite));  // ahead < 5
  const Tensor nonfinite = rsub(double(b), sum(finite));
  return stack({top1, top5, nonfinite}, 0).to(DType::f64);
}

namespace {
// The batch's confusion counts, f64 [C * C] (row = label, column = argmax), finite rows only:
// one_hot(labels)^T @ one_hot(predictions), so it stays on the device.
Tensor confusion_on_device(const Tensor& logits, const Tensor& labels) {
  const Tensor l = logits.detach().to(DType::f32);
  const int64_t b = l.size(0), c = l.size(1);
  const Tensor classes = Tensor::arange(c, DType::i64, l.device()).reshape({1, c});
  const Tensor truth = mul(eq(labels.detach().to(DType::i64).reshape({b, 1}), classes).to(DType::f32),
                           finite_rows(l).reshape({b, 1}));
  const Tensor predicted = eq(argmax(l, 1).reshape({b, 1}), classes).to(DType::f32);
  return matmul(truth.transpose(0, 1), predicted).to(DType::f64).reshape({c * c});
}
}  // namespace

EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches,
                    dist::Communicator* group, bool with_confusion) {
  RETORT_CHECK(model.has_classifier(), "{} '{}' has no classifier (its head was dropped): it cannot be evaluated on "
               "labels", model.type_name(), model.family());
  NoGradGuard no_grad;
  DeferLabelCheck labels_checked_on_load;  // a bad label makes the loss NaN instead of a read per batch
  const bool was_training = model.is_training();
  model.eval();
  auto start = Clock::now();
  // loss sum, top-1, top-5, non-finite rows: summed on the device, read once at the end
  Tensor sums = Tensor::zeros({4}, DType::f64, device);
  Tensor confusion;  // f64 [C * C] once the first batch says C
  int64_t images = 0;
  int64_t batches = 0;
  loader.start_epoch(0);
  data::Batch batch;
  while (loader.next(batch)) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    if (batch.size() == 0) continue;  // this rank's slice of a last batch smaller than the ranks
    Tensor x = batch.images_tensor(device), y = batch.labels_tensor(device);
    Tensor logits = model.forward(x, nullptr);
    const Tensor loss = cross_entropy(logits, y, 0.0, Reduction::sum).to(DType::f64).reshape({1});
    sums = add(sums, concat({loss, topk_counts_on_device(logits, y)}, 0));
    if (with_confusion) {
      const Tensor counts = confusion_on_device(logits, y);
      confusion = confusion.defined() ? add(confusion, counts) : counts;
    }
    images += x.size(0);
  }
  model.train(was_training);
  // The evaluation's one host read, with the image count and the confusion counts appended
  // (reduced over ranks with it).
  std::vector<Tensor> parts{sums.to(Device::cpu()), Tensor::full({1}, double(images), DType::f64)};
  if (confusion.defined()) parts.push_back(confusion.to(Device::cpu()));
  Tensor host = concat(parts, 0);
  if (group && group->size() > 1) group->allreduce_sum(host);
  const auto v = host.to_vector();
  EvalResult r;
  const int64_t n = int64_t(v[4]);
  r.images = n;
  r.nonfinite_rows = int64_t(v[3]);
  if (n > 0) {
    r.loss = v[0] / double(n);
    r.top1 = 100.0 * v[1] / double(n);
    r.top5 = 100.0 * v[2] / double(n);
  }
  r.images_per_s = double(n) / std::max(seconds_since(start), 1e-9);
  if (v.size() > 5) {
    r.classes = int64_t(std::llround(std::sqrt(double(v.size() - 5))));
    for (size_t i = 5; i < v.size(); ++i) r.confusion.push_back(int64_t(std::llround(v[i])));
  }
  return r;
}

}  // namespace retort
