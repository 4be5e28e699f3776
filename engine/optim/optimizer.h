// Optimizer base: parameter groups (lr, weight decay, optional per-group overrides),
// step() under no_grad with multi-tensor fused kernels (one call per bucket of parameters that
// share device, dtype, rule and hyper-parameters; engine/optim/update_batch.h) and an optional
// skip flag read on the device, zero_grad(), per-group lr, and state export/import (named
// tensors + scalars) for checkpoints.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "engine/optim/device_rates.h"
#include "engine/optim/step_counter.h"
#include "engine/tensor.h"

namespace retort {

class UpdateBatch;

// A group's update rule: the optimizer's own, or one given to this group alone (AFT's learned
// rho trains with Adam, as in the authors' code, while SGD trains the network).
enum class GroupRule { optimizer, sgd, adamw };

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  // Per-group overrides of the optimizer's defaults (unset: use the optimizer's value).
  std::optional<double> momentum;  // SGD
  std::optional<bool> nesterov;    // SGD
  std::optional<double> beta1;     // AdamW
  std::optional<double> beta2;     // AdamW
  std::optional<double> eps;       // AdamW
  GroupRule rule = GroupRule::optimizer;  // sgd / adamw: this group's own rule, with its defaults
  // Optional: parameter names (same order as params), used in error messages.
  std::vector<std::string> names;
  std::string name;  // optional group label ("decay", "no_decay", ...)
  double initial_lr = 0.0;  // set by the optimizer to lr at construction; schedules scale it
};

// Splits named parameters (those that require grad) into groups. With
// no_decay_on_norm_and_bias, names ending in ".bias" and 1-d parameters (norm scales and
// shifts) go to a "no_decay" group with weight_decay 0; the rest form a "decay" group.
// Empty groups are left out.
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named_params, double lr,
                                          double weight_decay, bool no_decay_on_norm_and_bias = true);

// An optimizer's state: tensors named "group<g>.param<p>.<key>" (e.g. "group0.param3.exp_avg")
// and scalars with the same naming, plus "group<g>.lr" and "group<g>.weight_decay".
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, double> scalars;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups, std::string name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (others are skipped), in place, under
  // no_grad: parameters are bucketed by (device, dtype, rule, resolved hyper-parameters) and
  // each bucket is one multi-tensor kernel call. Missing state (momentum buffers, Adam moments)
  // is created, as zeros, before the calls.
  // skip_if_nonzero: undefined (never skip) or a one-element f32 tensor on the parameters'
  // device; the kernels read it where they run (never the host, so no synchronisation) and, when
  // it is nonzero or NaN, leave every parameter and every state tensor untouched. Host-side
  // counters still advance on a skipped step (AdamW's step count, which sets the bias
  // correction of the steps after it), so a skipped step is meant for a step after which the
  // run stops (the trainer stops at its next check of the same condition on the host), not for
  // skipping a step and carrying on.
  void step(const Tensor& skip_if_nonzero = Tensor());
  // Writes each group's learning rate to the device where it changed (step() does it first; a
  // CUDA graph's replay needs it done before: engine/optim/device_rates.h).
  void write_rates();
  // Drops every parameter's gradient.
  void zero_grad();

  size_t num_groups() const { return groups_.size(); }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  double lr(size_t group) const;
  void set_lr(size_t group, double lr);
  void set_lr(double lr);  // every group
  const std::string& name() const { return name_; }

  // State for checkpoints. import_state checks every name against the groups and every
  // tensor's shape against its parameter, and reports all problems in one retort::Error.
  OptimizerState export_state() const;
  void import_state(const OptimizerState& state);

  // True when the last step's kernels read every step-dependent value from the device (no
  // AdamW parameter lagged the optimizer's step count): a CUDA graph of the step would then
  // replay correctly (engine/optim/step_counter.h).
  bool steps_on_device() const { return step_counter_.in_lockstep(); }
  // The parameters the last step() updated, as (group, index) pairs.
  using UpdatedParams = std::vector<std::pair<size_t, size_t>>;
  const UpdatedParams& last_updated() const { return last_updated_; }
  // After a replay of a captured step (train/graph_steps.h): advances the host-side counters the
  // replay did not run, exactly as the captured step advanced them (each AdamW parameter it
  // updated, `updated` = its last_updated(), takes one more step, and so does the step
  // counter's mirror), so checkpoints hold what the device holds.
  void note_replayed_step(const UpdatedParams& updated);

 public:
  // Per-parameter state, created lazily on a parameter's first update.
  struct ParamState {
    std::map<std::string, Tensor> tensors;
    std::map<std::string, double> scalars;
  };

 protected:
  // Adds the update of one parameter (contiguous, f32/f64) by its gradient (same shape, dtype
  // and device, contiguous) under the optimizer's own rule to `batch`, creating missing state
  // and advancing host-side counters; step() then launches the batch.
  // `lr` is the group's learning rate on the parameter's device, for the kernels to read.
  virtual void enqueue(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state,
                       UpdateBatch& batch, const double* lr) = 0;
  // Names of the per-parameter state this optimizer keeps (for import checks).
  virtual std::vector<std::string> tensor_state_keys() const = 0;
  virtual std::vector<std::string> scalar_state_keys() const = 0;

  std::string param_label(size_t group, size_t index) const;
  DeviceStepCounter& step_counter() { return step_counter_; }

 private:
  // The parameter's gradient, checked and converted to the parameter's dtype, dense; undefined
  // when it has none.
  Tensor dense_grad(size_t group, size_t index) const;
  void check_no_parameter_twice() const;

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
  DeviceStepCounter step_counter_;
  DeviceRates rates_;
  UpdatedParams last_updated_;
};

}  // namespace retort
