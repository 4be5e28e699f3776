// One evaluation of a stage's model, in one struct with one serializer: what the trainer
// reports after an epoch, what the run directory appends to metrics.jsonl, and what the
// stage cache keeps and replays. NaN fields (nothing measured) are written as null.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <nlohmann/json.hpp>

namespace retort {

struct EvalRecord {
  std::string stage;
  std::string model;
  int64_t epoch = 0;
  int64_t step = 0;      // optimizer steps so far in the stage
  std::string split;     // "train", "val", "test"
  double loss = NAN;
  double top1 = NAN;     // percent
  double top5 = NAN;     // percent
  double images_per_s = NAN;       // training images per second over the epoch
  double wall_s = NAN;             // seconds since the stage started
  double train_loss = NAN;         // mean weighted training loss over the epoch's steps
  double train_top1 = NAN;         // percent, on the training batches as they were trained (labelled stages)
  double eval_images_per_s = NAN;  // evaluation images per second
  int64_t nonfinite_logits = 0;    // evaluated images whose logits held a NaN or an infinity (misses)
  std::map<std::string, double> loss_stats;  // the loss terms' own scalars (Loss::epoch_stats), e.g. "aft.rho_mean"
};

nlohmann::json to_json(const EvalRecord& record);
// Reads what to_json wrote (absent or null fields stay NaN); throws on a missing stage/model.
EvalRecord eval_record_from_json(const nlohmann::json& j);

}  // namespace retort
