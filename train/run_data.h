// The data of a run: the training set (after val_size and train_subset), its labelled and
// unlabelled parts (labelled_per_class), extra unlabelled images, the test set, and the
// transforms; and what one stage trains and evaluates on (its data choice, curated by
// retrieval when the stage asks).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/data/registry.h"
#include "models/model.h"
#include "train/model_file.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace retort {

struct LoadedData {
  data::DatasetView train_all, labelled, unlabelled, test;
  data::DatasetView validation;  // data.val_size images held out of the training set (empty: none)
  data::DatasetView extra;  // data.extra_unlabelled_folder's images (no labels), empty when not set
  std::vector<data::BatchTransform> train_transforms, eval_transforms;
  ModelInput input;  // what the models see (written into their files)
};

// The dataset request for the recipe's data: its training (or test) split, folder images
// decoded through the recipe's preprocessing and cache.
data::DatasetRequest dataset_request(const DataSettings& data, bool train);

// Loads the recipe's data and splits it as the recipe says.
LoadedData load_data(const Recipe& recipe);

// How many images a stage trains on before any retrieval curation (which keeps a subset): the
// bound of a batch's positions in that stage.
int64_t stage_dataset_size(const Recipe& recipe, const StageSpec& stage, const LoadedData& data);

// Refuses, before anything trains, a stage whose data holds no training image (e.g. val_size as
// large as the training set), naming the stage, its line and the settings that emptied it.
void check_stage_data(const Recipe& recipe, const LoadedData& data);

// What `stage` trains and evaluates on; `say` reports a retrieval-curated transfer set.
StageDatasets stage_datasets(const Recipe& recipe, const StageSpec& stage, const LoadedData& data,
                             const std::map<std::string, std::shared_ptr<models::Model>>& models_by_name, Device device,
                             const std::function<void(const std::string&)>& say);

}  // namespace retort
