// Evaluation of a model on a loader (eval mode, no grad): cross-entropy, top-1 and top-5; and
// the top-k counting the trainer also uses for its running training accuracy.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>
#include "engine/data/loader.h"
#include "engine/device.h"
#include "engine/dist/communicator.h"
#include "models/model.h"

namespace retort {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // CE loss; accuracies in percent
  double images_per_s = 0;
  int64_t images = 0;
  int64_t nonfinite_rows = 0;  // images whose logits held a NaN or an infinity (never counted as hits)
  // With with_confusion: classes x classes counts, row = true class, column = predicted (argmax,
  // ties to the lowest class), over the images with finite logits; else empty.
  std::vector<int64_t> confusion;
  int64_t classes = 0;
  bool finite() const { return nonfinite_rows == 0 && std::isfinite(loss); }
};

// Evaluates `model` (eval mode, no grad) on a loader: CE loss, top-1, top-5 (at most
// max_batches batches when positive). The sums stay on the device and are read once at the end
// (one host synchronisation per evaluation, not three per batch). With `group`, each rank's loader holds its slice of the
// test batches and the sums are reduced over the ranks, so every rank gets the whole set's result.
// with_confusion adds the confusion matrix, counted on the device and read with the sums.
EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches = 0,
                    dist::Communicator* group = nullptr, bool with_confusion = false);

// Top-1 and top-5 hits of logits [B, C] against labels [B], counted on the host. A row with a
// NaN or an infinite logit is never a hit: it is counted in nonfinite_rows instead.
struct TopkCounts {
  int64_t top1 = 0, top5 = 0, nonfinite_rows = 0;
};
void count_topk(const Tensor& logits, const Tensor& labels, TopkCounts& counts);
// The same counts on the logits' device without a host read: f64 [3] = top-1 hits, top-5 hits,
// non-finite rows.
Tensor topk_counts_on_device(const Tensor& logits, const Tensor& labels);
// Top-1 hits alone, cheaper (argmax): a one-element f32 tensor (the training step's count).
Tensor top1_hits_on_device(const Tensor& logits, const Tensor& labels);

}  // namespace retort
