// Builds the models a recipe names ([models.<name>]): the architecture configured for the
// recipe's data (channels, image size, classes) and its options (dropout, patch_size, depth),
// initialised from a seed derived from the run seed and the name (or the name of the model it
// starts from, init_from), loaded from `weights` when
// given, and moved to the device. Shared by the runner and the step benchmark.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include "engine/device.h"
#include "models/model.h"
#include "train/recipe.h"

namespace retort {

// What [models.<name>] builds: the data's channels and image size, num_classes (the model's own, else
// the data's data_classes; 0 when its head is dropped), the options, the seed.
models::ModelConfig recipe_model_config(const Recipe& recipe, const std::string& name, int64_t data_classes);

std::shared_ptr<models::Model> build_recipe_model(const Recipe& recipe, const std::string& name, int64_t num_classes,
                                                  Device device, const std::function<void(const std::string&)>& say);

}  // namespace retort
