// Choosing a stage's model on a validation split, never on the test set: after every
// evaluation the validation top-1 is compared with the best so far; a better epoch's weights
// are kept (in memory, and in <dir>/<stage>.best.safetensors so a resumed stage remembers
// them). At the stage's end both the best and the last model are evaluated on the test split,
// and the one the stage's `keep` names stays in the model.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"
#include "models/model.h"
#include "train/evaluate.h"
#include "train/recipe.h"

namespace retort {

// What selection found: the best epoch on validation, both models' validation and test
// accuracies, and which one the stage kept.
struct SelectionResult {
  bool active = false;  // a validation split was evaluated
  KeepModel kept = KeepModel::best;
  int64_t best_epoch = 0, last_epoch = 0;
  double best_val_top1 = NAN, last_val_top1 = NAN;
  EvalResult best_test, last_test;
  // One line: "kept the best on validation (epoch 3: val 91.20%, test 90.10%); last (epoch 5:
  // val 90.80%, test 90.30%)".
  std::string line() const;
};

// A copy of every tensor of the model's state dict (own storage, same device and dtype).
nn::NamedTensors cloned_state(const models::Model& model);

class BestOnValidation {
 public:
  // `file`: where the best weights are written (rank 0 only: `writes`); "" keeps them in
  // memory alone. Tensors named by the model's state_dict.
  BestOnValidation(std::string file, std::string stage, bool writes, StringMap metadata = {});
  // A resumed stage: the best so far from the file, when it exists and belongs to this stage.
  void resume(const models::Model& model);
  // After an evaluation on validation at `epoch`: keeps the weights when strictly better (ties
  // keep the earlier epoch) and returns whether they were. Non-finite results never win.
  bool offer(const models::Model& model, int64_t epoch, const EvalResult& validation);
  bool any() const { return best_epoch_ > 0; }
  int64_t best_epoch() const { return best_epoch_; }
  double best_top1() const { return best_top1_; }
  // Puts the best weights into `model` (its other state, e.g. generators, untouched).
  void load_best_into(models::Model& model) const;

 private:
  std::string file_, stage_;
  StringMap metadata_;  // the model file's (arch, config, input), written with the weights
  bool writes_ = false;
  int64_t best_epoch_ = 0;
  double best_top1_ = -1;
  nn::NamedTensors best_;  // copies of the best epoch's tensors, on the model's device
};

}  // namespace retort
