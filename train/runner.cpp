// The recipe runner, as an outline: open the run (device, run directory, data, models, and every
// stage's losses, so impossible recipes fail before anything trains), then per stage: skip it
// when a resumed run already finished it, reuse it from the stage cache, or train it; record
// its result and model file; finally the results table.
#include "train/runner.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include "engine/device.h"
#include "engine/dist/communicator.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module_rng.h"
#include "train/data_parallel.h"
#include "train/interrupt.h"
#include "train/progress.h"
#include "train/recipe_models.h"
#include "train/results_table.h"
#include "train/run_data.h"
#include "train/run_dir.h"
#include "train/stage_cache.h"
#include "train/step_graph.h"
#include "train/trainer.h"

namespace retort {
namespace fs = std::filesystem;
namespace {
using Models = std::map<std::string, std::shared_ptr<models::Model>>;

// Rank 0 alone talks (and writes) for a data-parallel run.
void say(const std::string& s) {
  if (dist::world().is_root()) std::fprintf(stderr, "[retort] %s\n", s.c_str());
}

// What every stage of a run shares.
struct Run {
  Run(const Recipe& r, const RunOptions& o, Device d) : recipe(r), options(o), device(d) {}
  const Recipe& recipe;
  const RunOptions& options;
  Device device;
  std::unique_ptr<RunDir> dir;  // made once everything is checked
  LoadedData data;
  Models models;
  std::vector<StageLosses> losses;  // per stage, built before anything trains
  StageCache cache{std::string()};
  std::map<std::string, std::string> model_keys;  // each model's current state key (stage cache)
  fs::path models_dir;
};

Models build_models(const Recipe& recipe, int64_t num_classes, Device device) {
  Models out;
  for (const auto& [name, spec] : recipe.models) {
    auto model = build_recipe_model(recipe, name, num_classes, device, say);
    say(fmt::format("model '{}': {} ({} parameters)", name, spec.arch, model->num_parameters()));
    out[name] = model;
  }
  return out;
}

// Every stage's model is evaluated on the data's labels (and labelled stages train on them): its
// classifier must have one output per class of the data.
void check_model_classes(const Recipe& recipe, const Models& models, const data::Dataset& data) {
  for (const auto& stage : recipe.stages) {
    const models::Model& m = *models.at(stage.train);
    const int64_t classes = m.config().num_classes;
    RETORT_CHECK(classes == data.num_classes,
                 "{}: stage '{}' trains model '{}', whose classifier has {} outputs, but the data ({}) has {} classes: "
                 "set num_classes = {} in [models.{}]{}", recipe.where(stage.pos), stage.name, stage.train, classes,
                 data.name, data.num_classes, data.num_classes, stage.train,
                 recipe.models.at(stage.train).weights.empty() ? "" : " and head = \"reset\" for a new head");
  }
}

// What the stage's model files say about themselves (train/model_file.h).
StringMap model_metadata(const Run& run, const std::string& model) {
  return model_file_metadata(run.recipe.models.at(model).arch, run.models.at(model)->config(), run.data.input);
}

Models teachers_of(const Run& run, const StageSpec& stage) {
  Models teachers;
  for (const auto& t : stage.teachers) teachers[t] = run.models.at(t);
  return teachers;
}

// The file holding the learned tensors a stage's loss terms ended with ("loss<i>.<name>").
fs::path loss_state_file(const Run& run, const std::string& stage) {
  return run.models_dir / (stage + ".losses.safetensors");
}

// How stage `index`'s terms read what a term of an earlier stage trained (see
// transfer::EarlierLossState): from that stage's loss-state file, nullopt before it exists.
transfer::EarlierLossState earlier_loss_state(const Run& run, size_t index) {
  return [&run, index](const std::string& stage, const std::string& kind) -> std::optional<std::map<std::string, Tensor>> {
    const auto& stages = run.recipe.stages;
    size_t j = 0;
    while (j < index && stages[j].name != stage) ++j;
    RETORT_CHECK(j < index, "stage '{}' is not an earlier stage of this recipe (stages before '{}': {})", stage,
                 stages[index].name, index ? stages[0].name + (index > 1 ? ", ..." : "") : std::string("none"));
    size_t term = 0;
    while (term < stages[j].losses.size() && stages[j].losses[term].name != kind) ++term;
    RETORT_CHECK(term < stages[j].losses.size(), "stage '{}' has no loss term '{}'", stage, kind);
    const fs::path file = loss_state_file(run, stage);
    if (!fs::exists(file)) return std::nullopt;
    std::map<std::string, Tensor> all;
    for (auto& [name, t] : read_safetensors(file.string()).tensors) all[name] = t;
    return loss_term_state(all, term);
  };
}

std::vector<StageLosses> build_all_losses(const Run& run) {
  std::vector<StageLosses> out;
  const auto& ds = run.data.train_all.dataset();
  const Shape input{1, ds.channels, run.recipe.data.image_size, run.recipe.data.image_size};
  for (size_t i = 0; i < run.recipe.stages.size(); ++i) {
    const auto& stage = run.recipe.stages[i];
    out.push_back(build_stage_losses(run.recipe, stage, run.models.at(stage.train), teachers_of(run, stage), input,
                                     run.device, uint64_t(run.recipe.run.seed),
                                     stage.data == StageData::labelled || stage.data == StageData::pool,
                                     stage_dataset_size(run.recipe, stage, run.data), earlier_loss_state(run, i)));
  }
  return out;
}

// Paths a run will write to that cannot be used: checked before anything is built.
void check_paths(const RunOptions& options) {
  for (const auto& [flag, dir] : {std::pair<const char*, std::string>{"--stage-cache", options.stage_cache_dir},
                                  {"--feature-cache", options.feature_cache_dir}})
    RETORT_CHECK(dir.empty() || !fs::exists(dir) || fs::is_directory(dir), "{} '{}' exists and is not a directory",
                 flag, dir);
  if (!options.resume && !options.out_dir.empty())
    RETORT_CHECK(!fs::exists(options.out_dir) || (fs::is_directory(options.out_dir) && fs::is_empty(options.out_dir)),
                 "run directory '{}' already exists and is not empty: choose another --out, remove it, or add --resume",
                 options.out_dir);
}

// Rank 0 creates (or re-opens) the run directory; the other ranks follow it without writing.
RunDir open_run_dir(const Recipe& recipe, const RunOptions& options) {
  dist::Communicator& world = dist::world();
  if (world.is_root()) {
    RunDir dir = options.resume ? RunDir::open(recipe, options.out_dir, options.allow_recipe_change, say)
                                : RunDir::create(recipe, options.out_dir);
    dist::broadcast_string(world, dir.path().string());
    return dir;
  }
  return RunDir::replica(dist::broadcast_string(world, ""), options.resume);
}

// Everything a run needs, built and checked (device, paths, data, every stage's data, models,
// every stage's losses) before its directory exists: a recipe that cannot run leaves nothing.
std::unique_ptr<Run> open_run(const Recipe& recipe, const RunOptions& options) {
  const Device device = resolve_device(options.device.empty() ? recipe.run.device : options.device);
  check_paths(options);
  auto run = std::make_unique<Run>(recipe, options, device);
  run->data = load_data(recipe);
  const LoadedData& d = run->data;
  say(fmt::format("data: {} train ({} labelled, {} unlabelled), {} test{}", d.train_all.size(), d.labelled.size(),
                  d.unlabelled.size(), d.test.size(),
                  d.extra.empty() ? std::string()
                                  : fmt::format(", {} extra unlabelled images from {}", d.extra.size(),
                                                recipe.data.extra_unlabelled_folder)));
  check_stage_data(recipe, d);
  run->models = build_models(recipe, d.train_all.dataset().num_classes, device);
  check_model_classes(recipe, run->models, d.train_all.dataset());
  run->losses = build_all_losses(*run);
  dist::Communicator& world = dist::world();
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    check_parallel_stage(recipe, recipe.stages[i], run->losses[i], world.size());
    check_graph_stage(recipe, recipe.stages[i], device, world.size());
  }
  run->dir = std::make_unique<RunDir>(open_run_dir(recipe, options));
  say(fmt::format("run '{}' on {} -> {}", recipe.run.name, device.str(), run->dir->path().string()));
  if (world.size() > 1)
    say(fmt::format("data parallel: {} ranks ({}), each computing 1/{} of every global batch", world.size(),
                    world.backend(), world.size()));
  const MachineDescription machine = describe_machine(device);
  say(machine.line());
  if (const std::string before = run->dir->set_machine(machine); !before.empty())
    say(fmt::format("warning: the run being resumed was computed by another machine or kernel set ({}); its digits "
                    "will differ from an uninterrupted run's", before));
  run->cache = StageCache(options.stage_cache_dir);
  if (run->cache.enabled())
    for (const auto& [name, spec] : recipe.models) run->model_keys[name] = StageCache::initial_model_key(recipe, name);
  run->models_dir = run->dir->path() / "models";
  fs::create_directories(run->models_dir);
  return run;
}

// steps.jsonl's interval: --log-steps, else the recipe's run.log_every_steps.
int64_t effective_log_every(const Run& run) {
  return run.options.log_every_steps >= 0 ? run.options.log_every_steps : run.recipe.run.log_every_steps;
}

// The terminal side of a stage: its progress bar and its evaluation lines; every evaluation
// also goes to metrics.jsonl and is kept for the stage cache.
class StageReporter {
 public:
  explicit StageReporter(Run& run) : run_(run) {}
  StageHooks hooks() {
    StageHooks h;
    h.log = say;
    h.progress = [this](const StepReport& r) { progress(r); };
    h.metrics = [this](const EvalRecord& r) { evaluation(r); };
    return h;
  }
  const std::vector<EvalRecord>& metrics() const { return metrics_; }

 private:
  void progress(const StepReport& r) {
    if (r.logged) {
      run_.dir->append_step(step_row(r));
    } else if (const int64_t every = log_every(); every > 0 && r.step % every == 0) {  // data parallelism
      run_.dir->append_step({{"stage", r.stage}, {"epoch", r.epoch + 1}, {"step", r.step}, {"loss", r.step_loss},
                             {"lr", r.lr}, {"images", r.batch_images}});
    }
    if (run_.options.quiet || !dist::world().is_root()) return;
    if (!bar_) bar_ = std::make_unique<Progress>(r.stage + "/" + r.model, r.epochs, r.batches);
    if (r.epoch != bar_epoch_) {
      if (bar_epoch_ >= 0) bar_->end_epoch();
      bar_->start_epoch(r.epoch + 1);
      bar_epoch_ = r.epoch;
    }
    bar_->update(r.batch, r.loss, r.train_top1, r.batch_images);
  }
  void evaluation(const EvalRecord& r) {
    metrics_.push_back(r);
    run_.dir->append_metrics(r);
    const std::string line = fmt::format("{} / {} epoch {}: {} top1 {:.2f}%  top5 {:.2f}%  loss {:.4f}  ({:.0f} img/s "
                                         "train)", r.stage, r.model, r.epoch, r.split == "val" ? "validation" : r.split,
                                         r.top1, r.top5, r.loss, r.images_per_s);
    if (!bar_) return say(line);
    if (bar_epoch_ != -1) bar_->end_epoch();  // once per epoch (validation, then test)
    bar_epoch_ = -1;
    bar_->message(line);
  }

  int64_t log_every() const { return effective_log_every(run_); }

  // A logged step's steps.jsonl row (docs/report.md lists its fields); NaN is written as null.
  static nlohmann::json step_row(const StepReport& r) {
    const LoggedStep& l = *r.logged;
    const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    const auto object = [&](const std::vector<std::pair<std::string, double>>& values) {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : values) o[k] = number(v);
      return o;
    };
    return {{"stage", r.stage},        {"epoch", r.epoch + 1},         {"step", r.step},
            {"loss", number(r.step_loss)}, {"lr", r.lr},               {"images", l.images},
            {"images_per_s", number(l.images_per_s)}, {"train_top1", number(l.train_top1)},
            {"grad_norm", number(l.grad_norm)}, {"terms", object(l.terms)}, {"weights", object(l.weights)},
            {"stats", object(l.stats)}};
  }

  Run& run_;
  std::unique_ptr<Progress> bar_;
  int64_t bar_epoch_ = -1;
  std::vector<EvalRecord> metrics_;
};

// Resuming: a stage this run already finished is not trained or evaluated again; its model
// file (written after the stage, tagged with the stage's name) holds its final weights.
bool finished_before_resume(Run& run, const StageSpec& stage) {
  if (!run.options.resume) return false;
  const fs::path file = run.models_dir / (stage.train + ".safetensors");
  const auto& done = run.dir->results();
  const bool recorded = std::any_of(done.begin(), done.end(), [&](const ModelResult& r) {
    return r.stage == stage.name && r.model == stage.train;
  });
  if (!recorded || !fs::exists(file)) return false;
  SafetensorsContents saved = read_safetensors(file.string());
  if (!saved.metadata.count("stage") || saved.metadata.at("stage") != stage.name) return false;
  auto& student = *run.models.at(stage.train);
  student.load_state_dict(std::map<std::string, Tensor>(saved.tensors.begin(), saved.tensors.end()), true);
  nn::restore_module_rngs(student, nn::kModelFileRngPrefix, saved.metadata);
  say(fmt::format("stage '{}': finished before the resume; weights from {}", stage.name, file.string()));
  return true;
}

// A stage some earlier run trained with the same key is loaded, not trained again (weights,
// Dropout generator states, and its evaluation records replayed).
std::optional<StageResult> from_stage_cache(Run& run, const StageSpec& stage, const std::string& key,
                                            const StageHooks& hooks) {
  auto hit = run.cache.enabled() ? run.cache.find(key) : std::nullopt;
  if (!hit) return std::nullopt;
  auto& student = *run.models.at(stage.train);
  student.load_state_dict(hit->weights, true);
  nn::restore_module_rngs(student, nn::kModelFileRngPrefix, hit->rngs);
  say(fmt::format("stage '{}': reused from the stage cache ({}/{}), first trained by {}", stage.name, run.cache.dir(),
                  key, hit->result.value("run_dir", std::string("?"))));
  for (const auto& m : hit->metrics) hooks.metrics(m);
  if (!hit->loss_state.empty() && dist::world().is_root())
    write_safetensors(loss_state_file(run, stage.name).string(),
                      nn::NamedTensors(hit->loss_state.begin(), hit->loss_state.end()), {});
  StageResult sr;
  sr.test.top1 = hit->result.at("test_top1");
  sr.test.top5 = hit->result.at("test_top5");
  sr.wall_s = hit->result.at("wall_s");
  sr.parameters = hit->result.at("parameters");
  return sr;
}

StageResult train_one(Run& run, const StageSpec& stage, const StageHooks& hooks) {
  StageOptions so;
  so.losses = &run.losses.at(size_t(&stage - run.recipe.stages.data()));
  so.checkpoint_dir = (run.dir->path() / "checkpoints").string();
  so.resume = run.options.resume;
  so.checkpoint_every_steps = run.options.checkpoint_every_steps;
  so.stop_after_steps = run.options.stop_after_steps;
  so.raise_signal_after_steps = run.options.raise_signal_after_steps;
  so.raise_signal = run.options.raise_signal;
  so.max_batches_per_epoch = run.options.max_batches_per_epoch;
  so.verify_replicas = run.options.verify_replicas;
  so.read_every_steps = run.options.read_every_steps;
  so.log_every_steps = effective_log_every(run);
  so.pictures_dir = (run.dir->path() / "pictures").string();
  so.selection_dir = run.models_dir.string();
  so.model_file_metadata = model_metadata(run, stage.train);
  so.feature_cache_dir = run.options.feature_cache_dir.empty()
                             ? (fs::path(run.recipe.run.out_dir) / "feature_cache").string()
                             : run.options.feature_cache_dir;
  StageDatasets sd = stage_datasets(run.recipe, stage, run.data, run.models, run.device, say);
  say(fmt::format("stage '{}': training '{}' for {} epochs{}", stage.name, stage.train, stage.epochs,
                  stage.teachers.empty() ? "" : fmt::format(" with teachers {}", fmt::join(stage.teachers, ", "))));
  StageHooks with_start = hooks;
  with_start.started = [&](int64_t step) { run.dir->note_change_effect(stage.name, step); };
  try {
    return train_stage(run.recipe, stage, run.models.at(stage.train), teachers_of(run, stage), sd, run.device, so,
                       with_start);
  } catch (const Interrupted& e) {
    run.dir->set_status(std::string("interrupted: ") + e.what());
    throw Interrupted(e.signal, e.what(), run.dir->path().string());
  } catch (const std::exception& e) {
    run.dir->set_status(std::string("failed: ") + e.what());
    throw;
  }
}

// summary.json's row of a stage: the kept model's test accuracy, and what selection found.
ModelResult model_result(const StageSpec& stage, const StageResult& sr) {
  ModelResult row;
  row.stage = stage.name;
  row.model = stage.train;
  row.test_top1 = sr.test.top1;
  row.test_top5 = sr.test.top5;
  row.wall_s = sr.wall_s;
  row.parameters = sr.parameters;
  const SelectionResult& s = sr.selection;
  if (!s.active) return row;
  row.kept = to_string(s.kept);
  row.best_epoch = s.best_epoch;
  row.last_epoch = s.last_epoch;
  row.best_val_top1 = s.best_val_top1;
  row.last_val_top1 = s.last_val_top1;
  row.best_test_top1 = s.best_test.top1;
  row.last_test_top1 = s.last_test.top1;
  return row;
}

// summary.json's row, the model file (with its Dropout generators' states, which a resume that
// skips this finished stage restores) and the stage cache's entry.
void record_stage(Run& run, const StageSpec& stage, const StageResult& sr, const std::string& key, bool trained,
                  const std::vector<EvalRecord>& metrics) {
  auto& student = *run.models.at(stage.train);
  if (run.cache.enabled()) run.model_keys[stage.train] = key;
  const ModelResult row = model_result(stage, sr);
  if (!sr.selection.line().empty()) say(fmt::format("stage '{}': {}", stage.name, sr.selection.line()));
  if (!dist::world().is_root()) return run.dir->record_result(row);  // kept, not written
  const nn::NamedTensors& losses = sr.loss_state;
  if (trained && !losses.empty()) write_safetensors(loss_state_file(run, stage.name).string(), losses, {});
  if (run.cache.enabled() && trained)
    run.cache.store(key, student,
                    nlohmann::json{{"test_top1", sr.test.top1}, {"test_top5", sr.test.top5}, {"wall_s", sr.wall_s},
                                   {"parameters", sr.parameters}, {"run_dir", run.dir->path().string()}},
                    metrics, losses);
  if (run.cache.enabled()) run.model_keys[stage.train] = key;
  run.dir->record_result(row);
  StringMap file_metadata = model_metadata(run, stage.train);
  file_metadata["stage"] = stage.name;
  nn::capture_module_rngs(student, nn::kModelFileRngPrefix, file_metadata);
  write_safetensors((run.models_dir / (stage.train + ".safetensors")).string(), student.state_dict(), file_metadata);
}

std::map<std::string, Tensor> read_weights(const std::string& path) {
  auto file = read_safetensors(path);
  std::map<std::string, Tensor> out;
  bool checkpoint = false;
  for (auto& [name, t] : file.tensors) checkpoint |= name.rfind("model.", 0) == 0;
  for (auto& [name, t] : file.tensors) {
    if (!checkpoint) out[name] = t;
    else if (name.rfind("model.", 0) == 0) out[name.substr(6)] = t;
  }
  return out;
}

}  // namespace

std::map<std::string, Tensor> load_model_weights(const std::string& path) { return read_weights(path); }

RunResult run_recipe(const Recipe& recipe, const RunOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  InterruptHandlers interrupts;
  std::unique_ptr<Run> run = open_run(recipe, options);
  RunResult result;
  result.run_dir = run->dir->path().string();
  for (const auto& stage : recipe.stages) {
    const std::string key = run->cache.enabled() ? StageCache::stage_key(recipe, stage, run->model_keys, run->device,
                                                                         options.max_batches_per_epoch)
                                                 : "";
    if (finished_before_resume(*run, stage)) {
      if (run->cache.enabled()) run->model_keys[stage.train] = key;
      continue;
    }
    StageReporter reporter(*run);
    std::optional<StageResult> sr = from_stage_cache(*run, stage, key, reporter.hooks());
    const bool trained = !sr;
    if (trained) sr = train_one(*run, stage, reporter.hooks());
    if (!sr->completed) {
      result.completed = false;
      say(fmt::format("stage '{}' stopped after {} steps (as asked)", stage.name, sr->steps));
      return result;
    }
    record_stage(*run, stage, *sr, key, trained, reporter.metrics());
    dist::world().barrier();  // rank 0's files of this stage exist before any rank starts the next
  }
  run->dir->set_status("finished");
  if (!dist::world().is_root()) return result;  // rank 0 wrote the summary and prints the table
  result.summary = nlohmann::json::parse(read_text_file(run->dir->file("summary.json")));
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "%s", results_table(run->dir->results(), recipe, run->device, wall_s).c_str());
  return result;
}

}  // namespace retort
