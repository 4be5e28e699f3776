// A stage's loss terms, built from the recipe before anything trains: each term from its
// checked arguments (transfer/loss_schema.h), its weight, and the taps the terms read of the
// student and of each teacher (a forward computes only what is asked).
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>
#include "models/model.h"
#include "train/recipe.h"
#include "transfer/loss_term.h"

namespace retort {

struct StageLosses {
  std::vector<std::unique_ptr<transfer::Loss>> losses;
  std::vector<double> weights;
  std::set<std::string> student_taps;
  std::map<std::string, std::set<std::string>> teacher_taps;
};

// Builds (and so checks) a stage's loss terms. An impossible feature pairing, a teacher that is
// not among the stage's teachers, or a loss that needs labels on unlabelled data is an Error
// naming the recipe line. The runner calls it for every stage before any training starts and
// hands each stage its set through StageOptions::losses.
// dataset_size: the stage's training examples (0 when unknown); earlier_loss_state: how a term
// reads what an earlier stage's term trained (empty outside a recipe run).
StageLosses build_stage_losses(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                               const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                               const Shape& input_shape, Device device, uint64_t seed, bool labelled,
                               int64_t dataset_size = 0, const transfer::EarlierLossState& earlier_loss_state = {});

// The learned tensors of a stage's loss terms (parameters and buffers), named "loss<i>.<name>"
// as in checkpoints.
nn::NamedTensors loss_state(const std::vector<std::unique_ptr<transfer::Loss>>& losses);
// The tensors of term `index` in such a set, with the "loss<i>." prefix removed.
std::map<std::string, Tensor> loss_term_state(const std::map<std::string, Tensor>& state, size_t index);

}  // namespace retort
