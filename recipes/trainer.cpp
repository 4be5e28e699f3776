// The stage loop: batches -> teacher forward (no grad) -> student forward with taps ->
// weighted loss terms (NaN/Inf stops the run naming step and term) -> backward -> clip ->
// optimizer step; evaluation per eval_every epochs; atomic checkpoints; exact resume.
#include "recipes/trainer.h"
#include "recipes/train_step.h"
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/ops.h"
#include "engine/optim/adamw.h"
#include "engine/optim/clip.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "engine/nn/layers.h"
#include "engine/nn/module_rng.h"
#include "transfer/feature_cache.h"

namespace retort {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Top-k hits of logits [B, C] against labels [B], counted on the host.
void count_topk(const Tensor& logits, const Tensor& labels, int64_t& top1, int64_t& top5) {
  auto v = logits.to_vector();
  auto y = labels.to_i64_vector();
  const int64_t b = logits.size(0), c = logits.size(1);
  for (int64_t i = 0; i < b; ++i) {
    const double* row = v.data() + i * c;
    double target = row[y[size_t(i)]];
    int64_t greater = 0;
    for (int64_t j = 0; j < c; ++j)
      if (row[j] > target || (row[j] == target && j < y[size_t(i)])) ++greater;
    top1 += greater < 1;
    top5 += greater < 5;
  }
}

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
  for (size_t i = 0; i < losses.size(); ++i) {
    for (auto& [n, t] : losses[i]->parameters()) out.push_back({fmt::format("loss{}.{}", i, n), t});
    for (auto& [n, t] : losses[i]->buffers()) out.push_back({fmt::format("loss{}.{}", i, n), t});
  }
  return out;
}

// Decides per teacher whether its taps come from a feature cache, and builds the caches.
std::map<std::string, transfer::TeacherFeatureCache> build_teacher_caches(
    const Recipe& recipe, const StageSpec& stage, const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
    const std::map<std::string, std::set<std::string>>& teacher_taps, const StageDatasets& data, Device device,
    const StageOptions& options, const std::function<void(const std::string&)>& log) {
  std::map<std::string, transfer::TeacherFeatureCache> caches;
  TeacherCache mode = stage.teacher_cache;
  if (mode == TeacherCache::off || teacher_taps.empty()) return caches;
  if (data.augmented) {
    RETORT_CHECK(mode == TeacherCache::auto_, "{}: stage '{}' asks for teacher_cache = \"{}\", but its data is augmented "
                 "(random crop or flip), so the teachers' features change every epoch; use \"off\" or \"auto\"",
                 recipe.where(stage.pos), stage.name, to_string(mode));
    log(fmt::format("stage '{}': teachers run on every batch (augmented data cannot be cached)", stage.name));
    return caches;
  }
  // auto: a one-epoch stage runs each teacher once per image anyway, and smoke runs see a
  // few batches: caching pays only when images come back.
  if (mode == TeacherCache::auto_ && (stage.epochs < 2 || options.max_batches_per_epoch > 0)) return caches;
  std::string data_key = fmt::format("{} image_size {} mean [{}] std [{}] transforms [", to_string(recipe.data.dataset),
                                     recipe.data.image_size, fmt::join(recipe.data.mean, ","),
                                     fmt::join(recipe.data.std, ","));
  for (const auto& t : data.eval_transforms) data_key += t.name + ";";
  data_key += "]";
  const Shape input{1, data.train.dataset().channels, recipe.data.image_size, recipe.data.image_size};
  for (const auto& [name, taps] : teacher_taps) {
    auto& teacher = *teachers.at(name);
    if (mode == TeacherCache::auto_) {
      const int64_t bytes = transfer::estimated_cache_bytes(teacher, taps, input, data.train.size());
      if (bytes > options.feature_cache_max_bytes) {
        log(fmt::format("stage '{}': teacher '{}' runs on every batch (its taps would take {:.0f} MB to cache)",
                        stage.name, name, double(bytes) / 1e6));
        continue;
      }
    }
    const std::string dir = mode == TeacherCache::file ? options.feature_cache_dir : std::string();
    RETORT_CHECK(mode != TeacherCache::file || !dir.empty(), "stage '{}': teacher_cache = \"file\" needs a cache directory",
                 stage.name);
    caches.emplace(name, transfer::TeacherFeatureCache(teacher, name, taps, data.train, data.eval_transforms, device,
                                                       data_key, dir, log));
  }
  return caches;
}

}  // namespace

StageLosses build_stage_losses(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                               const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                               const Shape& input_shape, Device device, uint64_t seed, bool labelled) {
  StageLosses out;
  out.student_taps.insert("logits");
  for (const auto& term : stage.losses) {
    transfer::BuildContext ctx;
    ctx.recipe = &recipe;
    ctx.term = &term;
    ctx.student = student;
    ctx.teachers = teachers;
    ctx.input_shape = input_shape;
    ctx.device = device;
    ctx.seed = seed;
    auto loss = transfer::build_loss(ctx);
    RETORT_CHECK(!loss->needs_labels() || labelled, "{}: loss '{}' needs labels, but stage '{}' trains on unlabelled data",
                 recipe.where(term.pos), term.name, stage.name);
    for (const auto& t : loss->teachers())
      RETORT_CHECK(teachers.count(t), "{}: loss '{}' reads teacher '{}', which is not in stage '{}' teachers",
                   recipe.where(term.pos), term.name, t, stage.name);
    for (const auto& t : loss->student_taps()) out.student_taps.insert(t);
    for (const auto& t : loss->teachers())
      for (const auto& tap : loss->teacher_taps()) out.teacher_taps[t].insert(tap);
    out.losses.push_back(std::move(loss));
    out.weights.push_back(term.weight);
  }
  return out;
}

EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto start = Clock::now();
  double loss_sum = 0;
  int64_t n = 0, top1 = 0, top5 = 0, batches = 0;
  loader.start_epoch(0);
  data::Batch batch;
  while (loader.next(batch)) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    Tensor x = batch.images_tensor(device), y = batch.labels_tensor(device);
    Tensor logits = model.forward(x, nullptr);
    loss_sum += cross_entropy(logits, y, 0.0, Reduction::sum).item();
    count_topk(logits, y, top1, top5);
    n += x.size(0);
  }
  model.train(was_training);
  EvalResult r;
  r.images = n;
  if (n > 0) {
    r.loss = loss_sum / double(n);
    r.top1 = 100.0 * double(top1) / double(n);
    r.top5 = 100.0 * double(top5) / double(n);
  }
  r.images_per_s = double(n) / std::max(seconds_since(start), 1e-9);
  return r;
}

StageResult train_stage(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                        const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                        const StageDatasets& data, Device device, const StageOptions& options,
                        const StageHooks& hooks) {
  auto log = [&](const std::string& s) { if (hooks.log) hooks.log(s); };
  const auto started = Clock::now();
  const uint64_t seed = uint64_t(recipe.run.seed);

  // ---- loss terms
  Shape input_shape{1, data.train.dataset().channels, recipe.data.image_size, recipe.data.image_size};
  StageLosses built = options.losses ? std::move(*options.losses)
                                     : build_stage_losses(recipe, stage, student, teachers, input_shape, device, seed,
                                                          data.labelled);
  std::vector<std::unique_ptr<transfer::Loss>>& losses = built.losses;

  // ---- what of the student trains, and the optimizer over it and the losses' learned parts
  const bool head_only = stage.trainable == Trainable::head;
  prepare_trainable(stage, *student, seed);
  StageOptimizer stage_optimizer = make_stage_optimizer(stage, *student, losses);
  Optimizer* optimizer = stage_optimizer.optimizer.get();

  data::LoaderOptions lo;
  lo.batch_size = stage.batch_size;
  lo.shuffle = true;
  lo.drop_last = data.train.size() > stage.batch_size;
  lo.seed = seed * 1000003ull + std::hash<std::string>{}(stage.name) % 1000003ull;
  lo.num_workers = data.workers;
  lo.transforms = data.train_transforms;
  data::DataLoader train_loader(data.train, lo);
  data::LoaderOptions eo = lo;
  eo.shuffle = false;
  eo.drop_last = false;
  eo.batch_size = std::max<int64_t>(stage.batch_size, 256);
  eo.transforms = data.eval_transforms;
  data::DataLoader test_loader(data.test, eo);

  int64_t steps_per_epoch = train_loader.batches_per_epoch();
  if (options.max_batches_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, options.max_batches_per_epoch);
  LrSchedule schedule = make_schedule(stage, steps_per_epoch);
  Generator gen(seed ^ 0x5eedull);

  // ---- resume
  const std::string ckpt = (std::filesystem::path(options.checkpoint_dir) / (stage.name + ".ckpt.safetensors")).string();
  TrainingProgress progress;
  progress.stage = stage.name;
  nn::NamedTensors ckpt_tensors = checkpoint_tensors(*student, losses);
  if (options.resume && std::filesystem::exists(ckpt)) {
    progress = load_checkpoint(ckpt, ckpt_tensors, optimizer);
    student->state_loaded_externally();
    progress.restore_rng(gen);
    nn::restore_module_rngs(*student, "rng.student.", progress.extra);
    log(fmt::format("resumed stage '{}' from {} at epoch {}, batch {} (step {})", stage.name, ckpt, progress.epoch,
                    progress.batch_in_epoch, progress.step));
  }
  auto save = [&] {
    progress.capture_rng(gen);
    nn::capture_module_rngs(*student, "rng.student.", progress.extra);
    std::filesystem::create_directories(options.checkpoint_dir);
    save_checkpoint(ckpt, ckpt_tensors, optimizer, progress);
  };

  StageResult result;
  result.parameters = student->num_parameters();
  for (auto& [name, t] : teachers) {
    t->eval();
    t->requires_grad_(false);
  }
  auto caches = build_teacher_caches(recipe, stage, teachers, built.teacher_taps, data, device, options, log);
  const StepParts parts{&stage, student.get(), &teachers, &built, optimizer, &stage_optimizer.trained, &caches};
  // ---- epochs
  for (int64_t epoch = progress.epoch; epoch < stage.epochs; ++epoch) {
    student->train(!head_only);  // a linear probe keeps the body's BatchNorm statistics
    for (auto& l : losses) l->train(true);
    train_loader.start_epoch(epoch, progress.batch_in_epoch);
    progress.epoch = epoch;
    auto epoch_start = Clock::now();
    int64_t seen = 0, hits = 0, dummy5 = 0;
    double loss_acc = 0;
    data::Batch batch;
    while (progress.batch_in_epoch < steps_per_epoch && train_loader.next(batch)) {
      schedule.apply(*optimizer, progress.step);
      Tensor x = batch.images_tensor(device);
      Tensor y = data.labelled ? batch.labels_tensor(device) : Tensor();
      const StepOutput out = train_step(parts, x, y, &batch.positions, [&] {
        return fmt::format("step {} (stage '{}', epoch {}, batch {})", progress.step, stage.name, epoch,
                           progress.batch_in_epoch);
      });
      const double total_value = out.loss;
      ++progress.step;
      ++progress.batch_in_epoch;
      if (y.defined()) count_topk(out.student_logits, y, hits, dummy5);
      seen += x.size(0);
      loss_acc += total_value;
      if (hooks.progress) {
        StepReport r{stage.name, stage.train, epoch, stage.epochs, progress.batch_in_epoch, steps_per_epoch, progress.step,
                     loss_acc / double(progress.batch_in_epoch), seen ? 100.0 * double(hits) / double(seen) : 0.0,
                     double(seen) / std::max(seconds_since(epoch_start), 1e-9), optimizer->lr(0), x.size(0)};
        hooks.progress(r);
      }
      if (options.checkpoint_every_steps > 0 && progress.step % options.checkpoint_every_steps == 0) save();
      if (options.stop_after_steps > 0 && progress.step >= options.stop_after_steps) {
        result.completed = false;
        result.steps = progress.step;
        return result;  // as if killed: nothing more is written
      }
    }
    const double train_ips = double(seen) / std::max(seconds_since(epoch_start), 1e-9);
    progress.batch_in_epoch = 0;
    progress.epoch = epoch + 1;
    save();
    if ((epoch + 1) % std::max<int64_t>(stage.eval_every, 1) == 0 || epoch + 1 == stage.epochs) {
      EvalResult ev = evaluate(*student, test_loader, device, options.max_batches_per_epoch);
      result.test = ev;
      if (hooks.metrics)
        hooks.metrics(nlohmann::json{{"stage", stage.name}, {"model", stage.train}, {"epoch", epoch + 1},
                                     {"step", progress.step}, {"split", "test"}, {"loss", ev.loss},
                                     {"top1", ev.top1}, {"top5", ev.top5}, {"images_per_s", train_ips},
                                     {"eval_images_per_s", ev.images_per_s},
                                     {"train_loss", loss_acc / double(std::max<int64_t>(steps_per_epoch, 1))},
                                     {"train_top1", seen ? 100.0 * double(hits) / double(seen) : 0.0},
                                     {"wall_s", seconds_since(started)}});
    }
  }
  if (result.test.images == 0) result.test = evaluate(*student, test_loader, device, options.max_batches_per_epoch);
  result.steps = progress.step;
  result.wall_s = seconds_since(started);
  return result;
}

}  // namespace retort
