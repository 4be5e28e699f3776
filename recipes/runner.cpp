// The recipe runner: data, models, stages, run directory, final table.
#include "recipes/runner.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include "engine/data/image_folder.h"
#include "engine/data/registry.h"
#include "engine/data/subsets.h"
#include "engine/data/transforms.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module_rng.h"
#include "recipes/progress.h"
#include "recipes/recipe_models.h"
#include "recipes/run_dir.h"
#include "recipes/results_table.h"
#include "recipes/stage_cache.h"
#include "recipes/trainer.h"
#include "transfer/loss_term.h"
#include "transfer/retrieval.h"

namespace retort {
namespace fs = std::filesystem;
namespace {

std::string dataset_name(DatasetKind k) { return to_string(k); }

struct LoadedData {
  data::DatasetView train_all, labelled, unlabelled, test;
  data::DatasetView extra;  // data.extra_unlabelled_folder's images (no labels), empty when not set
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
  data::Dataset train_set = data::load_dataset(req);
  // Extra unlabelled images join the training dataset after its own images (label 0 as a
  // placeholder: they only ever appear in views of stages without labels).
  std::vector<int64_t> extra_indices;
  if (!d.extra_unlabelled_folder.empty()) {
    int64_t count = 0;
    std::vector<uint8_t> pixels =
        data::load_unlabelled_images(d.extra_unlabelled_folder, train_set.channels, train_set.height, train_set.width, count);
    for (int64_t i = 0; i < count; ++i) extra_indices.push_back(train_set.size() + i);
    train_set.images.insert(train_set.images.end(), pixels.begin(), pixels.end());
    train_set.labels.resize(train_set.labels.size() + size_t(count), 0);
  }
  const int64_t own_images = train_set.size() - int64_t(extra_indices.size());
  auto train = std::make_shared<const data::Dataset>(std::move(train_set));
  req.train = false;
  auto test = std::make_shared<const data::Dataset>(data::load_dataset(req));
  RETORT_CHECK(train->channels == d.channels || d.dataset != DatasetKind::folder,
               "data: {} has {} channels but the recipe asks for {}", req.name, train->channels, d.channels);
  LoadedData out;
  std::vector<int64_t> own(static_cast<size_t>(own_images));
  for (int64_t i = 0; i < own_images; ++i) own[size_t(i)] = i;
  data::DatasetView all(train, std::move(own));
  out.extra = data::DatasetView(train, extra_indices);
  const uint64_t seed = uint64_t(r.run.seed);
  if (d.val_size > 0) all = data::split_validation(all, d.val_size, seed ^ 0x7a1ull).train;
  if (d.train_subset > 0) {
    RETORT_CHECK(d.train_subset <= all.size(), "data.train_subset = {} but the training set has {} images",
                 d.train_subset, all.size());
    all = data::split_validation(all, d.train_subset, seed ^ 0x5b5e7ull).validation;  // a stratified draw
  }
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

// What a stage trains and evaluates on: its data choice, curated by retrieval when asked.
StageDatasets stage_datasets(const Recipe& recipe, const StageSpec& stage, const LoadedData& data,
                             const std::map<std::string, std::shared_ptr<models::Model>>& models_by_name, Device device,
                             const std::function<void(const std::string&)>& say) {
  StageDatasets sd;
  sd.test = data.test;
  sd.train_transforms = data.train_transforms;
  sd.eval_transforms = data.eval_transforms;
  sd.workers = int(recipe.data.workers);
  sd.augmented = recipe.data.augment.random_crop_padding > 0 || recipe.data.augment.hflip;
  auto need_pool = [&](const char* what) {
    RETORT_CHECK(!data.unlabelled.empty(), "{}: stage '{}' trains on {}, but data.labelled_per_class is 0 so there is "
                 "no unlabelled pool", recipe.where(stage.pos), stage.name, what);
  };
  // A view of `base` followed by the extra unlabelled images (same dataset, so one index list).
  auto with_extra = [&](const data::DatasetView& base) {
    if (data.extra.empty()) return base;
    std::vector<int64_t> idx = base.indices();
    idx.insert(idx.end(), data.extra.indices().begin(), data.extra.indices().end());
    return data::DatasetView(data.extra.dataset_ptr(), std::move(idx));
  };
  switch (stage.data) {
    case StageData::labelled: sd.train = data.labelled; break;
    case StageData::unlabelled:
      if (data.extra.empty()) need_pool("unlabelled data");
      sd.train = with_extra(data.unlabelled);
      sd.labelled = false;
      break;
    case StageData::all: sd.train = with_extra(data.train_all); sd.labelled = false; break;
    case StageData::pool:
      need_pool("the pool");
      sd.train = data.unlabelled;
      break;
  }
  if (stage.retrieve_k > 0) {
    const std::string by = stage.retrieve_with.empty() ? stage.teachers.at(0) : stage.retrieve_with;
    auto curated = transfer::curate_by_retrieval(*models_by_name.at(by), stage.retrieve_tap, data.labelled, sd.train,
                                                 stage.retrieve_k, data.eval_transforms, device);
    say(fmt::format("stage '{}': transfer set by retrieval: {} of {} images kept ({} labelled x {} neighbours by '{}' "
                    "tap '{}' = {} listed)",
                    stage.name, curated.transfer_set.size(), sd.train.size(), data.labelled.size(), stage.retrieve_k, by,
                    stage.retrieve_tap, curated.neighbours_listed));
    sd.train = curated.transfer_set;
  }
  return sd;
}

}  // namespace

std::map<std::string, Tensor> load_model_weights(const std::string& path) { return read_weights(path); }

RunResult run_recipe(const Recipe& recipe, const RunOptions& options) {
  transfer::register_builtin_losses();
  const auto started = std::chrono::steady_clock::now();
  Device device = resolve_device(options.device.empty() ? recipe.run.device : options.device);
  const std::string dir = options.out_dir;
  RunDir run_dir = options.resume ? RunDir::open(recipe, dir) : RunDir::create(recipe, dir);
  auto say = [&](const std::string& s) { std::fprintf(stderr, "[retort] %s\n", s.c_str()); };
  say(fmt::format("run '{}' on {} -> {}", recipe.run.name, device.str(), run_dir.path().string()));
  const MachineDescription machine = describe_machine(device);
  say(machine.line());
  if (const std::string before = run_dir.set_machine(machine); !before.empty())
    say(fmt::format("warning: the run being resumed was computed by another machine or kernel set ({}); its digits "
                    "will differ from an uninterrupted run's", before));

  LoadedData data = load_data(recipe);
  say(fmt::format("data: {} train ({} labelled, {} unlabelled), {} test{}", data.train_all.size(), data.labelled.size(),
                  data.unlabelled.size(), data.test.size(),
                  data.extra.empty() ? std::string()
                                     : fmt::format(", {} extra unlabelled images from {}", data.extra.size(),
                                                   recipe.data.extra_unlabelled_folder)));

  // ---- models
  std::map<std::string, std::shared_ptr<models::Model>> models_by_name;
  for (const auto& [name, spec] : recipe.models) {
    auto model = build_recipe_model(recipe, name, data.train_all.dataset().num_classes, device, say);
    say(fmt::format("model '{}': {} ({} parameters)", name, spec.arch, model->num_parameters()));
    models_by_name[name] = model;
  }

  // ---- build every stage's losses before anything trains (impossible pairings fail now); each
  // stage takes over its set when it trains
  std::vector<StageLosses> stage_losses;
  for (const auto& stage : recipe.stages) {
    std::map<std::string, std::shared_ptr<models::Model>> teachers;
    for (const auto& t : stage.teachers) teachers[t] = models_by_name.at(t);
    const auto& ds = data.train_all.dataset();
    stage_losses.push_back(build_stage_losses(
        recipe, stage, models_by_name.at(stage.train), teachers,
        Shape{1, ds.channels, recipe.data.image_size, recipe.data.image_size}, device, uint64_t(recipe.run.seed),
        stage.data == StageData::labelled || stage.data == StageData::pool));
  }

  // ---- stages
  RunResult result;
  result.run_dir = run_dir.path().string();
  const fs::path models_dir = run_dir.path() / "models";
  fs::create_directories(models_dir);
  const StageCache cache(options.stage_cache_dir);
  std::map<std::string, std::string> model_keys;  // current state key of every model (stage cache)
  if (cache.enabled())
    for (const auto& [name, spec] : recipe.models) model_keys[name] = StageCache::initial_model_key(recipe, name);
  for (const auto& stage : recipe.stages) {
    auto student = models_by_name.at(stage.train);
    std::map<std::string, std::shared_ptr<models::Model>> teachers;
    for (const auto& t : stage.teachers) teachers[t] = models_by_name.at(t);

    std::unique_ptr<Progress> bar;
    int64_t bar_epoch = -1;
    std::vector<nlohmann::json> stage_metrics;
    StageHooks hooks;
    hooks.log = say;
    hooks.progress = [&](const StepReport& r) {
      if (options.quiet) return;
      if (!bar) bar = std::make_unique<Progress>(r.stage + "/" + r.model, r.epochs, r.batches);
      if (r.epoch != bar_epoch) {
        if (bar_epoch >= 0) bar->end_epoch();
        bar->start_epoch(r.epoch + 1);
        bar_epoch = r.epoch;
      }
      bar->update(r.batch, r.loss, r.train_top1, r.batch_images);
    };
    hooks.metrics = [&](const nlohmann::json& j) {
      stage_metrics.push_back(j);
      EvalRecord rec;
      rec.stage = j["stage"];
      rec.model = j["model"];
      rec.epoch = j["epoch"];
      rec.step = j["step"];
      rec.split = j["split"];
      rec.loss = j["loss"];
      rec.top1 = j["top1"];
      rec.top5 = j["top5"];
      rec.images_per_s = j["images_per_s"];
      rec.wall_s = j["wall_s"];
      rec.train_loss = j.value("train_loss", NAN);
      rec.train_top1 = j.value("train_top1", NAN);
      run_dir.append_metrics(rec);
      std::string line = fmt::format("{} / {} epoch {}: test top1 {:.2f}%  top5 {:.2f}%  loss {:.4f}  ({:.0f} img/s train)",
                                     rec.stage, rec.model, rec.epoch, rec.top1, rec.top5, rec.loss, rec.images_per_s);
      if (bar) {
        bar->end_epoch();
        bar_epoch = -1;
        bar->message(line);
      } else {
        say(line);
      }
    };

    // A stage some earlier run trained with the same key is loaded, not trained again (weights
    // and Dropout generator states).
    const bool cacheable = cache.enabled();
    const std::string key =
        cacheable ? StageCache::stage_key(recipe, stage, model_keys, device, options.max_batches_per_epoch) : "";
    // Resuming: a stage this run already finished is not evaluated again; its model file
    // (written after the stage, tagged with the stage's name) holds its final weights.
    if (options.resume) {
      const fs::path file = models_dir / (stage.train + ".safetensors");
      const auto& done = run_dir.results();
      const bool recorded = std::any_of(done.begin(), done.end(), [&](const ModelResult& r) {
        return r.stage == stage.name && r.model == stage.train;
      });
      if (recorded && fs::exists(file)) {
        SafetensorsContents saved = read_safetensors(file.string());
        if (saved.metadata.count("stage") && saved.metadata.at("stage") == stage.name) {
          std::map<std::string, Tensor> weights(saved.tensors.begin(), saved.tensors.end());
          student->load_state_dict(weights, true);
          nn::restore_module_rngs(*student, nn::kModelFileRngPrefix, saved.metadata);
          say(fmt::format("stage '{}': finished before the resume; weights from {}", stage.name, file.string()));
          if (cacheable) model_keys[stage.train] = key;
          continue;
        }
      }
    }
    StageResult sr;
    if (auto hit = cacheable ? cache.find(key) : std::nullopt) {
      student->load_state_dict(hit->weights, true);
      nn::restore_module_rngs(*student, nn::kModelFileRngPrefix, hit->rngs);
      say(fmt::format("stage '{}': reused from the stage cache ({}/{}), first trained by {}", stage.name, cache.dir(),
                      key, hit->result.value("run_dir", std::string("?"))));
      for (const auto& m : hit->metrics) hooks.metrics(m);
      sr.test.top1 = hit->result.at("test_top1");
      sr.test.top5 = hit->result.at("test_top5");
      sr.wall_s = hit->result.at("wall_s");
      sr.parameters = hit->result.at("parameters");
    } else {
      StageDatasets sd = stage_datasets(recipe, stage, data, models_by_name, device, say);
      StageOptions so;
      so.losses = &stage_losses.at(size_t(&stage - recipe.stages.data()));
      so.checkpoint_dir = (run_dir.path() / "checkpoints").string();
      so.resume = options.resume;
      so.checkpoint_every_steps = options.checkpoint_every_steps;
      so.stop_after_steps = options.stop_after_steps;
      so.max_batches_per_epoch = options.max_batches_per_epoch;
      so.feature_cache_dir = options.feature_cache_dir.empty()
                                 ? (fs::path(recipe.run.out_dir) / "feature_cache").string()
                                 : options.feature_cache_dir;
      say(fmt::format("stage '{}': training '{}' for {} epochs{}", stage.name, stage.train, stage.epochs,
                      stage.teachers.empty() ? "" : fmt::format(" with teachers {}", fmt::join(stage.teachers, ", "))));
      try {
        sr = train_stage(recipe, stage, student, teachers, sd, device, so, hooks);
      } catch (const std::exception& e) {
        run_dir.set_status(std::string("failed: ") + e.what());
        throw;
      }
      bar.reset();
      if (!sr.completed) {
        result.completed = false;
        say(fmt::format("stage '{}' stopped after {} steps (as asked)", stage.name, sr.steps));
        return result;
      }
      if (cacheable)
        cache.store(key, *student,
                    nlohmann::json{{"test_top1", sr.test.top1}, {"test_top5", sr.test.top5}, {"wall_s", sr.wall_s},
                                   {"parameters", sr.parameters}, {"run_dir", run_dir.path().string()}},
                    stage_metrics);
    }
    if (cacheable) model_keys[stage.train] = key;
    ModelResult mr;
    mr.stage = stage.name;
    mr.model = stage.train;
    mr.test_top1 = sr.test.top1;
    mr.test_top5 = sr.test.top5;
    mr.wall_s = sr.wall_s;
    mr.parameters = sr.parameters;
    run_dir.record_result(mr);
    // The model file also carries the Dropout generators' states ("rng.<module path>"), which a
    // resume that skips this finished stage restores.
    StringMap file_metadata = {{"arch", recipe.models.at(stage.train).arch}, {"stage", stage.name}};
    nn::capture_module_rngs(*student, nn::kModelFileRngPrefix, file_metadata);
    write_safetensors((models_dir / (stage.train + ".safetensors")).string(), student->state_dict(), file_metadata);
  }
  run_dir.set_status("finished");
  result.summary = nlohmann::json::parse(read_text_file(run_dir.file("summary.json")));
  std::fprintf(stderr, "%s", results_table(run_dir.results(), recipe, device,
                                           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count())
                                 .c_str());
  return result;
}

}  // namespace retort
