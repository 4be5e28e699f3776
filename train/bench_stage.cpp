// One stage built to be timed or profiled (see train/bench_stage.h).
#include "train/bench_stage.h"
#include "engine/data/registry.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/profiler.h"
#include "train/recipe_models.h"
#include "train/trainer.h"
#include "transfer/loss_term.h"

namespace retort {
namespace {

// Eager steps before a capture: the first allocates state and picks cuDNN's algorithms.
constexpr int64_t kGraphWarmupSteps = 2;

StageSpec chosen_stage(const Recipe& recipe, const BenchStageOptions& options) {
  RETORT_CHECK(!recipe.stages.empty(), "bench: recipe '{}' has no stages", recipe.run.name);
  RETORT_CHECK(options.batch_size >= 0, "bench: --batch-size must be positive, got {}", options.batch_size);
  StageSpec stage = recipe.stages.back();
  if (!options.stage.empty()) {
    std::vector<std::string> names;
    bool found = false;
    for (const auto& s : recipe.stages) {
      if (s.name == options.stage) {
        stage = s;
        found = true;
      }
      names.push_back(s.name);
    }
    RETORT_CHECK(found, "bench: recipe '{}' has no stage '{}'; its stages: {}", recipe.run.name, options.stage,
                 fmt::join(names, ", "));
  }
  if (options.batch_size > 0) stage.batch_size = options.batch_size;
  if (!options.precision.empty()) stage.precision = parse_precision(options.precision);
  if (options.channels_last) stage.memory_format = MemoryFormat::channels_last;
  return stage;
}

}  // namespace

BenchStage::BenchStage(const Recipe& recipe, const BenchStageOptions& options)
    : stage_(chosen_stage(recipe, options)),
      device_(resolve_device(options.device.empty() ? recipe.run.device : options.device)) {
  const std::string dataset = to_string(recipe.data.dataset);
  classes_ = data::dataset_info(dataset).num_classes;
  RETORT_CHECK(options.real_data || classes_ > 0,
               "bench: dataset '{}' has no fixed class count; synthetic batches need one (use real data)", dataset);
  if (options.real_data) load_real_data(recipe);
  auto quiet = [](const std::string&) {};
  for (const auto& t : stage_.teachers) teachers_[t] = build_recipe_model(recipe, t, classes_, device_, quiet);
  student_ = build_recipe_model(recipe, stage_.train, classes_, device_, quiet);
  const Shape input{1, recipe.data.channels, recipe.data.image_size, recipe.data.image_size};
  const uint64_t seed = uint64_t(recipe.run.seed);
  const int64_t examples = stage_data_ ? stage_data_->train.size() : stage_.batch_size;
  losses_ = build_stage_losses(recipe, stage_, student_, teachers_, input, device_, seed,
                               stage_data_ ? stage_data_->labelled : true, examples);
  for (int64_t i = 0; i < stage_.batch_size; ++i) synthetic_positions_.push_back(i);
  prepare_trainable(stage_, *student_, seed);
  optimizer_ = make_stage_optimizer(stage_, *student_, losses_.losses);
  for (auto& [name, t] : teachers_) {
    t->eval();
    t->requires_grad_(false);
  }
  student_->train(stage_.trainable == Trainable::all);
  for (auto& l : losses_.losses) l->train(true);
  step_teachers_ = stage_teachers(stage_, teachers_, device_);
  parts_ = StepParts{&stage_, student_.get(), &step_teachers_, &losses_, optimizer_.optimizer.get(),
                     &optimizer_.trained, nullptr, examples};
  health_ = std::make_unique<StepHealth>(device_, int64_t(losses_.losses.size()));
  if (options.cuda_graph) {
    RETORT_CHECK(!options.real_data, "bench --cuda-graph: a replayed step reads the same batch; use synthetic data");
    const std::string refusal = graph_refusal(recipe, stage_, device_);
    RETORT_CHECK(refusal.empty(), "bench --cuda-graph: stage '{}' cannot be a CUDA graph: {}", stage_.name, refusal);
    graph_ = std::make_unique<StepGraph>();
  }
  for (auto& l : losses_.losses) l->begin_stage();
  if (!options.real_data) {
    Generator gen(seed ^ 0xbe1c4ull);
    const int64_t side = recipe.data.image_size;
    synthetic_x_ = randn({stage_.batch_size, recipe.data.channels, side, side}, gen, DType::f32, device_);
    std::vector<int64_t> labels(static_cast<size_t>(stage_.batch_size));
    for (auto& l : labels) l = gen.randint(classes_);
    synthetic_y_ = Tensor::from_i64(labels, {stage_.batch_size}).to(device_);
  }
}

BenchStage::~BenchStage() = default;

// The recipe's data as the runner loads it, and the stage's loader over its share. Models of a
// retrieval-curated stage would be needed to curate it; bench uses the stage's plain data.
void BenchStage::load_real_data(const Recipe& recipe) {
  data_.emplace(load_data(recipe));
  check_stage_data(recipe, *data_);
  StageSpec plain = stage_;
  plain.retrieve_k = 0;
  stage_data_.emplace(stage_datasets(recipe, plain, *data_, {}, device_, [](const std::string&) {}));
  classes_ = stage_data_->train.dataset().num_classes;
  loader_ = std::make_unique<data::DataLoader>(stage_data_->train,
                                               train_loader_options(stage_, *stage_data_, uint64_t(recipe.run.seed)));
  loader_->start_epoch(epoch_);
}

void BenchStage::next_batch(Tensor& x, Tensor& y, const std::vector<int64_t>*& positions) {
  if (!loader_) {  // one synthetic batch: its examples are positions 0..B-1 of a set of B
    x = synthetic_x_;
    y = synthetic_y_;
    positions = &synthetic_positions_;
    return;
  }
  profiler::Range phase("data", profiler::Kind::phase);
  if (!loader_->next(batch_)) {  // the epoch ended: the next one
    loader_->start_epoch(++epoch_);
    RETORT_CHECK(loader_->next(batch_), "bench: stage '{}' has no training batch", stage_.name);
  }
  x = batch_.images_tensor(device_);
  y = stage_data_->labelled ? batch_.labels_tensor(device_) : Tensor();
  positions = &batch_.positions;
}

void BenchStage::step() {
  profiler::Range range("step", profiler::Kind::step);
  ++steps_;
  if (graph_ && graph_->ready()) {
    graph_->replay();
    health_->add_replayed_steps(1);
    return;
  }
  Tensor x, y;
  const std::vector<int64_t>* positions = nullptr;
  next_batch(x, y, positions);
  const transfer::StepClock clock{epoch_, 0, 0};  // a warm-up factor changes no step's cost
  const auto eager = [&] { train_step(parts_, x, y, positions, clock, *health_); };
  if (!graph_ || steps_ <= kGraphWarmupSteps) return eager();
  // The first step after the warm-up is captured (and run); the next ones replay it.
  const std::string failure = graph_->capture_and_run([&] {
    eager();
    require_steps_on_device(*parts_.optimizer);
  });
  if (failure.empty()) {
    graph_status_ = "on";
    return;
  }
  graph_status_ = "fell back to eager: " + failure;
  graph_.reset();
  health_ = std::make_unique<StepHealth>(device_, int64_t(losses_.losses.size()));  // the failed capture's count
  eager();
}

double BenchStage::read_loss() {
  const int64_t first = steps_ - health_->pending();
  const StepHealth::Reading r = health_->read();
  if (r.first_bad >= 0)
    fail_nonfinite_step(parts_, r, fmt::format("bench step {} (stage '{}')", first + r.first_bad, stage_.name));
  return r.last_loss;
}

}  // namespace retort
