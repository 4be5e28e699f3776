// Evaluation and top-k counting (see train/evaluate.h).
#include "train/evaluate.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include "engine/autograd.h"
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

EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches,
                    dist::Communicator* group) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto start = Clock::now();
  double loss_sum = 0;
  int64_t n = 0, batches = 0;
  TopkCounts hits;
  loader.start_epoch(0);
  data::Batch batch;
  while (loader.next(batch)) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    if (batch.size() == 0) continue;  // this rank's slice of a last batch smaller than the ranks
    Tensor x = batch.images_tensor(device), y = batch.labels_tensor(device);
    Tensor logits = model.forward(x, nullptr);
    loss_sum += cross_entropy(logits, y, 0.0, Reduction::sum).item();
    count_topk(logits, y, hits);
    n += x.size(0);
  }
  model.train(was_training);
  if (group && group->size() > 1) {
    Tensor sums = Tensor::from_vector({loss_sum, double(hits.top1), double(hits.top5), double(hits.nonfinite_rows),
                                       double(n)}, {5}, DType::f64);
    group->allreduce_sum(sums);
    const auto v = sums.to_vector();
    loss_sum = v[0];
    hits.top1 = int64_t(v[1]);
    hits.top5 = int64_t(v[2]);
    hits.nonfinite_rows = int64_t(v[3]);
    n = int64_t(v[4]);
  }
  EvalResult r;
  r.images = n;
  r.nonfinite_rows = hits.nonfinite_rows;
  if (n > 0) {
    r.loss = loss_sum / double(n);
    r.top1 = 100.0 * double(hits.top1) / double(n);
    r.top5 = 100.0 * double(hits.top5) / double(n);
  }
  r.images_per_s = double(n) / std::max(seconds_since(start), 1e-9);
  return r;
}

}  // namespace retort
