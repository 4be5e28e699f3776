// The data of a run and of each stage (see train/run_data.h).
#include "train/run_data.h"
#include <unistd.h>
#include "engine/data/image_folder.h"
#include "engine/data/preprocess.h"
#include "engine/data/registry.h"
#include "engine/data/subsets.h"
#include "engine/data/transforms.h"
#include "engine/error.h"
#include "transfer/retrieval.h"

namespace retort {
namespace {
std::string dataset_name(DatasetKind k) { return to_string(k); }
}  // namespace

data::DatasetRequest dataset_request(const DataSettings& d, bool train) {
  data::DatasetRequest req;
  req.name = dataset_name(d.dataset);
  req.dir = d.root;
  req.channels = d.channels;
  req.height = req.width = d.image_size;
  req.resize_shorter = d.resize;
  req.interpolation = data::parse_interpolation(d.interpolation);
  req.cache_bytes = d.cache_mb << 20;
  req.train = train;
  return req;
}

LoadedData load_data(const Recipe& r) {
  const auto& d = r.data;
  data::DatasetRequest req = dataset_request(d, true);
  data::Dataset train_set = data::load_dataset(req);
  // Extra unlabelled images join the training dataset after its own images (label 0 as a
  // placeholder: they only ever appear in views of stages without labels).
  const int64_t own_images = train_set.size();
  if (!d.extra_unlabelled_folder.empty()) {
    data::Preprocess p;
    p.channels = train_set.channels;
    p.height = train_set.height;
    p.width = train_set.width;
    if (d.dataset == DatasetKind::folder) {  // the extra images are decoded as the folder's own are
      p.resize_shorter = d.resize;
      p.interpolation = req.interpolation;
    }
    data::append_unlabelled_folder(train_set, d.extra_unlabelled_folder, p, req.cache_bytes);
  }
  std::vector<int64_t> extra_indices;
  for (int64_t i = own_images; i < train_set.size(); ++i) extra_indices.push_back(i);
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
  if (d.val_size > 0) {
    auto split = data::split_validation(all, d.val_size, seed ^ 0x7a1ull);
    all = split.train;
    out.validation = split.validation;
  }
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
  out.input = recipe_model_input(r, train->class_names);

  // Augmentation, then what every image goes through on its way to the model (train/model_file.h).
  if (d.augment.random_crop_padding > 0) out.train_transforms.push_back(data::random_crop_transform(d.augment.random_crop_padding));
  if (d.augment.hflip) out.train_transforms.push_back(data::random_hflip_transform());
  const bool decoded_preprocessed = d.dataset == DatasetKind::folder;
  out.eval_transforms = input_transforms(out.input, train->height, train->width, decoded_preprocessed);
  out.train_transforms.insert(out.train_transforms.end(), out.eval_transforms.begin(), out.eval_transforms.end());
  return out;
}

StageDatasets stage_datasets(const Recipe& recipe, const StageSpec& stage, const LoadedData& data,
                             const std::map<std::string, std::shared_ptr<models::Model>>& models_by_name, Device device,
                             const std::function<void(const std::string&)>& say) {
  StageDatasets sd;
  sd.test = data.test;
  sd.validation = data.validation;
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

int64_t stage_dataset_size(const Recipe&, const StageSpec& stage, const LoadedData& data) {
  switch (stage.data) {
    case StageData::labelled: return data.labelled.size();
    case StageData::unlabelled: return data.unlabelled.size() + data.extra.size();
    case StageData::all: return data.train_all.size() + data.extra.size();
    case StageData::pool: return data.unlabelled.size();
  }
  return 0;
}

void check_stage_data(const Recipe& recipe, const LoadedData& data) {
  RETORT_CHECK(data.test.size() > 0, "data: the test split of '{}' holds no image", to_string(recipe.data.dataset));
  const double memory = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  for (const auto& stage : recipe.stages) {
    const double side = double(recipe.data.image_size);
    const double batch_bytes = double(stage.batch_size) * double(recipe.data.channels) * side * side * 4.0;
    RETORT_CHECK(memory <= 0 || batch_bytes < memory,
                 "{}: stage '{}': one batch of {} images of {}x{}x{} takes {:.3g} GB as f32, more than this machine's "
                 "{:.3g} GB of memory: lower batch_size or data.image_size",
                 recipe.where(stage.pos), stage.name, stage.batch_size, recipe.data.channels, recipe.data.image_size,
                 recipe.data.image_size, batch_bytes / 1e9, memory / 1e9);
  }
  for (const auto& stage : recipe.stages) {
    const int64_t images = stage_dataset_size(recipe, stage, data);
    const auto& d = recipe.data;
    RETORT_CHECK(images > 0,
                 "{}: stage '{}' has no training images: its data = \"{}\" is empty (the training set keeps {} images "
                 "after data.val_size = {} and data.train_subset = {}; data.labelled_per_class = {})",
                 recipe.where(stage.pos), stage.name, to_string(stage.data), data.train_all.size(), d.val_size,
                 d.train_subset, d.labelled_per_class);
  }
}

}  // namespace retort
