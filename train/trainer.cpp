// The stage loop, as an outline of named phases: configure (losses, what trains, optimizer,
// loaders, schedule, teacher caches) -> resume from the stage's checkpoint -> per epoch:
// train_step over the batches (train/train_step.h), then checkpoint and evaluate. Checkpoints
// are atomic and a resume is bit-identical on the CPU.
#include "train/trainer.h"
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <optional>
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/nn/module_rng.h"
#include "engine/optim/schedule.h"
#include "train/data_parallel.h"
#include "train/graph_steps.h"
#include "train/interrupt.h"
#include "train/stage_pictures.h"
#include "train/step_health.h"
#include "train/teacher_caches.h"
#include "train/train_step.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

LrSchedule make_schedule(const StageSpec& st, int64_t steps_per_epoch) {
  const auto& s = st.schedule;
  const double lr = st.optimizer.lr;
  LrSchedule sched = LrSchedule::constant(lr);
  if (s.type == ScheduleKind::multistep) sched = LrSchedule::multistep_epochs(lr, s.milestones, steps_per_epoch, s.gamma);
  if (s.type == ScheduleKind::cosine) sched = LrSchedule::cosine(lr, st.epochs * steps_per_epoch, s.min_lr);
  if (s.warmup_epochs > 0) sched = sched.with_warmup(int64_t(std::llround(s.warmup_epochs * double(steps_per_epoch))), 0.0);
  return sched;
}

// Model tensors and loss-term tensors under one naming for checkpoints.
nn::NamedTensors checkpoint_tensors(const models::Model& student,
                                    const std::vector<std::unique_ptr<transfer::Loss>>& losses) {
  nn::NamedTensors out = student.state_dict();
  for (auto& named : loss_state(losses)) out.push_back(std::move(named));
  return out;
}

// How the test (and validation) batches are loaded; under data parallelism each rank evaluates
// its slice of every batch.
data::LoaderOptions eval_loader_options(const StageSpec& stage, const StageDatasets& data, const ParallelPlan& plan) {
  data::LoaderOptions eo;
  eo.shard_index = plan.rank;
  eo.shard_count = plan.ranks;
  eo.shuffle = false;
  eo.batch_size = std::max<int64_t>(stage.batch_size, 256);
  eo.num_workers = data.workers;
  eo.transforms = data.eval_transforms;
  return eo;
}

// This rank's slice of every global batch (RETORT_DIST_FAULT=same_slice: every rank reads rank
// 0's, a control the equivalence tests must catch).
data::LoaderOptions sharded(data::LoaderOptions lo, const ParallelPlan& plan) {
  lo.shard_index = dist_fault("same_slice") ? 0 : plan.rank;
  lo.shard_count = plan.ranks;
  return lo;
}

// Everything a stage's epochs share, set up once.
struct StageRun {
  StageRun(const Recipe& r, const StageSpec& st, std::shared_ptr<models::Model> s, const StageDatasets& d, Device dev,
           const StageOptions& o, const StageHooks& h, StageLosses l, uint64_t seed)
      : recipe(r), stage(st), student(std::move(s)), data(d), device(dev), options(o), hooks(h), losses(std::move(l)),
        plan(plan_stage(st, dev)), train_loader(d.train, sharded(train_loader_options(st, d, seed), plan)),
        test_loader(d.test, eval_loader_options(st, d, plan)), gen(seed ^ 0x5eedull),
        best(o.selection_dir.empty() ? "" : (std::filesystem::path(o.selection_dir) / (st.name + ".best.safetensors")).string(),
             st.name, plan.world->is_root(), o.model_file_metadata) {
    if (!d.validation.empty()) val_loader.emplace(d.validation, eval_loader_options(st, d, plan));
  }

  const Recipe& recipe;
  const StageSpec& stage;
  std::shared_ptr<models::Model> student;
  const StageDatasets& data;
  Device device;
  const StageOptions& options;
  const StageHooks& hooks;
  Clock::time_point started = Clock::now();
  StageLosses losses;
  ParallelPlan plan;
  StageOptimizer optimizer;
  data::DataLoader train_loader, test_loader;
  std::optional<data::DataLoader> val_loader;  // with a validation split
  int64_t steps_per_epoch = 0;
  LrSchedule schedule = LrSchedule::constant(0);
  Generator gen;
  std::map<std::string, transfer::TeacherFeatureCache> caches;
  TeacherMap step_teachers;  // what the steps run (folded copies, or the teachers: stage_teachers)
  StepParts parts;
  TrainingProgress progress;
  std::string checkpoint;
  nn::NamedTensors checkpoint_tensors;
  std::unique_ptr<StepHealth> health;  // the steps' device-side bookkeeping (one process)
  std::unique_ptr<GraphedSteps> graphed;  // stage.cuda_graph: steps as graph replays (one process)
  BestOnValidation best;
  int64_t read_every = 1;
  // Since the previous steps.jsonl row: when it was written, the images and top-1 hits read.
  struct LogWindow {
    Clock::time_point start = Clock::now();
    int64_t images = 0, hits = 0;
  } log_window;

  void log(const std::string& s) const {
    if (hooks.log) hooks.log(s);
  }
  // The student's mode while training: a linear probe keeps the body's BatchNorm statistics,
  // and a stage that trains only its losses' parts leaves the student as it is.
  bool student_train_mode() const { return stage.trainable == Trainable::all; }
};

// What one epoch's batches add up to.
struct EpochTotals {
  int64_t seen = 0, hits = 0;
  double loss = 0;
  double images_per_s = 0;
  bool stopped = false;  // stop_after_steps reached: nothing more is written
};

std::unique_ptr<StageRun> configure(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                                    const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                                    const StageDatasets& data, Device device, const StageOptions& options,
                                    const StageHooks& hooks) {
  const uint64_t seed = uint64_t(recipe.run.seed);
  const Shape input_shape{1, data.train.dataset().channels, recipe.data.image_size, recipe.data.image_size};
  auto run = std::make_unique<StageRun>(
      recipe, stage, student, data, device, options, hooks,
      options.losses ? std::move(*options.losses)
                     : build_stage_losses(recipe, stage, student, teachers, input_shape, device, seed, data.labelled,
                                          data.train.size()),
      seed);
  prepare_trainable(stage, *student, seed);
  run->optimizer = make_stage_optimizer(stage, *student, run->losses.losses);
  run->steps_per_epoch = run->train_loader.batches_per_epoch();
  if (options.max_batches_per_epoch > 0)
    run->steps_per_epoch = std::min(run->steps_per_epoch, options.max_batches_per_epoch);
  run->schedule = make_schedule(stage, run->steps_per_epoch);
  run->progress.stage = stage.name;
  run->checkpoint = (std::filesystem::path(options.checkpoint_dir) / (stage.name + ".ckpt.safetensors")).string();
  run->checkpoint_tensors = checkpoint_tensors(*student, run->losses.losses);
  for (auto& [name, t] : teachers) {
    t->eval();
    t->requires_grad_(false);
  }
  run->step_teachers = stage_teachers(stage, teachers, device);
  run->caches = build_teacher_caches(recipe, stage, run->step_teachers, run->losses.teacher_taps, data, device,
                                     options, [&](const std::string& s) { run->log(s); });
  run->parts = StepParts{&stage, student.get(), &run->step_teachers, &run->losses, run->optimizer.optimizer.get(),
                         &run->optimizer.trained, &run->caches, data.train.size()};
  run->health = std::make_unique<StepHealth>(device, int64_t(run->losses.losses.size()));
  if (stage.cuda_graph)
    run->graphed = std::make_unique<GraphedSteps>(run->parts, *run->health, [r = run.get()](const std::string& s) {
      r->log(s);
    });
  run->read_every = options.read_every_steps > 0 ? options.read_every_steps : (device.is_cuda() ? 25 : 1);
  return run;
}

void resume(StageRun& run) {
  if (!run.options.resume || !std::filesystem::exists(run.checkpoint)) return;
  run.progress = load_checkpoint(run.checkpoint, run.checkpoint_tensors, run.optimizer.optimizer.get());
  run.student->state_loaded_externally();
  run.progress.restore_rng(run.gen);
  nn::restore_module_rngs(*run.student, "rng.student.", run.progress.extra);
  if (run.val_loader) run.best.resume(*run.student);
  run.log(fmt::format("resumed stage '{}' from {} at epoch {}, batch {} (step {})", run.stage.name, run.checkpoint,
                      run.progress.epoch, run.progress.batch_in_epoch, run.progress.step));
}

void save_checkpoint(StageRun& run) {
  if (!run.plan.world->is_root()) return;  // rank 0 alone writes
  run.progress.capture_rng(run.gen);
  nn::capture_module_rngs(*run.student, "rng.student.", run.progress.extra);
  std::filesystem::create_directories(run.options.checkpoint_dir);
  save_checkpoint(run.checkpoint, run.checkpoint_tensors, run.optimizer.optimizer.get(), run.progress);
}

void report_step(StageRun& run, const EpochTotals& t, int64_t epoch, Clock::time_point epoch_start, int64_t batch,
                 double step_loss, const LoggedStep* logged = nullptr) {
  if (!run.hooks.progress) return;
  StepReport r{run.stage.name, run.stage.train, epoch, run.stage.epochs, run.progress.batch_in_epoch,
               run.steps_per_epoch, run.progress.step, t.loss / double(run.progress.batch_in_epoch),
               t.seen ? 100.0 * double(t.hits) / double(t.seen) : 0.0,
               double(t.seen) / std::max(seconds_since(epoch_start), 1e-9), run.optimizer.optimizer->lr(0), step_loss,
               batch, logged};
  run.hooks.progress(r);
}

// Whether the step about to run writes a steps.jsonl row (with its terms and statistics).
bool log_due(const StageRun& run) {
  const int64_t every = run.options.log_every_steps;
  return every > 0 && !run.plan.active() && (run.progress.step + 1) % every == 0;
}

// A logged step's row: the probe's values (one host read) and the window since the last row.
LoggedStep logged_step(StageRun& run, const StepProbe& probe) {
  const StepProbe::Values v = probe.read();
  const std::vector<std::string> labels = term_labels(run.stage);
  LoggedStep out;
  for (size_t i = 0; i < v.terms.size(); ++i) {
    out.terms.emplace_back(labels[i], v.terms[i]);
    out.weights.emplace_back(labels[i], run.losses.weights[i]);
  }
  out.stats = v.stats;
  out.grad_norm = v.grad_norm;
  auto& w = run.log_window;
  out.images = w.images;
  out.images_per_s = double(w.images) / std::max(seconds_since(w.start), 1e-9);
  if (run.data.labelled && w.images > 0) out.train_top1 = 100.0 * double(w.hits) / double(w.images);
  w = StageRun::LogWindow{};
  return out;
}

// Where step `step` stood, for messages.
std::string step_where(const StageRun& run, int64_t step, int64_t epoch, int64_t batch) {
  return fmt::format("step {} (stage '{}', epoch {}, batch {})", step, run.stage.name, epoch, batch);
}

// The steps since the last read, as the host sees them.
struct Window {
  int64_t first_step = 0, first_batch = 0;  // where it started
  int64_t images = 0;                       // the images its steps saw
};

// Adds a step's host-side results to the epoch (data parallelism: they are already on the host).
void add_host_step(EpochTotals& t, const StepOutput& out) {
  t.hits += std::max<int64_t>(out.top1_hits, 0);
  t.seen += out.seen;
  t.loss += out.loss;
}

// Reads the window's device-side bookkeeping (one host read) into the epoch's totals; a
// non-finite loss stops the run here, naming the step that made it (whose update, and every
// later one of the window, the optimizer skipped on the device).
double read_window(StageRun& run, EpochTotals& t, Window& w, int64_t epoch) {
  const StepHealth::Reading r = run.health->read();
  if (r.first_bad >= 0) {
    const std::string where = step_where(run, w.first_step + r.first_bad, epoch, w.first_batch + r.first_bad);
    fail_nonfinite_step(run.parts, r,
                        r.first_bad + 1 < r.steps
                            ? fmt::format("{} (found at step {}; the updates from it on were skipped)", where,
                                          w.first_step + r.steps - 1)
                            : where);
  }
  t.loss += r.loss_sum;
  t.hits += r.hits;
  t.seen += w.images;
  w = Window{run.progress.step, run.progress.batch_in_epoch, 0};
  return r.last_loss;
}

// Whether the host reads after this step: every read_every steps, and wherever the host acts on
// the steps' results (a steps.jsonl row, a checkpoint, a stop, an interrupt, the epoch's end).
bool read_due(const StageRun& run) {
  const int64_t step = run.progress.step;
  const auto every = [&](int64_t n) { return n > 0 && step % n == 0; };
  return every(run.read_every) || every(run.options.log_every_steps) || every(run.options.checkpoint_every_steps) ||
         (run.options.stop_after_steps > 0 && step >= run.options.stop_after_steps) ||
         step == run.options.raise_signal_after_steps || interrupt_requested() ||
         run.progress.batch_in_epoch >= run.steps_per_epoch;
}

// The epoch's batches, from where the progress says (a resume may start mid-epoch).
EpochTotals train_epoch(StageRun& run, int64_t epoch) {
  run.student->train(run.student_train_mode());
  for (auto& l : run.losses.losses) l->train(true);
  run.train_loader.start_epoch(epoch, run.progress.batch_in_epoch);
  run.progress.epoch = epoch;
  const auto epoch_start = Clock::now();
  run.log_window = StageRun::LogWindow{};  // a row's window never spans an evaluation
  EpochTotals t;
  Window window{run.progress.step, run.progress.batch_in_epoch, 0};
  data::Batch batch;
  while (run.progress.batch_in_epoch < run.steps_per_epoch && run.train_loader.next(batch)) {
    run.schedule.apply(*run.optimizer.optimizer, run.progress.step);
    Tensor x = batch.images_tensor(run.device);
    Tensor y = run.data.labelled ? batch.labels_tensor(run.device) : Tensor();
    const transfer::StepClock clock{epoch, run.progress.batch_in_epoch, run.steps_per_epoch};
    const auto where = [&] { return step_where(run, run.progress.step, epoch, run.progress.batch_in_epoch); };
    const bool parallel = run.plan.active();
    std::optional<StepProbe> probe;
    if (log_due(run)) probe.emplace();
    const StepOutput out =
        parallel ? parallel_step(run.parts, run.plan, x, y, &batch.positions, clock, interrupt_requested(), where,
                                 batch.whole_batch)
        : run.graphed ? run.graphed->step(x, y, &batch.positions, clock, probe ? &*probe : nullptr)
                      : train_step(run.parts, x, y, &batch.positions, clock, *run.health, probe ? &*probe : nullptr);
    ++run.progress.step;
    ++run.progress.batch_in_epoch;
    if (parallel) {
      if (run.options.verify_replicas) verify_replicas(run.plan, run.checkpoint_tensors, run.progress.step);
      rank_fault_for_test(run.plan, run.progress.step);
      add_host_step(t, out);
      report_step(run, t, epoch, epoch_start, out.seen, out.loss);
    } else {
      window.images += out.seen;
      if (read_due(run)) {
        const int64_t images = window.images, hits_before = t.hits;
        const double last_loss = read_window(run, t, window, epoch);
        run.log_window.images += images;
        run.log_window.hits += t.hits - hits_before;
        const std::optional<LoggedStep> logged = probe ? std::optional(logged_step(run, *probe)) : std::nullopt;
        report_step(run, t, epoch, epoch_start, images, last_loss, logged ? &*logged : nullptr);
      }
    }
    if (run.options.checkpoint_every_steps > 0 && run.progress.step % run.options.checkpoint_every_steps == 0)
      save_checkpoint(run);
    if (run.options.raise_signal_after_steps > 0 && run.progress.step == run.options.raise_signal_after_steps)
      std::raise(run.options.raise_signal);
    // SIGINT/SIGTERM: a checkpoint, then stop (every rank alike: the largest signal over the ranks)
    if (const int sig = parallel ? out.signal : interrupt_requested()) {
      if (!parallel && run.health->pending() > 0) read_window(run, t, window, epoch);  // nothing unread is saved
      save_checkpoint(run);
      throw Interrupted(sig, fmt::format("{} during stage '{}' after step {} (checkpoint written)", signal_name(sig),
                                         run.stage.name, run.progress.step));
    }
    if (run.options.stop_after_steps > 0 && run.progress.step >= run.options.stop_after_steps) {
      t.stopped = true;
      return t;
    }
  }
  if (!run.plan.active() && run.health->pending() > 0) read_window(run, t, window, epoch);  // the loader ran short
  t.images_per_s = double(t.seen) / std::max(seconds_since(epoch_start), 1e-9);
  return t;
}

// The loss terms' own scalars after an epoch ("<term name>.<stat>", e.g. "aft.rho_mean"),
// also logged, so a learned part can be seen moving.
std::map<std::string, double> loss_epoch_stats(const StageRun& run) {
  std::map<std::string, double> out;
  const std::vector<std::string> labels = term_labels(run.stage);  // "aft", or "aft#2" when repeated
  for (size_t i = 0; i < run.losses.losses.size(); ++i)
    for (const auto& [k, v] : run.losses.losses[i]->epoch_stats()) out[labels[i] + "." + k] = v;
  if (!out.empty()) {
    std::string line;
    for (const auto& [k, v] : out) line += fmt::format("{}{} {:.4g}", line.empty() ? "" : ", ", k, v);
    run.log(fmt::format("stage '{}' epoch {}: {}", run.stage.name, run.progress.epoch, line));
  }
  return out;
}

// The student on one split (warned about when logits are not finite).
EvalResult evaluate_split(StageRun& run, data::DataLoader& loader, const char* split, int64_t epoch, bool confusion) {
  EvalResult r = evaluate(*run.student, loader, run.device, run.options.max_batches_per_epoch, run.plan.world, confusion);
  if (!r.finite())
    run.log(fmt::format("warning: stage '{}' epoch {}: {} of {} {} images gave non-finite logits (counted as misses); "
                        "{} loss {}", run.stage.name, epoch + 1, r.nonfinite_rows, r.images, split, split, r.loss));
  return r;
}

// One evaluation to the metrics hook (metrics.jsonl, the terminal).
void report_evaluation(StageRun& run, const char* split, int64_t epoch, const EvalResult& e, const EpochTotals& t,
                       const std::map<std::string, double>& stats) {
  if (!run.hooks.metrics) return;
  EvalRecord r;
  r.stage = run.stage.name;
  r.model = run.stage.train;
  r.epoch = epoch + 1;
  r.step = run.progress.step;
  r.split = split;
  r.loss = e.loss;
  r.top1 = e.top1;
  r.top5 = e.top5;
  r.images_per_s = t.images_per_s;
  r.eval_images_per_s = e.images_per_s;
  r.nonfinite_logits = e.nonfinite_rows;
  r.train_loss = t.loss / double(std::max<int64_t>(run.steps_per_epoch, 1));
  r.train_top1 = t.seen ? 100.0 * double(t.hits) / double(t.seen) : 0.0;
  r.wall_s = seconds_since(run.started);
  r.loss_stats = stats;
  run.hooks.metrics(r);
}

// After an epoch: the checkpoint, then the evaluation when one is due.
void finish_epoch(StageRun& run, int64_t epoch, const EpochTotals& t, StageResult& result) {
  run.progress.batch_in_epoch = 0;
  run.progress.epoch = epoch + 1;
  save_checkpoint(run);
  const std::map<std::string, double> stats = loss_epoch_stats(run);
  const bool due = (epoch + 1) % std::max<int64_t>(run.stage.eval_every, 1) == 0 || epoch + 1 == run.stage.epochs;
  if (!due) return;
  const bool last = epoch + 1 == run.stage.epochs;
  if (run.val_loader) {
    const EvalResult val = evaluate_split(run, *run.val_loader, "validation", epoch, false);
    if (run.best.offer(*run.student, epoch + 1, val))
      run.log(fmt::format("stage '{}' epoch {}: best on validation so far (top-1 {:.2f}%)", run.stage.name, epoch + 1,
                          val.top1));
    result.selection.last_val_top1 = val.top1;
    report_evaluation(run, "val", epoch, val, t, stats);
  }
  result.test = evaluate_split(run, run.test_loader, "test", epoch, last && !run.options.pictures_dir.empty());
  report_evaluation(run, "test", epoch, result.test, t, stats);
}

// With a validation split: the best and the last model both evaluated on test; the one the stage
// keeps stays in the student, and both are written (<stage>.best / <stage>.last.safetensors).
void select_model(StageRun& run, StageResult& result, bool confusion) {
  SelectionResult& s = result.selection;
  s.active = true;
  s.kept = run.stage.keep;
  s.last_epoch = run.stage.epochs;
  s.last_test = result.test;
  if (std::isnan(s.last_val_top1)) {  // a resume after the last epoch: nothing evaluated yet
    const EvalResult val = evaluate_split(run, *run.val_loader, "validation", s.last_epoch - 1, false);
    run.best.offer(*run.student, s.last_epoch, val);
    s.last_val_top1 = val.top1;
  }
  if (run.plan.world->is_root() && !run.options.selection_dir.empty()) {
    StringMap metadata = run.options.model_file_metadata;
    metadata["stage"] = run.stage.name;
    metadata["epoch"] = std::to_string(s.last_epoch);
    metadata["val_top1"] = fmt::format("{:.17g}", s.last_val_top1);
    write_safetensors((std::filesystem::path(run.options.selection_dir) / (run.stage.name + ".last.safetensors")).string(),
                      run.student->state_dict(), metadata);
  }
  if (!run.best.any()) {  // every validation gave non-finite logits: the last model stays
    s.kept = KeepModel::last;
    s.best_epoch = s.last_epoch;
    s.best_test = s.last_test;
    return;
  }
  s.best_epoch = run.best.best_epoch();
  s.best_val_top1 = run.best.best_top1();
  if (s.best_epoch == s.last_epoch) {
    s.best_test = s.last_test;
    return;
  }
  const nn::NamedTensors last = cloned_state(*run.student);
  run.best.load_best_into(*run.student);
  s.best_test = evaluate_split(run, run.test_loader, "test", s.best_epoch - 1, confusion);
  if (s.kept == KeepModel::best) result.test = s.best_test;
  else run.student->load_state_dict(last, /*strict=*/true);
}

}  // namespace

data::LoaderOptions train_loader_options(const StageSpec& stage, const StageDatasets& data, uint64_t seed) {
  data::LoaderOptions lo;
  lo.batch_size = stage.batch_size;
  lo.shuffle = true;
  lo.drop_last = data.train.size() > stage.batch_size;
  lo.seed = seed * 1000003ull + std::hash<std::string>{}(stage.name) % 1000003ull;
  lo.num_workers = data.workers;
  lo.transforms = data.train_transforms;
  return lo;
}

StageResult train_stage(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                        const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                        const StageDatasets& data, Device device, const StageOptions& options,
                        const StageHooks& hooks) {
  std::unique_ptr<StageRun> run = configure(recipe, stage, student, teachers, data, device, options, hooks);
  for (auto& loss : run->losses.losses) loss->begin_stage();
  resume(*run);
  replicate_from_root(run->plan, run->checkpoint_tensors);  // every rank starts from rank 0's weights
  if (hooks.started) hooks.started(run->progress.step);
  StageResult result;
  result.parameters = student->num_parameters();
  for (int64_t epoch = run->progress.epoch; epoch < stage.epochs; ++epoch) {
    const EpochTotals totals = train_epoch(*run, epoch);
    if (totals.stopped) {  // as if killed: nothing more is written
      result.completed = false;
      result.steps = run->progress.step;
      return result;
    }
    finish_epoch(*run, epoch, totals, result);
  }
  const bool pictures = !options.pictures_dir.empty();
  if (result.test.images == 0)
    result.test =
        evaluate(*student, run->test_loader, device, options.max_batches_per_epoch, run->plan.world, pictures);
  if (run->val_loader) select_model(*run, result, pictures);
  if (pictures && run->plan.world->is_root())
    write_stage_pictures(std::filesystem::path(options.pictures_dir) / (stage.name + ".safetensors"), stage, *student,
                         teachers, run->losses, data, device, result.test, [&](const std::string& s) { run->log(s); });
  result.steps = run->progress.step;
  result.wall_s = seconds_since(run->started);
  result.loss_state = loss_state(run->losses.losses);
  return result;
}

}  // namespace retort
