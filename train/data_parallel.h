// Data parallelism for a stage. The recipe's batch_size is the global batch: of every global
// batch, rank r of N computes the contiguous slice r (and, with micro_batches = M, that slice as
// M micro-batches one after the other), so the step is the one-process step on the same global
// batch. After backward the gradients of everything that trains (the student and the loss
// terms' own parameters) are summed over the slices in a fixed order (rank-ordered on MPI),
// scaled by 1/(N*M) and written back; with per-rank BatchNorm the running statistics are
// averaged the same way. The step's loss, accuracy counts and stop decisions (a non-finite
// loss, an interrupt) are reduced too, so every rank decides alike. A one-process,
// one-micro-batch stage takes none of this path.
#pragma once
#include <string>
#include "engine/dist/communicator.h"
#include "train/recipe.h"
#include "train/stage_losses.h"
#include "train/train_step.h"

namespace retort {

struct ParallelPlan {
  dist::Communicator* world = nullptr;  // host collectives: decisions, scalars, evaluation
  dist::Communicator* grads = nullptr;  // where gradients and statistics are reduced
  int ranks = 1, rank = 0, micro_batches = 1;
  bool sync_bn = false;
  int slices() const { return ranks * micro_batches; }
  bool active() const { return slices() > 1; }
};

// The plan of a stage on this process's communicator (dist::world()).
ParallelPlan plan_stage(const StageSpec& stage, Device device);

// What a stage must satisfy to run on `ranks` ranks, checked before any work starts: a global
// batch that splits evenly, no loss term that compares examples across the batch, SyncBN not
// mixed with micro-batches. Errors name the recipe line.
void check_parallel_stage(const Recipe& recipe, const StageSpec& stage, const StageLosses& losses, int ranks);

// Gives every rank rank 0's values of the tensors (weights, buffers, optimizer state).
void replicate_from_root(const ParallelPlan& plan, const nn::NamedTensors& tensors);

// One data-parallel step on this rank's slice x of the global batch. `interrupt` is this rank's
// pending signal (0: none); the step returns the largest over the ranks in StepOutput::signal.
// global_rows: the rows of the whole global batch (for SyncBN's count without a device read).
StepOutput parallel_step(const StepParts& parts, const ParallelPlan& plan, const Tensor& x, const Tensor& y,
                         const std::vector<int64_t>* positions, const transfer::StepClock& clock, int interrupt,
                         const std::function<std::string()>& where, int64_t global_rows);

// The equivalence tests' controls, which must make them fail: RETORT_DIST_FAULT names one of
// "no_scale" (gradients summed, not averaged), "same_slice" (every rank and micro-batch reads
// the first slice), "skip_loss_grads" (the loss terms' own gradients are not reduced).
bool dist_fault(const char* name);

// Testing aid for the failure tests: RETORT_TEST_RANK_FAULT="<rank>:<step>:hang|error" makes
// that rank hang forever, or fail, once it has finished that step.
void rank_fault_for_test(const ParallelPlan& plan, int64_t step);

// Fails on every rank alike when the replicas' weights differ (a bitwise hash of every tensor,
// compared over the ranks): the check behind `--verify-replicas`.
void verify_replicas(const ParallelPlan& plan, const nn::NamedTensors& tensors, int64_t step);

}  // namespace retort
