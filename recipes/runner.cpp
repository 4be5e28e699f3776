// The recipe runner: data, models, stages, run directory, final table.
#include "recipes/runner.h"
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include "engine/data/registry.h"
#include "engine/data/subsets.h"
#include "engine/data/transforms.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "models/registry.h"
#include "recipes/progress.h"
#include "recipes/run_dir.h"
#include "recipes/trainer.h"
#include "transfer/loss_term.h"

namespace retort {
namespace fs = std::filesystem;
namespace {

uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string dataset_name(DatasetKind k) { return to_string(k); }

struct LoadedData {
  data::DatasetView train_all, labelled, unlabelled, test;
  std::vector<data::BatchTransform> train_transforms, eval_transforms;
};

LoadedData load_data(const Recipe& r) {
  const auto& d = r.data;
  data::DatasetRequest req;
  req.name = dataset_name(d.dataset);
  req.dir = d.root;
  req.channels = d.channels;
  req.height = req.width = d.image_size;
  req.train = true;
  auto train = std::make_shared<const data::Dataset>(data::load_dataset(req));
  req.train = false;
  auto test = std::make_shared<const data::Dataset>(data::load_dataset(req));
  RETORT_CHECK(train->channels == d.channels || d.dataset != DatasetKind::folder,
               "data: {} has {} channels but the recipe asks for {}", req.name, train->channels, d.channels);
  LoadedData out;
  data::DatasetView all(train);
  const uint64_t seed = uint64_t(r.run.seed);
  if (d.val_size > 0) all = data::split_validation(all, d.val_size, seed ^ 0x7a1ull).train;
  out.train_all = all;
  if (d.labelled_per_class > 0) {
    auto split = data::split_labelled_per_class(all, d.labelled_per_class, seed ^ 0x1abe1ull);
    out.labelled = split.labelled;
    out.unlabelled = split.unlabelled;
  } else {
    out.labelled = all;
  }
  out.test = data::DatasetView(test);

  std::vector<float> mean(d.mean.begin(), d.mean.end()), stdv(d.std.begin(), d.std.end());
  if (d.augment.random_crop_padding > 0) out.train_transforms.push_back(data::random_crop_transform(d.augment.random_crop_padding));
  if (d.augment.hflip) out.train_transforms.push_back(data::random_hflip_transform());
  if (train->height != d.image_size || train->width != d.image_size) {
    out.train_transforms.push_back(data::resize_transform(d.image_size, d.image_size));
    out.eval_transforms.push_back(data::resize_transform(d.image_size, d.image_size));
  }
  if (!mean.empty()) {
    out.train_transforms.push_back(data::normalize_transform(mean, stdv));
    out.eval_transforms.push_back(data::normalize_transform(mean, stdv));
  }
  return out;
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
  transfer::register_builtin_losses();
  const auto started = std::chrono::steady_clock::now();
  Device device = resolve_device(options.device.empty() ? recipe.run.device : options.device);
  RunDir run_dir(options.out_dir.empty() ? (fs::path(recipe.run.out_dir) / recipe.run.name).string() : options.out_dir,
                 /*resume=*/options.resume);
  run_dir.write_resolved_recipe(recipe);
  auto say = [&](const std::string& s) { std::fprintf(stderr, "[retort] %s\n", s.c_str()); };
  say(fmt::format("run '{}' on {} -> {}", recipe.run.name, device.str(), run_dir.path()));

  LoadedData data = load_data(recipe);
  say(fmt::format("data: {} train ({} labelled, {} unlabelled), {} test", data.train_all.size(), data.labelled.size(),
                  data.unlabelled.size(), data.test.size()));

  // ---- models
  std::map<std::string, std::shared_ptr<models::Model>> models_by_name;
  for (const auto& [name, spec] : recipe.models) {
    models::ModelConfig cfg;
    cfg.in_channels = recipe.data.channels;
    cfg.num_classes = data.train_all.dataset().num_classes;
    cfg.image_size = recipe.data.image_size;
    cfg.seed = fnv1a(name, uint64_t(recipe.run.seed));
    for (const auto& [k, v] : spec.options) {
      if (k == "dropout") cfg.dropout = v;
      else if (k == "patch_size") cfg.patch_size = int64_t(v);
      else if (k == "depth") cfg.depth = int64_t(v);
      else fail("{}: model option '{}' is not known (dropout, patch_size, depth)", recipe.where(spec.pos), k);
    }
    auto model = models::create_model(spec.arch, cfg);
    if (!spec.weights.empty()) model->load_state_dict(read_weights(spec.weights), true);
    model->to(device);
    say(fmt::format("model '{}': {} ({} parameters)", name, spec.arch, model->num_parameters()));
    models_by_name[name] = model;
  }

  // ---- stages
  RunResult result;
  result.run_dir = run_dir.path();
  Summary summary(recipe.run.name, device.str());
  Progress progress(!options.quiet);
  bool stopped = false;
  for (const auto& stage : recipe.stages) {
    if (stopped) break;
    auto student = models_by_name.at(stage.train);
    std::map<std::string, std::shared_ptr<models::Model>> teachers;
    for (const auto& t : stage.teachers) teachers[t] = models_by_name.at(t);
    StageDatasets sd;
    sd.test = data.test;
    sd.train_transforms = data.train_transforms;
    sd.eval_transforms = data.eval_transforms;
    sd.workers = int(recipe.data.workers);
    switch (stage.data) {
      case StageData::labelled: sd.train = data.labelled; break;
      case StageData::unlabelled:
        RETORT_CHECK(!data.unlabelled.empty(), "{}: stage '{}' trains on unlabelled data, but data.labelled_per_class "
                     "is 0 so there is no unlabelled pool", recipe.where(stage.pos), stage.name);
        sd.train = data.unlabelled;
        sd.labelled = false;
        break;
      case StageData::all: sd.train = data.train_all; sd.labelled = false; break;
    }
    StageOptions so;
    so.checkpoint_dir = run_dir.checkpoint_dir();
    so.resume = options.resume;
    so.checkpoint_every_steps = options.checkpoint_every_steps;
    so.stop_after_steps = options.stop_after_steps;
    so.max_batches_per_epoch = options.max_batches_per_epoch;
    StageHooks hooks;
    hooks.metrics = [&](const nlohmann::json& j) {
      run_dir.append_metrics(j);
      progress.finish_line();
      say(fmt::format("{} / {} epoch {}: test top1 {:.2f}%  top5 {:.2f}%  loss {:.4f}  ({:.0f} img/s train)",
                      j["stage"].get<std::string>(), j["model"].get<std::string>(), j["epoch"].get<int64_t>(),
                      j["top1"].get<double>(), j["top5"].get<double>(), j["loss"].get<double>(),
                      j["images_per_s"].get<double>()));
    };
    hooks.progress = [&](const StepReport& r) { progress.update(r); };
    hooks.log = say;
    say(fmt::format("stage '{}': training '{}' for {} epochs{}", stage.name, stage.train, stage.epochs,
                    stage.teachers.empty() ? "" : fmt::format(" with teachers {}", fmt::join(stage.teachers, ", "))));
    StageResult sr = train_stage(recipe, stage, student, teachers, sd, device, so, hooks);
    progress.finish_line();
    if (!sr.completed) {
      stopped = true;
      result.completed = false;
      say(fmt::format("stage '{}' stopped after {} steps (stop_after_steps)", stage.name, sr.steps));
      break;
    }
    summary.add_stage(stage.name, stage.train, recipe.models.at(stage.train).arch, sr.test.top1, sr.test.top5,
                      sr.test.loss, sr.wall_s, sr.parameters, sr.steps);
    run_dir.write_model(stage.train, student->state_dict());
    run_dir.write_summary(summary.json(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
  }
  result.summary = summary.json(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (result.completed) {
    run_dir.write_summary(result.summary);
    std::fprintf(stderr, "%s", summary.table().c_str());
  }
  return result;
}

}  // namespace retort
