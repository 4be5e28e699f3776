// Evaluation of a model on a loader (eval mode, no grad): cross-entropy, top-1 and top-5; and
// the top-k counting the trainer also uses for its running training accuracy.
#pragma once
#include <cstdint>
#include "engine/data/loader.h"
#include "engine/device.h"
#include "models/model.h"

namespace retort {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // CE loss; accuracies in percent
  double images_per_s = 0;
  int64_t images = 0;
};

// Evaluates `model` (eval mode, no grad) on a loader: CE loss, top-1, top-5 (at most
// max_batches batches when positive).
EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches = 0);

// Adds the top-1 and top-5 hits of logits [B, C] against labels [B] (counted on the host).
void count_topk(const Tensor& logits, const Tensor& labels, int64_t& top1, int64_t& top5);

}  // namespace retort
