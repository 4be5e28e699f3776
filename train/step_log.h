// What a logged step shows beyond its loss, for steps.jsonl: each loss term unweighted, the
// gradient norm before clipping, and the terms' own step statistics (transfer::Loss::step_stats:
// KD's agreement with its teacher, FSP's per-pair distances, AFT's rho). The step gathers them
// on the device (StepProbe) and the trainer reads them in one host read, only on logged steps,
// so logging every few steps stays cheap.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
#include "engine/tensor.h"
#include "train/recipe.h"

namespace retort {

// A stage's name for each of its loss terms: the kind ("kd"), or "<kind>#<index>" when the
// stage has that kind more than once ("aft#2"). steps.jsonl, metrics.jsonl and the log use it.
std::vector<std::string> term_labels(const StageSpec& stage);

struct StepProbe {
  std::vector<Tensor> terms;                          // one-element, detached
  Tensor grad_norm;                                   // the global L2 norm before clipping
  std::vector<std::pair<std::string, Tensor>> stats;  // "<term label>.<name>", one-element

  struct Values {
    std::vector<double> terms;
    double grad_norm = NAN;
    std::vector<std::pair<std::string, double>> stats;
  };
  // Everything gathered, in one host read.
  Values read() const;
};

// One steps.jsonl row's measured values beyond the step's loss and learning rate.
struct LoggedStep {
  std::vector<std::pair<std::string, double>> terms;    // label -> unweighted value
  std::vector<std::pair<std::string, double>> weights;  // label -> the term's weight
  std::vector<std::pair<std::string, double>> stats;    // "<label>.<name>" -> value
  double grad_norm = NAN;
  int64_t images = 0;        // images since the previous row
  double images_per_s = NAN;  // over those images
  double train_top1 = NAN;    // percent over them (labelled stages)
};

}  // namespace retort
