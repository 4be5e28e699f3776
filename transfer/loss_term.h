// The interface every transfer loss implements, and the registry that builds them from a
// recipe's loss terms. A loss reads the student's and the teachers' named taps (see
// models/model.h) and returns one scalar; learned parts (regressors, projection heads, AFT's
// rho) are exposed through parameters() so the stage's optimizer trains them.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "core/check.h"
#include "engine/nn/module.h"
#include "engine/optim/optimizer.h"
#include "models/model.h"
#include "transfer/loss_schema.h"

namespace retort::transfer {

// Where a step stands in its stage: what a loss with a warm-up (DKD, ReviewKD) reads.
struct StepClock {
  int64_t epoch = 0;            // 0-based epoch of the stage
  int64_t batch_in_epoch = 0;   // 0-based batch within the epoch
  int64_t steps_per_epoch = 0;  // 0: unknown (a loss called outside the trainer)

  // Epochs done once this step is done (epoch + (batch_in_epoch + 1) / steps_per_epoch); the
  // 1-based epoch number when steps_per_epoch is unknown.
  double epochs_done() const {
    return steps_per_epoch > 0 ? double(epoch) + double(batch_in_epoch + 1) / double(steps_per_epoch)
                               : double(epoch + 1);
  }
};

// What one training step hands to each loss term.
struct StepInputs {
  Tensor images;                                // the batch, on the device
  Tensor labels;                                // i64 [B]; undefined on unlabelled data
  const models::Taps* student = nullptr;       // includes "logits"
  const std::map<std::string, models::Taps>* teachers = nullptr;  // by recipe model name
  // The batch's positions in the stage's training set, in [0, dataset size): stable over
  // epochs, so a loss may keep per-example state (CRD's memory bank). May be null (a loss
  // called outside the trainer); dataset_size is then 0.
  const std::vector<int64_t>* sample_ids = nullptr;
  int64_t dataset_size = 0;
  StepClock clock;  // default: the first step of the first epoch

  const models::Taps& teacher(const std::string& name) const;
  const Tensor& student_tap(const std::string& tap) const;
  const Tensor& teacher_tap(const std::string& teacher, const std::string& tap) const;
};

// The learned tensors (parameters and buffers, by the names of the loss's parameters() and
// buffers()) that the term of `kind` in an earlier stage `stage` ended that stage with: how a
// part trained in a stage of its own (FT's paraphraser) reaches a later stage. Throws a
// retort::Error when `stage` is not an earlier stage of the recipe or has no term of `kind`;
// returns nullopt while the recipe is only being validated (the stage has not run yet).
using EarlierLossState =
    std::function<std::optional<std::map<std::string, Tensor>>(const std::string& stage, const std::string& kind)>;

// What a loss may need when it is built: its checked arguments (which say where they were
// written), the models it will read, and the device.
struct BuildContext {
  const LossArgs* args = nullptr;
  std::shared_ptr<models::Model> student;
  std::map<std::string, std::shared_ptr<models::Model>> teachers;
  Shape input_shape;  // [1, C, H, W] of the stage's data
  int64_t dataset_size = 0;  // examples in the stage's training set (0: unknown)
  EarlierLossState earlier_loss_state;  // empty outside a recipe run (then no earlier stage exists)
  Device device;
  uint64_t seed = 0;
};

// A set of a loss's learned parameters with its own optimizer settings (unset: the stage's).
struct LossParamGroup {
  nn::NamedTensors params;
  std::optional<double> lr;            // e.g. AFT's rho: 1e-2 whatever the stage's lr
  std::optional<double> weight_decay;  // e.g. 0 for AFT's rho
  GroupRule rule = GroupRule::optimizer;  // its own update rule (AFT's rho: Adam), else the stage's
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual Tensor compute(const StepInputs& in) = 0;
  // Learned parameters of the loss itself (trained with the student), with dotted names.
  virtual nn::NamedTensors parameters() const { return {}; }
  // How parameters() split into optimizer groups (names relative to parameters()); the
  // default is one group with the stage's settings. Every parameter must be in one group.
  virtual std::vector<LossParamGroup> param_groups() const {
    auto p = parameters();
    if (p.empty()) return {};
    return {LossParamGroup{std::move(p), std::nullopt, std::nullopt}};
  }
  // Buffers (running statistics of adapters) saved in checkpoints with the parameters.
  virtual nn::NamedTensors buffers() const { return {}; }
  virtual void train(bool on) { (void)on; }
  // Called when the stage that owns the term starts, before a resume restores the stage's
  // checkpoint and before the first step: where a term takes over what an earlier stage trained
  // (BuildContext::earlier_loss_state).
  virtual void begin_stage() {}
  // Scalars worth following over training (AFT: the mean, min and max of rho), logged and
  // recorded in metrics.jsonl after every epoch; names without the term's prefix.
  virtual std::map<std::string, double> epoch_stats() const { return {}; }
  // Quantities of one step worth a curve (KD: how often student and teacher agree; FSP: each
  // pair's distance; AFT: rho), for steps.jsonl: called only on logged steps, right after
  // compute() on the same inputs, under no grad, so a term may return parts of what compute()
  // just found (FSP's pair terms) instead of computing them again. One-element tensors on the
  // step's device, read by the trainer with the step's other logged values in one host read.
  // Names without the term's prefix.
  virtual std::map<std::string, Tensor> step_stats(const StepInputs& in) const {
    (void)in;
    return {};
  }
  // What the method transfers, drawn in the run report (`retort report`): called once at the end
  // of the stage, under no grad and in eval mode (train(false): an adapter's statistics do not
  // move), with the taps of the student and the teachers (eval mode) on the first test images.
  // Tensors of any shape on any device (e.g. FSP: "teacher.pair0" and "student.pair0", each
  // [C1, C2]; AT: each pair's attention maps [N, H, W]); names without the term's prefix.
  virtual std::map<std::string, Tensor> pictures(const StepInputs& in) const {
    (void)in;
    return {};
  }
  // Why the term's value on a batch is not the mean of per-example values (it compares examples
  // with each other), or "" when it is. Data parallelism refuses such a term: a rank sees only
  // its slice of the batch, so the slices' values would not add up to the whole batch's.
  virtual std::string couples_examples() const { return ""; }
  // True when the term computes the same operations with the same host-side constants at
  // `clock` as at every later step, so that a CUDA graph captured now replays it correctly
  // (train/graph_steps.h); false while a factor the host sets per step (a warm-up) still changes.
  virtual bool settled_at(const StepClock& clock) const {
    (void)clock;
    return true;
  }
  // True when the term needs labels (skipped steps on unlabelled data are an error).
  virtual bool needs_labels() const { return false; }
  // Teacher model names the term reads (must be among the stage's teachers).
  virtual std::vector<std::string> teachers() const { return {}; }
  // Taps the term reads from the student / each teacher (a forward computes only what is asked).
  virtual std::vector<std::string> student_taps() const { return {"logits"}; }
  virtual std::vector<std::string> teacher_taps() const { return {"logits"}; }
};

using LossFactory = std::function<std::unique_ptr<Loss>(const BuildContext&)>;

// What a LossFactory reads from its BuildContext, with the errors every factory gives: each
// names the term's recipe line (args->where) and the loss (args->name).
//   The stage's teacher model named by the term's key `teacher`, or by `name` (a loss reading
//   several teachers: AFT's `teachers`): "<where>: loss '<loss>' reads teacher '<name>', which
//   is not a teacher of this stage" when it is not one of the stage's teachers.
const models::Model& stage_teacher(const BuildContext& c);
const models::Model& stage_teacher(const BuildContext& c, const std::string& name);
//   The student model ("<where>: loss '<loss>' built without a student model" when it is absent).
const models::Model& stage_student(const BuildContext& c);
//   The dtype of the student's parameters (f32 for a model without any): what a loss's own
//   learned parts (embeddings, heads, rho) are created in.
DType student_dtype(const BuildContext& c);
// build() with its retort::Error rethrown prefixed by the term's recipe line ("<where>: ..."),
// once: a message that already starts with the line passes unchanged.
[[noreturn]] void rethrow_with_recipe_line(const BuildContext& c, const Error& e);
template <class F>
auto with_recipe_line(const BuildContext& c, F&& build) -> decltype(build()) {
  try {
    return build();
  } catch (const Error& e) {
    rethrow_with_recipe_line(c, e);
  }
}

// Registers a loss kind: its recipe schema (keys, types, defaults), its factory, and the
// weight a recipe's term gets when it names none (the method's own default).
void register_loss(const std::string& name, std::vector<ParamSpec> params, std::string help, LossFactory factory,
                   double default_weight = 1.0);
// Registers every built-in loss (idempotent); find_loss_schema, build_loss and list_losses call
// it, so nothing else needs to.
void register_builtin_losses();
std::unique_ptr<Loss> build_loss(const BuildContext& ctx);
struct LossInfo {
  std::string name;
  std::string help;
  double default_weight = 1.0;  // the term's weight when a recipe gives none
};
std::vector<LossInfo> list_losses();

}  // namespace retort::transfer
